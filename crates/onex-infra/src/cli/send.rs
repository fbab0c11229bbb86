//! `send`: post one envelope to a running host's admin HTTP API and print the reply envelope.
//!
//! The envelope may be of any dialect the host reads (`--envelope`); the reply printed is in the
//! same dialect. Exit 0 when the reply says it succeeded (`"success": true`, or the Python
//! runtime's `"status": "success"`), 1 when the host answered with a failed reply,
//! 2 for usage and transport errors (bad flags, unreadable input, nothing listening, timeout,
//! an answer that is not a reply envelope).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, value_parser};
use onex_core::envelope::{Envelope, EnvelopeError};
use serde_json::Value;
use uuid::Uuid;

use super::http_client::{HttpClientError, post_json};
use crate::ids::{new_uuid_v7, now_utc};

/// Where the admin API listens when neither `--addr` nor `ONEX_ADMIN_ADDR` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8085";

/// The admin API path that takes one request envelope and answers its reply.
pub const ENVELOPES_PATH: &str = "/v1/envelopes";

/// Arguments of `send`: either `--operation` (with `--payload`) or `--envelope`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("request").required(true).args(["operation", "envelope"])))]
pub struct SendArgs {
    /// Admin API address of the running host.
    #[arg(long, value_name = "HOST:PORT", env = "ONEX_ADMIN_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// Operation to request, `handler.name` (for example `local.echo`).
    #[arg(long, value_name = "OP")]
    pub operation: Option<String>,
    /// Request payload as JSON, or `-` to read it from stdin [default: {}].
    #[arg(long, value_name = "JSON|-", conflicts_with = "envelope")]
    pub payload: Option<String>,
    /// Send a complete envelope read from a JSON file (`-` for stdin) as it is.
    #[arg(long, value_name = "FILE|-")]
    pub envelope: Option<PathBuf>,
    /// Correlation id of the request [default: the new envelope's id].
    #[arg(long, value_name = "UUID", conflicts_with = "envelope")]
    pub correlation_id: Option<Uuid>,
    /// Give up when the whole exchange takes longer than this.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

/// The request to post: the JSON bytes and, for messages, its operation and id (none when the
/// host is to mint it).
#[derive(Debug)]
struct Prepared {
    body: Vec<u8>,
    operation: String,
    envelope_id: Option<Uuid>,
}

/// Builds the request body from the flags; `stdin` is read for `--payload -` or `--envelope -`.
fn prepare(args: &SendArgs, stdin: &mut dyn Read) -> Result<Prepared, String> {
    if args.addr.trim().is_empty() {
        return Err(format!("--addr (or ONEX_ADMIN_ADDR) is empty: give host:port (for example {DEFAULT_ADDR})"));
    }
    if args.addr.contains("://") {
        return Err(format!("--addr `{}`: give host:port (for example {DEFAULT_ADDR}), not a URL", args.addr));
    }
    if let Some(source) = &args.envelope {
        let (name, bytes) = read_input(source, stdin)?;
        // Checked here for a clear message (any dialect), then sent byte for byte; an id it
        // leaves out is minted by the host, not here.
        let minted = crate::ids::minted();
        let envelope = Envelope::decode(&bytes, usize::MAX, minted).map_err(|e| format!("--envelope {name}: {e}"))?;
        let envelope_id = (envelope.envelope_id != minted.envelope_id).then_some(envelope.envelope_id);
        return Ok(Prepared { body: bytes, operation: envelope.operation, envelope_id });
    }
    let operation = args.operation.clone().unwrap_or_default();
    let payload = match args.payload.as_deref() {
        None => Value::Object(serde_json::Map::new()),
        Some("-") => {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|e| format!("--payload -: cannot read stdin: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("--payload - (stdin) is not valid JSON: {e}"))?
        }
        Some(text) => serde_json::from_str(text).map_err(|e| format!("--payload is not valid JSON: {e}"))?,
    };
    let mut envelope = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
    if let Some(correlation_id) = args.correlation_id {
        envelope.correlation_id = correlation_id;
    }
    envelope.validate().map_err(|e| match e {
        EnvelopeError::BadOperation { operation, .. } => format!(
            "--operation `{operation}` is not of the form `handler.name` (lowercase [a-z0-9_] segments, \
             for example `local.echo`)"
        ),
        other => other.to_string(),
    })?;
    let body = serde_json::to_vec(&envelope).map_err(|e| format!("cannot encode the envelope: {e}"))?;
    Ok(Prepared { body, operation: envelope.operation, envelope_id: Some(envelope.envelope_id) })
}

/// The bytes of `source` (a file, or stdin for `-`) and a name for messages.
fn read_input(source: &Path, stdin: &mut dyn Read) -> Result<(String, Vec<u8>), String> {
    let mut bytes = Vec::new();
    if source == Path::new("-") {
        stdin.read_to_end(&mut bytes).map_err(|e| format!("--envelope -: cannot read stdin: {e}"))?;
        return Ok(("(stdin)".to_owned(), bytes));
    }
    let name = source.display().to_string();
    let bytes = std::fs::read(source).map_err(|e| format!("--envelope {name}: cannot read: {e}"))?;
    Ok((name, bytes))
}

/// The host's answer, judged by the reply envelope's `success` flag.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A reply envelope; `success` is its flag.
    Reply { reply: Value, success: bool },
    /// Anything else (a wrong path, a proxy's error page, ...), described.
    NotAReply(String),
}

/// Whether a reply (of any dialect) says it succeeded: its boolean `success`, or the Python
/// runtime's `status` (`success` / `error`).
fn reply_success(reply: &Value) -> Option<bool> {
    reply.get("success").and_then(Value::as_bool).or_else(|| match reply.get("status").and_then(Value::as_str) {
        Some("success") => Some(true),
        Some("error") => Some(false),
        _ => None,
    })
}

/// The `[code] message` of a failed reply: this runtime's `{code, message}` or upstream's string.
fn reply_failure(reply: &Value) -> String {
    match reply.get("error") {
        Some(Value::String(text)) => text.clone(),
        Some(error) => {
            let code = error.get("code").and_then(Value::as_str).unwrap_or("no error code");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            format!("[{code}] {message}")
        }
        None => "[no error code]".to_owned(),
    }
}

/// Judges a response of any status by its body: a JSON object that says whether it succeeded is
/// a reply envelope; anything else is described (its first 200 characters).
fn judge(addr: &str, status: u16, body: &[u8]) -> Answer {
    let snippet = |text: &str| text.chars().take(200).collect::<String>();
    match serde_json::from_slice::<Value>(body) {
        Ok(reply) => match reply_success(&reply) {
            Some(success) => Answer::Reply { reply, success },
            None => Answer::NotAReply(format!(
                "{addr} answered HTTP {status} without a reply envelope: {}",
                snippet(&reply.to_string())
            )),
        },
        Err(_) => Answer::NotAReply(format!(
            "{addr} answered HTTP {status} with a body that is not JSON: {:?}",
            snippet(&String::from_utf8_lossy(body))
        )),
    }
}

/// The message for a request that got no HTTP answer.
fn transport_message(e: &HttpClientError) -> String {
    if e.is_connection_refused() {
        format!(
            "{e}; is the host running? start it with `onex-runtime-host run` (or pass --addr / set ONEX_ADMIN_ADDR)"
        )
    } else {
        e.to_string()
    }
}

/// Reports a usage or transport error on stderr; exit code 2.
fn exit_2(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(2)
}

pub(super) fn run(args: SendArgs) -> ExitCode {
    let prepared = match prepare(&args, &mut std::io::stdin()) {
        Ok(prepared) => prepared,
        Err(message) => return exit_2(&message),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return exit_2(&format!("cannot start the async runtime: {e}")),
    };
    let addr = args.addr.as_str();
    tracing::debug!(addr, operation = %prepared.operation, envelope_id = ?prepared.envelope_id, "posting envelope");
    let timeout = Duration::from_millis(args.timeout_ms);
    let (status, body) = match runtime.block_on(post_json(addr, ENVELOPES_PATH, prepared.body, timeout)) {
        Ok(answer) => answer,
        Err(e) => return exit_2(&transport_message(&e)),
    };
    tracing::debug!(addr, status, bytes = body.len(), "reply received");
    match judge(addr, status, &body) {
        Answer::NotAReply(message) => exit_2(&message),
        Answer::Reply { reply, success } => {
            let pretty = serde_json::to_string_pretty(&reply).unwrap_or_else(|_| reply.to_string());
            let _ = writeln!(std::io::stdout().lock(), "{pretty}");
            if success {
                return ExitCode::SUCCESS;
            }
            let failure = reply_failure(&reply);
            let _ = writeln!(std::io::stderr(), "{} failed (HTTP {status}): {failure}", prepared.operation);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SendArgs,
    }

    fn args(flags: &[&str]) -> Result<SendArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("send").chain(flags.iter().copied())).map(|w| w.args)
    }

