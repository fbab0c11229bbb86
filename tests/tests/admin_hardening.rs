//! The admin API under slow and hanging peers: 100 connections sending one byte a second do
//! not delay a normal request and are cut off at the header deadline; a body that trickles
//! gets 408 without holding an envelope slot; `/health/ready` answers within its deadline
//! while a dependency hangs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use onex_e2e::host::{HostOptions, HostProcess, envelope, http, wait_for};
use onex_e2e::{contracts_with, runtime_config_with_admin, scratch_dir};
use serde_json::json;

const SLOW_SENDERS: usize = 100;

fn host(name: &str, config: &str) -> HostProcess {
    let contracts = contracts_with(name, &[("runtime/runtime_config.yaml", config)]);
    HostProcess::start(&HostOptions::new(&contracts, &scratch_dir(name)))
}

/// Whether the server closed `stream` (a read gives end of file or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => true, // an answer (408 or 400) before closing
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn slow_senders_neither_delay_a_normal_request_nor_hold_their_connections() {
    let config = runtime_config_with_admin("  auth: none\n  header_timeout_ms: 2000\n  body_timeout_ms: 2000");
    let host = host("slowloris", &config);
    let request_line = b"POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let mut slow: Vec<TcpStream> = (0..SLOW_SENDERS).map(|_| TcpStream::connect(&host.addr).unwrap()).collect();
    let started = Instant::now();
    // One byte a second on every connection, from one thread, until the test says stop: the
    // thread waits for that word, a second at most, between bytes.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let trickle = {
        let mut streams: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            for sent in 0..request_line.len() {
                for stream in &mut streams {
                    let _ = stream.write_all(&request_line[sent..=sent]);
                }
                if stopped.recv_timeout(Duration::from_secs(1)) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
            }
        })
    };

    // A normal request meanwhile: answered at once, well within its own 5 s budget.
    let body = envelope("local.echo", json!({ "n": 1 })).to_string();
    let mut normal = TcpStream::connect(&host.addr).unwrap();
    normal.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    normal.write_all(head.as_bytes()).and_then(|()| normal.write_all(body.as_bytes())).unwrap();
    let mut answer = String::new();
    normal.read_to_string(&mut answer).expect("the normal request is answered while 100 senders trickle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Every slow connection is cut off at the header deadline (2 s), long before it finishes.
    let cut = wait_for("the slow connections to be closed", Duration::from_secs(15), || {
        slow.iter_mut().all(closed).then(|| started.elapsed())
    });
    stop.send(()).unwrap();
    trickle.join().unwrap();
    assert!(cut < Duration::from_secs(request_line.len() as u64), "closed after {cut:?}");
    assert_eq!(http(&host.addr, "GET", "/health/live", None).0, 200);
}

#[test]
fn a_trickling_body_gets_408_and_holds_no_envelope_slot() {
    let config = runtime_config_with_admin("  auth: none\n  body_timeout_ms: 1000");
    let host = host("slow-body", &config);
    let mut stream = TcpStream::connect(&host.addr).unwrap();
    let head =
        "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{";
    stream.write_all(head.as_bytes()).unwrap();
    // While the body is owed, no envelope slot is taken.
    let metrics = http(&host.addr, "GET", "/metrics", None).1;
    assert!(metrics.lines().any(|l| l == "onex_in_flight 0"), "{metrics}");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).expect("an answer at the body deadline");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("ONEX_INFRA_113_ADMIN_REQUEST_TIMEOUT") && answer.contains("body_timeout_ms"), "{answer}");
}

#[test]
fn ready_answers_within_its_deadline_while_a_dependency_hangs() {
    // A "Consul" that accepts connections and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", hanging.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hanging.incoming().take(16) {
            held.push(stream);
        }
    });
    let base = runtime_config_with_admin("  auth: none\n  ready_timeout_ms: 500");
    let consul =
        format!("  consul:\n    enabled: true\n    config:\n      address: {address}\n      timeout_ms: 60000\n");
    let config =
        base.replace("  consul:\n    enabled: false\n    config:\n      address: http://127.0.0.1:8500\n", &consul);
    assert_ne!(config, base, "the consul section moved");
    let host = host("ready-deadline", &config);
    let mut stream = TcpStream::connect(&host.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("/health/ready answers although Consul hangs");
    assert!(answer.contains("\"consul\"") && answer.contains("no answer within 500 ms"), "{answer}");
    drop(host);
    drop(held);
}
