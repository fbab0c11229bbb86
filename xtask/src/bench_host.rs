//! `cargo xtask bench-host`: the release `onex-runtime-host` binary against its targets.
//!
//! - startup: spawn to the first `200` from `GET /health/ready`, five times on fresh data
//!   directories (min and median);
//! - memory: 1,000,000 `local.echo` envelopes posted to `POST /v1/envelopes` over four
//!   keep-alive connections, then VmRSS and VmHWM from `/proc/<pid>/status`.

pub(crate) mod http;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cmd;
use crate::host_process::HostProcess;

/// Startup runs.
const STARTS: usize = 5;
/// Envelopes posted in the memory run.
const ENVELOPES: usize = 1_000_000;
/// Client connections (one thread each) of the memory run.
const CONNECTIONS: usize = 4;
/// Startup target, milliseconds.
const STARTUP_TARGET_MS: f64 = 100.0;
/// Resident memory target, MiB.
const RSS_TARGET_MB: f64 = 30.0;
/// A fixed envelope timestamp (RFC 3339); the host does not judge it.
const TIMESTAMP: &str = "2025-01-01T00:00:00Z";

/// Builds the binary, measures, prints each figure and a summary.
pub fn run(root: &Path) -> Result<(), String> {
    cmd::run(root, &cmd::cargo(), &["build", "--release", "-p", "onex-infra", "--bin", "onex-runtime-host"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release").join("onex-runtime-host");
    if !binary.is_file() {
        return Err(format!("{} was not built", binary.display()));
    }

    let mut startups = Vec::with_capacity(STARTS);
    for i in 1..=STARTS {
        let host = HostProcess::spawn(&binary, &format!("host-start-{i}"), &[])?;
        let ms = host.ready_after.as_secs_f64() * 1e3;
        host.stop()?;
        println!("startup {i}/{STARTS}: {ms:.1} ms");
        startups.push(ms);
    }
    startups.sort_by(f64::total_cmp);
    let (min, median) = (startups[0], startups[STARTS / 2]);
    println!("startup: min {min:.1} ms, median {median:.1} ms");

    let host = HostProcess::spawn(&binary, "host-memory", &[])?;
    let idle = host.memory()?;
    println!("memory after start (idle): VmRSS {:.1} MiB, VmHWM {:.1} MiB", idle.rss_mb, idle.hwm_mb);
    let load = post_envelopes(host.addr);
    let loaded = host.memory();
    let stopped = host.stop();
    let (elapsed, failures) = load?;
    let loaded = loaded?;
    stopped?;
    let rate = ENVELOPES as f64 / elapsed.as_secs_f64();
    println!(
        "load: {ENVELOPES} local.echo envelopes over {CONNECTIONS} keep-alive connections in {:.2} s: \
         {rate:.0} envelopes/s, {failures} non-200 responses",
        elapsed.as_secs_f64()
    );
    println!("memory after load: VmRSS {:.1} MiB, VmHWM {:.1} MiB", loaded.rss_mb, loaded.hwm_mb);

    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!("\nbench-host summary");
    println!(
        "  startup (spawn -> /health/ready 200): min {min:.1} ms, median {median:.1} ms \
         (target <= {STARTUP_TARGET_MS} ms: {})",
        verdict(median <= STARTUP_TARGET_MS)
    );
    println!(
        "  memory after {ENVELOPES} envelopes: VmRSS {:.1} MiB, VmHWM {:.1} MiB (target <= {RSS_TARGET_MB} MB: {})",
        loaded.rss_mb,
        loaded.hwm_mb,
        verdict(loaded.hwm_mb <= RSS_TARGET_MB)
    );
    println!("  throughput: {rate:.0} envelopes/s (POST /v1/envelopes, {CONNECTIONS} connections)");
    if failures > 0 {
        return Err(format!("{failures} envelopes were not answered 200"));
    }
    Ok(())
}

/// A `local.echo` envelope with a unique UUID-shaped id made from `n`.
fn envelope(n: usize) -> String {
    let id = format!("00000000-0000-7000-8000-{n:012x}");
    format!(
        r#"{{"envelope_id":"{id}","correlation_id":"{id}","operation":"local.echo","payload":{{"n":{n}}},"timestamp":"{TIMESTAMP}"}}"#
    )
}

/// Posts [`ENVELOPES`] envelopes over [`CONNECTIONS`] connections; returns the time taken and
/// how many responses were not `200`.
fn post_envelopes(addr: SocketAddr) -> Result<(Duration, usize), String> {
    let per = ENVELOPES / CONNECTIONS;
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