    fn prepared_envelope(flags: &[&str], stdin: &str) -> Result<Value, String> {
        let p = prepare(&args(flags).unwrap(), &mut stdin.as_bytes())?;
        Ok(serde_json::from_slice(&p.body).unwrap())
    }

    #[test]
    fn builds_a_request_envelope_with_an_empty_object_payload_by_default() {
        let e = prepared_envelope(&["--operation", "local.echo"], "").unwrap();
        assert_eq!(e["operation"], "local.echo");
        assert_eq!(e["payload"], serde_json::json!({}));
        assert_eq!(e["correlation_id"], e["envelope_id"]);
        assert!(e.get("is_response").is_none() && e.get("success").is_none(), "{e}");
        let id: Uuid = e["envelope_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn payload_comes_from_the_flag_or_stdin_and_correlation_id_is_kept() {
        let cid = "0190a0b0-0000-7000-8000-000000000001";
        let e =
            prepared_envelope(&["--operation", "local.echo", "--payload", r#"{"n":1}"#, "--correlation-id", cid], "")
                .unwrap();
        assert_eq!(e["payload"], serde_json::json!({"n": 1}));
        assert_eq!(e["correlation_id"], cid);
        let e = prepared_envelope(&["--operation", "local.echo", "--payload", "-"], "[1, 2]\n").unwrap();
        assert_eq!(e["payload"], serde_json::json!([1, 2]));
    }

    #[test]
    fn bad_operation_payload_or_addr_are_clear_errors() {
        let err = prepared_envelope(&["--operation", "Echo"], "").unwrap_err();
        assert!(err.starts_with("--operation `Echo` is not of the form `handler.name`"), "{err}");
        let err = prepared_envelope(&["--operation", "local.echo", "--payload", "{nope"], "").unwrap_err();
        assert!(err.starts_with("--payload is not valid JSON: "), "{err}");
        let err = prepared_envelope(&["--operation", "local.echo", "--payload", "-"], "").unwrap_err();
        assert!(err.starts_with("--payload - (stdin) is not valid JSON: "), "{err}");
        let err = prepared_envelope(&["--addr", "http://127.0.0.1:8085", "--operation", "local.echo"], "").unwrap_err();
        assert!(err.ends_with("give host:port (for example 127.0.0.1:8085), not a URL"), "{err}");
        let err = prepared_envelope(&["--addr", " ", "--operation", "local.echo"], "").unwrap_err();
        assert!(err.starts_with("--addr (or ONEX_ADMIN_ADDR) is empty"), "{err}");
    }

    #[test]
    fn an_envelope_from_stdin_is_sent_byte_for_byte_after_validation() {
        let text = r#"{"envelope_id":"0190a0b0-0000-7000-8000-000000000002","correlation_id":"0190a0b0-0000-7000-8000-000000000002","operation":"local.echo","timestamp":"2025-01-01T00:00:00Z","extra":true}"#;
        let p = prepare(&args(&["--envelope", "-"]).unwrap(), &mut text.as_bytes()).unwrap();
        assert_eq!(p.body, text.as_bytes());
        assert_eq!(p.operation, "local.echo");
        let bad = text.replace("local.echo", "nodot");
        let err = prepare(&args(&["--envelope", "-"]).unwrap(), &mut bad.as_bytes()).unwrap_err();
        assert!(err.starts_with("--envelope (stdin): envelope ") && err.contains("`nodot`"), "{err}");
        let python = r#"{"operation": "echo.ping", "payload": {"message": "hello"}}"#;
        let p = prepare(&args(&["--envelope", "-"]).unwrap(), &mut python.as_bytes()).unwrap();
        assert_eq!((p.body.as_slice(), p.operation.as_str(), p.envelope_id), (python.as_bytes(), "echo.ping", None));
        let err = prepare(&args(&["--envelope", "-"]).unwrap(), &mut r#"{"payload": {}}"#.as_bytes()).unwrap_err();
        assert!(
            err.starts_with("--envelope (stdin): envelope without an envelope_id: missing field `operation`"),
            "{err}"
        );
        let err = prepare(&args(&["--envelope", "/nonexistent/e.json"]).unwrap(), &mut "".as_bytes()).unwrap_err();
        assert!(err.starts_with("--envelope /nonexistent/e.json: cannot read: "), "{err}");
    }

    #[test]
    fn flags_need_exactly_one_way_of_saying_what_to_send() {
        assert!(args(&[]).is_err());
        assert!(args(&["--operation", "local.echo", "--envelope", "e.json"]).is_err());
        assert!(args(&["--envelope", "e.json", "--payload", "{}"]).is_err());
        assert!(args(&["--envelope", "e.json", "--correlation-id", "0190a0b0-0000-7000-8000-000000000002"]).is_err());
        assert!(args(&["--operation", "local.echo", "--correlation-id", "not-a-uuid"]).is_err());
        assert!(args(&["--operation", "local.echo", "--timeout-ms", "0"]).is_err());
        let a = args(&["--operation", "local.echo"]).unwrap();
        assert_eq!(a.timeout_ms, 30_000);
    }

    #[test]
    fn the_reply_decides_between_success_failure_and_not_a_reply() {
        let ok = br#"{"success":true,"payload":{}}"#;
        assert!(matches!(judge("h:1", 200, ok), Answer::Reply { success: true, .. }));
        let failed = br#"{"success":false,"error":{"code":"X","category":"validation","message":"m"}}"#.as_slice();
        assert!(matches!(judge("h:1", 422, failed), Answer::Reply { success: false, .. }));
        let python = br#"{"status":"success","payload":{},"correlation_id":"59bc39d5-5a92-49fe-827c-e5e6cbe4dd5a"}"#;
        assert!(matches!(judge("h:1", 200, python), Answer::Reply { success: true, .. }));
        let python_failed = br#"{"success":false,"status":"error","error":"[X] m"}"#;
        let Answer::Reply { reply, success: false } = judge("h:1", 404, python_failed) else { panic!() };
        assert_eq!(reply_failure(&reply), "[X] m");
        let Answer::Reply { reply, .. } = judge("h:1", 422, failed) else { panic!() };
        assert_eq!(reply_failure(&reply), "[X] m");
        let Answer::NotAReply(m) = judge("h:1", 404, br#"{"detail":"no route"}"#) else { panic!() };
        assert_eq!(m, r#"h:1 answered HTTP 404 without a reply envelope: {"detail":"no route"}"#);
        let Answer::NotAReply(m) = judge("h:1", 502, b"Bad Gateway") else { panic!() };
        assert_eq!(m, r#"h:1 answered HTTP 502 with a body that is not JSON: "Bad Gateway""#);
    }
}
