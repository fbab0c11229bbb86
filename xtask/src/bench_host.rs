//! `cargo xtask bench-host`: the release `onex-runtime-host` binary against its targets, one
//! `check` line each (see [`check`]):
//!
//! - startup: spawn to the first `200` from `GET /health/ready` on fresh data directories,
//!   with the bundled contracts (median <= 30 ms); also, untargeted, how long `validate` takes
//!   over the upstream contracts in `../shared/upstream/contracts`;
//! - HTTP ingress: `wrk` (2 threads × 16 keep-alive connections) posting `local.echo`
//!   envelopes to `POST /v1/envelopes` against `GET /health/live` on the same fresh host
//!   (throughput ratio >= 0.8);
//! - memory: 1,000,000 `local.echo` envelopes posted over four keep-alive connections to
//!   another host, then VmRSS and VmHWM from `/proc/<pid>/status` (VmHWM <= 16 MiB).
//!
//! `ONEX_BENCH_QUICK` shortens every part (for `cargo xtask bench-check`). A missed target is
//! reported, not an error; a failed request or process is.

/// The verdict lines every benchmark prints: one source, the benchmarks' own.
#[allow(dead_code)]
#[path = "../../benches/check.rs"]
pub(crate) mod check;
pub(crate) mod http;
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use check::Check;

use crate::cmd;
use crate::host_process::HostProcess;

/// Client connections (one thread each) of the memory run.
const CONNECTIONS: usize = 4;
/// Startup target, milliseconds.
const STARTUP_TARGET_MS: f64 = 30.0;
/// Ingress target: echo envelopes per second over bare `/health/live` requests per second.
const INGRESS_TARGET_RATIO: f64 = 0.8;
/// Peak resident memory target, MiB.
const HWM_TARGET_MIB: f64 = 16.0;
/// The upstream contracts `validate` is timed over, from the workspace root.
const UPSTREAM_CONTRACTS: &str = "../shared/upstream/contracts";
/// `validate` runs over the upstream contracts (the fastest counts).
const VALIDATE_RUNS: usize = 3;
/// A fixed envelope timestamp (RFC 3339); the host does not judge it.
const TIMESTAMP: &str = "2025-01-01T00:00:00Z";

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Startup runs.
    starts: usize,
    /// wrk's measured runs, seconds (each after a 1 s warm-up).
    wrk_seconds: u32,
    /// Envelopes posted in the memory run.
    envelopes: usize,
    /// A quick run (`ONEX_BENCH_QUICK`): the memory figure is not the one of record.
    quick: bool,
}

impl Plan {
    /// The full plan, or the short one.
    fn new(quick: bool) -> Self {
        if quick {
            Self { starts: 3, wrk_seconds: 2, envelopes: 200_000, quick: true }
        } else {
            Self { starts: 5, wrk_seconds: 5, envelopes: 1_000_000, quick: false }
        }
    }
}

/// Builds the binary, measures, prints each figure and a summary of the `check` lines; short
/// under `ONEX_BENCH_QUICK`.
pub fn run(root: &Path) -> Result<(), String> {
    let checks = checks(root, check::quick_run())?;
    println!("\nbench-host summary");
    for line in &checks {
        println!("  {line}");
    }
    Ok(())
}

/// Builds the binary, measures and prints each figure and verdict (briefly when `quick`, as
/// `ONEX_BENCH_QUICK` asks); returns the `check` lines. A missed target is no error.
pub fn checks(root: &Path, quick: bool) -> Result<Vec<String>, String> {
    let plan = Plan::new(quick);
    if plan.quick {
        println!("quick run (ONEX_BENCH_QUICK): short runs, figures indicative, not the ones of record");
    }
    let binary = build(root)?;
    let wrk = wrk::ensure()?;
    let startup = startup(&binary, plan)?;
    validate_upstream(root, &binary)?;
    let checks = [startup, ingress(&binary, &wrk, plan)?, memory(&binary, plan)?];
    Ok(checks.iter().map(ToString::to_string).collect())
}

