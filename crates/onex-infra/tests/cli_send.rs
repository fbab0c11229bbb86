//! `onex-runtime-host send` run as a user runs it, against a fake admin API (a bare
//! `TcpListener` that reads one request and answers one reply envelope): the request it posts,
//! what it prints and its exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_infra::ids::{new_uuid_v7, now_utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One HTTP request as the fake host received it.
#[derive(Debug)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn envelope(&self) -> Envelope {
        Envelope::decode(&self.body, usize::MAX, onex_infra::ids::minted())
            .unwrap_or_else(|e| panic!("request body is not an envelope: {e}"))
    }
}

/// Reads one request (head, then `Content-Length` bytes of body).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Received {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed before sending a whole request: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8(data[..end].to_vec()).unwrap();
        let length = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap());
        if data.len() >= end + 4 + length {
            return Received { head, body: data[end + 4..end + 4 + length].to_vec() };
        }
    }
}

/// A fake admin API on a free loopback port: answers its one request with `respond`'s status
/// and JSON body. Returns the address and the request it received.
async fn fake_host(
    respond: impl FnOnce(&Received) -> (u16, String) + Send + 'static,
) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let request = read_request(&mut socket).await;
        let (status, body) = respond(&request);
        let response = format!(
            "HTTP/1.1 {status} Reply\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        request
    });
    (addr, handle)
}

/// Runs the binary with `args`, extra environment and `stdin`, off the async runtime so the
/// fake host keeps serving.
async fn host(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onex-runtime-host"))
            .args(&args)
            .env_remove("ONEX_ADMIN_ADDR")
            .env_remove("ONEX_LOG")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run onex-runtime-host");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn echo_reply(request: &Received) -> (u16, String) {
    let envelope = request.envelope();
    let reply = envelope.reply_ok(new_uuid_v7(), json!({"echo": envelope.payload}), now_utc());
    (200, serde_json::to_string(&reply).unwrap())
}

#[tokio::test]
async fn posts_the_envelope_prints_the_reply_and_exits_0() {
    let (addr, server) = fake_host(echo_reply).await;
    let cid = "0190a0b0-0000-7000-8000-0000000000c1";
    let out = host(
        &["send", "--addr", &addr, "--operation", "local.echo", "--payload", r#"{"n": 1}"#, "--correlation-id", cid],
        &[],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    let request = server.await.unwrap();
    assert!(request.head.starts_with("POST /v1/envelopes HTTP/1.1\r\n"), "{}", request.head);
    assert!(request.head.to_ascii_lowercase().contains("\r\ncontent-type: application/json"), "{}", request.head);
    let sent = request.envelope();
    assert_eq!(sent.operation, "local.echo");
    assert_eq!(sent.payload, json!({"n": 1}));
    assert_eq!(sent.correlation_id.to_string(), cid);
    assert!(!sent.is_response);

    let stdout = text(&out.stdout);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["success"], true);
    assert_eq!(printed["payload"], json!({"echo": {"n": 1}}));
    assert_eq!(printed["correlation_id"], cid);
    assert_eq!(printed["causation_id"], sent.envelope_id.to_string());
    assert!(stdout.contains("\n  \"success\": true"), "pretty-printed: {stdout}");
}

#[tokio::test]
async fn a_failed_reply_is_printed_and_exits_1() {
    let (addr, server) = fake_host(|request| {
        let envelope = request.envelope();
        let error = ReplyError::new(codes::ENVELOPE_INVALID, "no effect node provides `local.nope`");
        (422, serde_json::to_string(&envelope.reply_err(new_uuid_v7(), error, now_utc())).unwrap())
    })
    .await;
    let out = host(&["send", "--addr", &addr, "--operation", "local.nope"], &[], "").await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert_eq!(server.await.unwrap().envelope().operation, "local.nope");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["success"], false);
    assert_eq!(printed["error"]["code"], codes::ENVELOPE_INVALID.as_str());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("local.nope failed (HTTP 422)"), "{stderr}");
    assert!(stderr.contains("no effect node provides `local.nope`"), "{stderr}");
}

#[tokio::test]
async fn a_refused_connection_names_the_address_and_exits_2() {
    // Bind, then free the port: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let out = host(&["send", "--addr", &addr, "--operation", "local.echo"], &[], "").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("cannot connect to {addr}: ")), "{stderr}");
    assert!(stderr.contains("is the host running? start it with `onex-runtime-host run`"), "{stderr}");
}

#[tokio::test]
async fn an_answer_that_is_not_a_reply_envelope_exits_2() {
    let (addr, _server) = fake_host(|_| (404, r#"{"detail":"not found"}"#.to_owned())).await;
    let out = host(&["send", "--addr", &addr, "--operation", "local.echo"], &[], "").await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{addr} answered HTTP 404 without a reply envelope")), "{stderr}");
}

#[tokio::test]
async fn address_from_env_payload_from_stdin_and_json_logs_on_stderr() {
    let (addr, server) = fake_host(echo_reply).await;
    let out = host(
        &["--log-format", "json", "send", "--operation", "local.echo", "--payload", "-"],
        &[("ONEX_ADMIN_ADDR", &addr), ("ONEX_LOG", "onex_infra=debug")],
        r#"{"from": "stdin"}"#,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(server.await.unwrap().envelope().payload, json!({"from": "stdin"}));
    let logs: Vec<Value> = text(&out.stderr).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let posting = logs.iter().find(|l| l["fields"]["message"] == "posting envelope").expect("a posting log line");
    assert_eq!(posting["level"], "DEBUG");
    assert_eq!(posting["fields"]["addr"], addr);
    assert_eq!(posting["fields"]["operation"], "local.echo");
}

#[tokio::test]
async fn an_envelope_file_is_sent_as_is() {
    let (addr, server) = fake_host(echo_reply).await;
    let file = std::env::temp_dir().join(format!("onex-cli-send-{}.json", std::process::id()));
    let envelope = r#"{"envelope_id":"0190a0b0-0000-7000-8000-0000000000e1","correlation_id":"0190a0b0-0000-7000-8000-0000000000e1","operation":"local.echo","payload":{"k":"v"},"timestamp":"2025-01-01T00:00:00Z","target_node":"local_node"}"#;
    std::fs::write(&file, envelope).unwrap();
    let out = host(&["send", "--addr", &addr, "--envelope", file.to_str().unwrap()], &[], "").await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(server.await.unwrap().body, envelope.as_bytes());
}

#[tokio::test]
async fn a_bad_onex_log_is_an_error_naming_the_variable() {
    let out = host(&["send", "--operation", "local.echo"], &[("ONEX_LOG", "onex_infra=loud")], "").await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: invalid ONEX_LOG value `onex_infra=loud`: "), "{stderr}");
}
