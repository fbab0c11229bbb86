//! A release `onex-runtime-host run` process for the benchmarks: started on a free port and a
//! fresh data directory, waited for until `/health/ready` answers 200, read (metrics, memory)
//! and stopped with SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::bench_host::http;

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(2);
/// How long a start may take before the run is declared failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the host may take to exit after SIGTERM (its drain bound is 10 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running host, answering ready.
#[derive(Debug)]
pub(crate) struct HostProcess {
    child: Child,
    /// Its admin address.
    pub(crate) addr: SocketAddr,
    dir: PathBuf,
    /// From spawn to the first `200` from `/health/ready`.
    pub(crate) ready_after: Duration,
}

/// Resident memory of a process, MiB.
#[derive(Debug)]
pub(crate) struct Memory {
    pub(crate) rss_mb: f64,
    pub(crate) hwm_mb: f64,
}

impl HostProcess {
    /// Starts `binary` with `env` on a free port and a fresh data directory named after `name`,
    /// from that directory (no `./contracts` there, so the host serves the contracts built into
    /// the binary); waits until it is ready.
    pub(crate) fn spawn(binary: &Path, name: &str, env: &[(&str, &str)]) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("onex-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let addr = free_port()?;
        let log = std::fs::File::create(dir.join("host.log")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .env("ONEX_DATA_DIR", dir.join("data"))
            .env("ONEX_ADMIN_ADDR", addr.to_string())
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut host = Self { child, addr, dir, ready_after: Duration::ZERO };
        match host.wait_ready(started) {
            Ok(after) => {
                host.ready_after = after;
                Ok(host)
            }
            Err(e) => {
                let log = host.log();
                let _ = host.child.kill();
                let _ = host.child.wait();
                Err(format!("{e}; host log:\n{log}"))
            }
        }
    }

    fn wait_ready(&mut self, started: Instant) -> Result<Duration, String> {
        loop {
            if let Ok(response) = http::get(self.addr, "/health/ready", Duration::from_secs(1))
                && response.status == 200
            {
                return Ok(started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the host exited before it was ready ({status})"));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!("not ready after {START_TIMEOUT:?}"));
            }
            sleep(POLL);
        }
    }

    /// What the host wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("host.log")).unwrap_or_default()
    }

    /// VmRSS and VmHWM of the host process.
    pub(crate) fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let kb = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .ok_or_else(|| format!("{path}: no {field}"))
        };
        Ok(Memory { rss_mb: kb("VmRSS:")? / 1024.0, hwm_mb: kb("VmHWM:")? / 1024.0 })
    }

    /// The sum of the samples of metric `name` (all label sets) in `GET /metrics`.
    pub(crate) fn metric(&self, name: &str) -> Result<f64, String> {
        let response =
            http::get(self.addr, "/metrics", Duration::from_secs(10)).map_err(|e| format!("/metrics: {e}"))?;
        let text = String::from_utf8_lossy(&response.body);
        Ok(text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGTERM, then waits for the exit; removes the temporary directory.
    pub(crate) fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let result = loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => break Ok(()),
                Ok(Some(status)) => {
                    break Err(format!("the host exited with {status} after SIGTERM; log:\n{}", self.log()));
                }
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(format!("the host did not exit within {EXIT_TIMEOUT:?} of SIGTERM ({sent:?}); killed"));
                }
                Err(e) => break Err(format!("waiting for the host: {e}")),
            }
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        result
    }
}

/// A loopback address with a port free right now.
fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map_err(|e| format!("cannot find a free port: {e}"))
}
