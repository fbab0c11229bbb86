//! A running `onex-runtime-host run` process for end-to-end tests: started on a free port with
//! its own data directory, talked to over HTTP, stopped with real signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::host_binary;

/// A host process; killed when dropped.
#[derive(Debug)]
pub struct HostProcess {
    child: Child,
    /// The admin address it listens on.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
}

/// How a host is started.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Contracts directory.
    pub contracts: PathBuf,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Extra arguments to `run`.
    pub extra_args: Vec<String>,
}

impl HostOptions {
    /// A host serving `contracts` with state in `data_dir`.
    pub fn new(contracts: &Path, data_dir: &Path) -> Self {
        Self {
            contracts: contracts.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            env: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a host wrote before it exited, and how it exited, when it did not become ready.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit status, if it exited.
    pub status: Option<ExitStatus>,
    /// Its stderr.
    pub logs: String,
}

impl HostProcess {
    /// Starts a host and waits until it logs that it is ready; panics if it does not.
    pub fn start(options: &HostOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|f| panic!("the host did not start ({:?}):\n{}", f.status, f.logs))
    }

    /// Starts a host; `Err` with its logs when it exits or is not ready within 60 s.
    pub fn try_start(options: &HostOptions) -> Result<Self, StartFailure> {
        let mut command = Command::new(host_binary());
        command
            .args(["--log-format", "json", "run", "--admin-addr", "127.0.0.1:0"])
            .arg("--contracts")
            .arg(&options.contracts)
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(&options.extra_args)
            .env_remove("ONEX_ADMIN_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn the host: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let logs = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        // Also on disk, for a run that hangs or is killed before it can print them.
        let file = options.data_dir.join(format!("host-{}.log", child.id()));
        let _ = std::fs::create_dir_all(&options.data_dir);
        let mut on_disk = std::fs::File::create(&file).ok();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(file) = on_disk.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                if let Ok(event) = serde_json::from_str::<Json>(&line)
                    && event["fields"]["message"] == "onex-runtime-host ready"
                {
                    let _ = ready_tx.send(event["fields"]["admin"].as_str().unwrap_or_default().to_owned());
                }
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self { child, addr, data_dir: options.data_dir.clone(), logs });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(StartFailure {
                    status: Some(status),
                    logs: logs.lock().map(|l| l.clone()).unwrap_or_default(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(StartFailure { status: None, logs: logs.lock().map(|l| l.clone()).unwrap_or_default() });
            }
        }
    }

    /// Everything the host logged so far (JSON lines).
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, None)
    }

    /// `GET path` parsed as JSON.
    pub fn get_json(&self, path: &str) -> (u16, Json) {
        let (status, body) = self.get(path);
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}")))
    }

    /// `POST /v1/envelopes` with a raw body: status and JSON reply.
    pub fn post_raw(&self, body: &[u8]) -> (u16, Json) {
        let (status, text) = http(&self.addr, "POST", "/v1/envelopes", Some(body));
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply not JSON ({e}): {text}")))
    }

    /// Posts `envelope` and returns status and reply.
    pub fn post(&self, envelope: &Json) -> (u16, Json) {
        self.post_raw(envelope.to_string().as_bytes())
    }

    /// Posts a fresh envelope for `operation` with `payload`.
    pub fn send(&self, operation: &str, payload: Json) -> (u16, Json) {
        self.post(&envelope(operation, payload))
    }

    /// The value of a metric line (`name{labels}`) in `/metrics`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics");
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `KILL`, `INT`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh, unique envelope id (UUIDv7-shaped: time-prefixed, then a per-process counter).
pub fn new_id() -> String {
    let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let pid = u64::from(std::process::id()) & 0xffff;
    format!(
        "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        (millis >> 16) as u32,
        (millis & 0xffff) as u16,
        pid & 0xfff,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A request envelope as JSON.
pub fn envelope(operation: &str, payload: Json) -> Json {
    let id = new_id();
    json!({
        "envelope_id": id, "correlation_id": id, "operation": operation, "payload": payload,
        "timestamp": "2026-11-22T00:00:00Z",
    })
}

/// Polls `probe` every 25 ms until it returns a value; panics naming `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One HTTP/1.1 request on a fresh connection: status and body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    http_with(addr, method, path, &[], body)
}

/// One HTTP/1.1 request with extra `headers` on a fresh connection: status and body (60 s at
/// most for the answer).
pub fn http_with(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.unwrap_or_default();
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let typed = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let content_type = if typed { "" } else { "Content-Type: application/json\r\n" };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let sent = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    if sent.is_err() && response.is_empty() {
        panic!("{method} {path}: request failed: {sent:?} {read:?}");
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}