/// Builds the release host binary; returns its path.
fn build(root: &Path) -> Result<PathBuf, String> {
    cmd::run(root, &cmd::cargo(), &["build", "--release", "-p", "onex-infra", "--bin", "onex-runtime-host"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release").join("onex-runtime-host");
    if binary.is_file() { Ok(binary) } else { Err(format!("{} was not built", binary.display())) }
}

/// Starts the host `plan.starts` times with the bundled contracts; judges the median time to
/// ready.
fn startup(binary: &Path, plan: Plan) -> Result<Check, String> {
    let mut startups = Vec::with_capacity(plan.starts);
    for i in 1..=plan.starts {
        let host = HostProcess::spawn(binary, &format!("host-start-{i}"), &[])?;
        let ms = host.ready_after.as_secs_f64() * 1e3;
        host.stop()?;
        println!("startup {i}/{}: {ms:.1} ms", plan.starts);
        startups.push(ms);
    }
    let median = check::median(&mut startups);
    println!("startup: min {:.1} ms, median {median:.1} ms", startups[0]);
    let name = format!("startup to ready, bundled contracts, median of {} (ms)", plan.starts);
    let verdict = Check::at_most(&name, median, STARTUP_TARGET_MS);
    println!("{verdict}");
    Ok(verdict)
}

/// Times `validate` over the upstream contracts (the fastest of [`VALIDATE_RUNS`]), printing
/// it; no target. Skipped, saying so, when the directory is missing.
fn validate_upstream(root: &Path, binary: &Path) -> Result<(), String> {
    let dir = root.join(UPSTREAM_CONTRACTS);
    if !dir.is_dir() {
        println!("validate upstream contracts: {} is missing; skipped", dir.display());
        return Ok(());
    }
    let mut fastest = Duration::MAX;
    let mut summary = String::new();
    for _ in 0..VALIDATE_RUNS {
        let started = Instant::now();
        let out = Command::new(binary)
            .arg("validate")
            .arg(&dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {} validate: {e}", binary.display()))?;
        fastest = fastest.min(started.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().rfind(|l| l.starts_with("validated ")).unwrap_or("no summary line");
        summary = format!("{last} (exit {})", out.status.code().map_or_else(|| "by signal".into(), |c| c.to_string()));
    }
    println!(
        "validate upstream contracts ({UPSTREAM_CONTRACTS}): {:.1} ms, fastest of {VALIDATE_RUNS} process runs; {summary}",
        fastest.as_secs_f64() * 1e3
    );
    Ok(())
}

/// wrk against a fresh host: `GET /health/live`, then `POST /v1/envelopes` with `local.echo`
/// envelopes, each after a 1 s warm-up; judges the throughput ratio. A response that is not
/// 2xx, or a socket error, fails the run.
fn ingress(binary: &Path, wrk: &Path, plan: Plan) -> Result<Check, String> {
    let dir = std::env::temp_dir().join(format!("onex-bench-{}-wrk", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = dir.join("echo.lua");
    std::fs::write(&script, wrk::ECHO_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let host = HostProcess::spawn(binary, "host-http", &[])?;
    let measured = measure_ingress(host.addr, wrk, &script, plan);
    let stopped = host.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (live, echo) = measured?;
    stopped?;
    let ratio = echo / live;
    println!(
        "ingress ({} threads × {} connections, {} s): POST /v1/envelopes local.echo {echo:.0}/s, \
         GET /health/live {live:.0}/s, ratio {ratio:.3}",
        wrk::THREADS,
        wrk::CONNECTIONS,
        plan.wrk_seconds
    );
    let verdict = Check::at_least(
        "HTTP POST /v1/envelopes local.echo / GET /health/live (throughput)",
        ratio,
        INGRESS_TARGET_RATIO,
    );
    println!("{verdict}");
    Ok(verdict)
}

/// Requests per second of `/health/live` and of echo envelopes.
fn measure_ingress(addr: SocketAddr, wrk: &Path, script: &Path, plan: Plan) -> Result<(f64, f64), String> {
    let live = format!("http://{addr}/health/live");
    let echo = format!("http://{addr}/v1/envelopes");
    let mut figures = [0.0; 2];
    for (i, (what, url, script)) in
        [("GET /health/live", &live, None), ("POST /v1/envelopes local.echo", &echo, Some(script))]
            .into_iter()
            .enumerate()
    {
        for (run, seconds) in [(1, 1), (2, plan.wrk_seconds)] {
            let (report, output) = wrk::run(wrk, url, script, run, seconds)?;
            let label = if run == 1 { "warm-up" } else { "measured" };
            println!("wrk {what} ({label}, {seconds} s): {} requests, {:.0}/s", report.requests, report.per_second);
            if report.non_2xx > 0 || report.socket_errors.is_some() {
                return Err(format!("wrk {what}: non-2xx responses or socket errors; wrk's report:\n{output}"));
            }
            figures[i] = report.per_second;
        }
    }
    Ok((figures[0], figures[1]))
}

/// Posts `plan.envelopes` envelopes to a fresh host; judges its VmHWM afterwards.
fn memory(binary: &Path, plan: Plan) -> Result<Check, String> {
    let host = HostProcess::spawn(binary, "host-memory", &[])?;
    let idle = host.memory()?;
    println!("memory after start (idle): VmRSS {:.1} MiB, VmHWM {:.1} MiB", idle.rss_mb, idle.hwm_mb);
    let load = post_envelopes(host.addr, plan.envelopes);
    let loaded = host.memory();
    let stopped = host.stop();
    let (elapsed, failures) = load?;
    let loaded = loaded?;
    stopped?;
    println!(
        "load: {} local.echo envelopes over {CONNECTIONS} keep-alive connections in {:.2} s: {:.0} envelopes/s",
        plan.envelopes,
        elapsed.as_secs_f64(),
        plan.envelopes as f64 / elapsed.as_secs_f64()
    );
    if failures > 0 {
        return Err(format!("{failures} envelopes were not answered 200"));
    }
    println!("memory after load: VmRSS {:.1} MiB, VmHWM {:.1} MiB", loaded.rss_mb, loaded.hwm_mb);
    if plan.quick {
        println!("(quick run: {} envelopes, not the 1,000,000 of record)", plan.envelopes);
    }
    let name = format!("VmHWM after {} local.echo envelopes (MiB)", plan.envelopes);
    let verdict = Check::at_most(&name, loaded.hwm_mb, HWM_TARGET_MIB);
    println!("{verdict}");
    Ok(verdict)
}

/// A `local.echo` envelope with a unique UUID-shaped id made from `n`.
fn envelope(n: usize) -> String {
    let id = format!("00000000-0000-7000-8000-{n:012x}");
    format!(
        r#"{{"envelope_id":"{id}","correlation_id":"{id}","operation":"local.echo","payload":{{"n":{n}}},"timestamp":"{TIMESTAMP}"}}"#
    )
}

/// Posts `count` envelopes over [`CONNECTIONS`] connections; returns the time taken and how
/// many responses were not `200`.
fn post_envelopes(addr: SocketAddr, count: usize) -> Result<(Duration, usize), String> {
    let per = count / CONNECTIONS;
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || -> Result<usize, String> {
                let mut conn = http::Connection::open(addr, Duration::from_secs(30))
                    .map_err(|e| format!("connection {c}: cannot connect: {e}"))?;
                let mut failures = 0;
                for i in 0..per {
                    let n = c * per + i + 1;
                    let response = conn
                        .send("POST", "/v1/envelopes", Some(envelope(n).as_bytes()), false)
                        .map_err(|e| format!("connection {c}, envelope {n}: {e}"))?;
                    if response.status != 200 {
                        if failures == 0 {
                            let body = String::from_utf8_lossy(&response.body);
                            eprintln!("envelope {n}: HTTP {}: {body}", response.status);
                        }
                        failures += 1;
                    }
                }
                Ok(failures)
            })
        })
        .collect();
    let mut failures = 0;
    for worker in workers {
        failures += worker.join().map_err(|_| "a client thread panicked".to_owned())??;
    }
    Ok((started.elapsed(), failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_json_with_unique_uuid_shaped_ids() {
        let text = envelope(0xabc);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["envelope_id"], "00000000-0000-7000-8000-000000000abc");
        assert_eq!(value["operation"], "local.echo");
        assert_eq!(value["payload"]["n"], 0xabc);
        assert_ne!(envelope(1), envelope(2));
    }
}
