//! `wrk`, the HTTP load generator (Debian's package), for `bench-host`: found on `PATH` or
//! installed with `apt-get`, run with [`THREADS`] threads × [`CONNECTIONS`] keep-alive
//! connections, its report read.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;

/// wrk threads of every run.
pub(crate) const THREADS: u32 = 2;
/// wrk connections of every run (kept alive, shared among the threads).
pub(crate) const CONNECTIONS: u32 = 16;

/// What a wrk run reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// Requests completed.
    pub(crate) requests: u64,
    /// The `Requests/sec:` figure.
    pub(crate) per_second: f64,
    /// Responses with a status of 400 or more (`Non-2xx or 3xx responses:`; 0 without the line).
    pub(crate) non_2xx: u64,
    /// The `Socket errors: …` line, when wrk printed one.
    pub(crate) socket_errors: Option<String>,
}

/// The wrk executable: on `PATH`, else installed with `apt-get install -y wrk` (after an
/// `apt-get update` when the install fails without one).
pub(crate) fn ensure() -> Result<PathBuf, String> {
    if let Some(path) = cmd::find_tool("wrk") {
        return Ok(path);
    }
    println!("wrk is not on PATH: installing Debian's package");
    if apt_get(&["install", "-y", "wrk"]).is_err() {
        apt_get(&["update"])?;
        apt_get(&["install", "-y", "wrk"])?;
    }
    cmd::find_tool("wrk").ok_or_else(|| "apt-get installed wrk, but it is not on PATH".to_owned())
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let line = cmd::display("apt-get", args);
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("failed to start `{line}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed ({status})")) }
}

/// A wrk script that POSTs a `local.echo` envelope, a new one per request: a UUID-shaped id
/// made of `run` (set by `--`, so a warm-up and the measured run differ), the thread and a
/// per-thread counter.
pub(crate) const ECHO_SCRIPT: &str = r#"-- POST /v1/envelopes: local.echo envelopes, each with an id of its own.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local prefix
local n = 0
function init(args)
  prefix = string.format("00000000-0000-7000-8%01x%02x-", tonumber(args[1] or "0") % 16, thread_no % 256)
end

function request()
  n = n + 1
  local id = string.format("%s%012x", prefix, n)
  local body = '{"envelope_id":"' .. id .. '","correlation_id":"' .. id ..
    '","operation":"local.echo","payload":{"n":' .. n .. '},"timestamp":"2025-01-01T00:00:00Z"}'
  return wrk.format("POST", "/v1/envelopes", {["Content-Type"] = "application/json"}, body)
end
"#;

/// Runs wrk against `url` for `seconds` (with `script` and its argument `run`, when given);
/// returns its report and its output.
pub(crate) fn run(
    wrk: &Path,
    url: &str,
    script: Option<&Path>,
    run: u32,
    seconds: u32,
) -> Result<(Report, String), String> {
    let (threads, connections, duration) =
        (format!("-t{THREADS}"), format!("-c{CONNECTIONS}"), format!("-d{seconds}s"));
    let mut args = vec![threads.as_str(), connections.as_str(), duration.as_str(), "--timeout", "10s"];
    let script = script.map(|p| p.to_string_lossy().into_owned());
    let run = run.to_string();
    if let Some(script) = &script {
        args.extend(["-s", script.as_str()]);
    }
    args.push(url);
    if script.is_some() {
        args.extend(["--", run.as_str()]);
    }
    let out = cmd::output(Path::new("."), &wrk.to_string_lossy(), &args)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let report = parse(&text).map_err(|e| format!("`{}`: {e}; its output:\n{text}", cmd::display("wrk", &args)))?;
    Ok((report, text))
}

/// Reads wrk's report: the `N requests in …` line, `Requests/sec:`, and the error lines.
pub(crate) fn parse(text: &str) -> Result<Report, String> {
    let value = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::trim));
    let per_second = value("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| "no `Requests/sec:` figure".to_owned())?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.parse::<u64>().ok()))
        .ok_or_else(|| "no `N requests in` line".to_owned())?;
    let non_2xx = match value("Non-2xx or 3xx responses:") {
        Some(n) => n.parse::<u64>().map_err(|_| format!("bad `Non-2xx or 3xx responses: {n}`"))?,
        None => 0,
    };
    let socket_errors = text.lines().map(str::trim).find(|l| l.starts_with("Socket errors:")).map(str::to_owned);
    Ok(Report { requests, per_second, non_2xx, socket_errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clean_reports() {
        let live = Report { requests: 159_811, per_second: 79_537.28, non_2xx: 0, socket_errors: None };
        assert_eq!(parse(LIVE), Ok(live));
        let echo = Report { requests: 81_983, per_second: 39_051.59, non_2xx: 0, socket_errors: None };
        assert_eq!(parse(ECHO), Ok(echo));
    }

    #[test]
    fn reads_the_error_lines() {
        let report = parse(NOT_FOUND).unwrap();
        assert_eq!((report.requests, report.non_2xx, report.socket_errors), (62_033, 62_033, None));
        let report = parse(HOST_STOPPED).unwrap();
        assert_eq!(report.non_2xx, 0);
        assert_eq!(report.socket_errors.as_deref(), Some("Socket errors: connect 0, read 16, write 42039, timeout 0"));
    }

    #[test]
    fn refuses_output_without_figures() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused\n").is_err());
        assert!(parse(&LIVE.replace("Requests/sec:  79537.28", "")).is_err());
    }

    /// Captured: `wrk -t2 -c16 -d2s --timeout 10s http://127.0.0.1:18080/health/live` (release host).
    const LIVE: &str = r#"Running 2s test @ http://127.0.0.1:18080/health/live
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.41ms   12.01ms 240.18ms   97.73%
    Req/Sec    41.92k    13.65k   59.56k    63.16%
  159811 requests in 2.01s, 19.05MB read
Requests/sec:  79537.28
Transfer/sec:      9.48MB
"#;

    /// Captured: the same with `-s echo.lua` ([`ECHO_SCRIPT`]) on `/v1/envelopes`.
    const ECHO: &str = r#"Running 2s test @ http://127.0.0.1:18080/v1/envelopes
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   539.26us    1.77ms  54.89ms   98.44%
    Req/Sec    19.62k     2.28k   29.23k    88.10%
  81983 requests in 2.10s, 52.05MB read
Requests/sec:  39051.59
Transfer/sec:     24.79MB
"#;

    /// Captured: `wrk -t2 -c16 -d1s http://127.0.0.1:18080/nope` (every response a 404).
    const NOT_FOUND: &str = r#"Running 1s test @ http://127.0.0.1:18080/nope
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   409.30us  770.60us  13.14ms   92.35%
    Req/Sec    29.67k     6.04k   48.51k    80.95%
  62033 requests in 1.10s, 15.03MB read
  Non-2xx or 3xx responses: 62033
Requests/sec:  56295.43
Transfer/sec:     13.64MB
"#;

    /// Captured: `wrk -t2 -c16 -d3s …/health/live`, the host stopped with SIGTERM after 1.5 s.
    const HOST_STOPPED: &str = r#"Running 3s test @ http://127.0.0.1:18080/health/live
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.40ms   12.57ms 280.70ms   95.71%
    Req/Sec    26.02k     8.51k   43.60k    73.53%
  88238 requests in 3.22s, 10.52MB read
  Socket errors: connect 0, read 16, write 42039, timeout 0
Requests/sec:  27432.36
Transfer/sec:      3.27MB
"#;
}
