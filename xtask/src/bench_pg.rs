//! `cargo xtask bench-pg`: durable reducer transitions on PostgreSQL against `pgbench -N` on the
//! same server, in the same run.
//!
//! First the figure of record, `benches/benches/pg_transitions.rs`: transitions through
//! `RuntimeHost::handle` in process (1, 8, 64 tasks) against pgbench with as many clients. Then
//! the same over HTTP with the bundled contracts, client threads on the same cores:
//!
//! - host: the release `onex-runtime-host` with its state store on a scratch database; 1, 8 and
//!   64 clients (one thread and keep-alive connection each, each on its own entity) post
//!   `infrastructure_state` events to `POST /v1/envelopes` (`RuntimeHost::handle`: reducer, group
//!   commit of state + outbox + reply). An entity goes `healthy` -> `degraded` -> `healthy`, ...;
//!   entering `degraded` emits an intent (an outbox row, then a `health_check_workflow` run), as
//!   the bundled contracts say. 2 s warm-up, then 10 s measured: transitions/s, p50/p99.
//! - baseline: `pgbench -N` (simple-update) with as many clients, for 10 s, on a database made
//!   by `pgbench -i -s 64`; tps, latency average and p50/p99 from its per-transaction log.
//! - both: transactions committed in the database and WAL syncs (cluster-wide, `pg_stat_wal`)
//!   per transition / transaction.
//!
//! The target (ratio >= 1.0 at 8 and 64) applies to the in-process figure; over HTTP the
//! bundled contracts also start a workflow run for every other transition, and the client
//! threads share the two cores, so that table says what a user sees, not the target.
//! Missing it is reported, not an error.
//! The server is `PGHOST`/`PGPORT`/`PGUSER` (default `127.0.0.1:5432`, `postgres`).

mod load;
mod pg;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd;
use crate::host_process::HostProcess;

/// Client counts measured; ratios are summed up from [`OVER_HTTP_FROM_CLIENTS`] on.
const CLIENTS: [usize; 3] = [1, 8, 64];
const OVER_HTTP_FROM_CLIENTS: usize = 8;
/// Host warm-up (not measured) and measured window; pgbench runs for the window.
const WARMUP: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(10);
/// `pgbench -i` scale: 6.4 M accounts, at least one branch per client.
const PGBENCH_SCALE: u32 = 64;

/// The figures of one client count.
#[derive(Debug)]
struct Row {
    clients: usize,
    host: HostFigures,
    pgbench: pg::Pgbench,
}

#[derive(Debug)]
struct HostFigures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    measured: usize,
    /// Transactions committed in the host's database, and WAL syncs, per transition.
    commits_per: f64,
    syncs_per: Option<f64>,
    /// Workflow runs started by the intents, and the outbox backlog, at the end of the window.
    runs: f64,
    backlog: f64,
}

/// Builds the host, measures both sides at each client count, prints the table and verdict.
pub fn run(root: &Path) -> Result<(), String> {
    // The figure of record: transitions through `RuntimeHost::handle` in process.
    println!("bench-pg: in process (benches/benches/pg_transitions.rs)");
    cmd::run(root, &cmd::cargo(), &["bench", "-p", "onex-benches", "--bench", "pg_transitions"])?;
    println!("\nbench-pg: over HTTP with the bundled contracts, as a new user sees it");
    cmd::run(root, &cmd::cargo(), &["build", "--release", "-p", "onex-infra", "--bin", "onex-runtime-host"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release").join("onex-runtime-host");
    if !binary.is_file() {
        return Err(format!("{} was not built", binary.display()));
    }
    let server = pg::Server::from_env();
    let version = server.version().map_err(|e| format!("PostgreSQL does not answer: {e}"))?;
    let pid = std::process::id();
    let logs = std::env::temp_dir().join(format!("onex-bench-pg-{pid}-logs"));
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let result = measure(&binary, &server, pid, &logs);
    let _ = std::fs::remove_dir_all(&logs);
    let rows = result?;
    print_summary(&version, &rows);
    Ok(())
}

fn measure(binary: &Path, server: &pg::Server, pid: u32, logs: &Path) -> Result<Vec<Row>, String> {
    println!("bench-pg: pgbench -i -s {PGBENCH_SCALE} ...");
    let baseline = server.create(&format!("onex_bench_pgbench_{pid}"))?;
    pg::init(&baseline, PGBENCH_SCALE)?;
    let mut rows = Vec::new();
    for clients in CLIENTS {
        let pgbench = pg::run(&baseline, clients, WINDOW, logs)?;
        println!(
            "pgbench -N -c {clients}: {:.0} tps, latency avg {:.3} ms, p50 {:.3} ms, p99 {:.3} ms ({} transactions)",
            pgbench.tps, pgbench.latency_avg_ms, pgbench.p50_ms, pgbench.p99_ms, pgbench.transactions
        );
        let host = measure_host(binary, server, pid, clients)?;
        println!(
            "host, {clients} clients: {:.0} transitions/s, p50 {:.3} ms, p99 {:.3} ms ({} measured); \
             {} workflow runs started, outbox backlog {} at the end",
            host.rate, host.p50_ms, host.p99_ms, host.measured, host.runs, host.backlog
        );
        rows.push(Row { clients, host, pgbench });
    }
    Ok(rows)
}

/// One client count on a fresh database and a fresh host.
fn measure_host(binary: &Path, server: &pg::Server, pid: u32, clients: usize) -> Result<HostFigures, String> {
    let db = server.create(&format!("onex_bench_host_{pid}_c{clients}"))?;
    let before = db.counters()?;
    let url = db.url();
    let env = [("ONEX_STATE_STORE_KIND", "postgres"), ("ONEX_STATE_STORE_URL", url.as_str())];
    let host = HostProcess::spawn(binary, &format!("pg-c{clients}"), &env)?;
    let load = load::drive(host.addr, clients, clients, WARMUP, WINDOW);
    let runs = host.metric("onex_workflow_runs_total");
    let backlog = host.metric("onex_outbox_backlog");
    // Stopped before the counters are read: backends report them when their client leaves.
    let stopped = host.stop();
    let load = load?;
    let (runs, backlog) = (runs?, backlog?);
    stopped?;
    let after = db.counters()?;
    let (commits_per, syncs_per) = after.per(&before, load.committed);
    Ok(HostFigures {
        rate: load.latencies.len() as f64 / load.window.as_secs_f64(),
        p50_ms: percentile_ms(&load.latencies, 50.0),
        p99_ms: percentile_ms(&load.latencies, 99.0),
        measured: load.latencies.len(),
        commits_per,
        syncs_per,
        runs,
        backlog,
    })
}

/// The `p`th percentile (nearest rank) of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1e3
}

fn print_summary(version: &str, rows: &[Row]) {
    let opt = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"));
    println!("\nbench-pg summary (PostgreSQL {version}, same server, same run; {WINDOW:?} per figure)");
    println!(
        "  host: durable reducer transitions, POST /v1/envelopes -> RuntimeHost::handle, one at a time per client"
    );
    println!("  pgbench: pgbench -N (simple-update), scale {PGBENCH_SCALE}\n");
    println!(
        "  {:>7} | {:>10} | {:>11} | {:>5} | {:>17} | {:>23} | {:>21} | {:>19}",
        "clients",
        "host tr/s",
        "pgbench tps",
        "ratio",
        "host p50/p99 ms",
        "pgbench avg/p50/p99 ms",
        "host xacts/fsyncs /tr",
        "pgbench xacts/fsyncs"
    );
    for Row { clients, host, pgbench } in rows {
        let ratio = host.rate / pgbench.tps;
        let (pg_commits, pg_syncs) = pgbench.after.per(&pgbench.before, pgbench.transactions);
        println!(
            "  {clients:>7} | {:>10.0} | {:>11.0} | {ratio:>5.2} | {:>17} | {:>23} | {:>21} | {:>19}",
            host.rate,
            pgbench.tps,
            format!("{:.2} / {:.2}", host.p50_ms, host.p99_ms),
            format!("{:.2} / {:.2} / {:.2}", pgbench.latency_avg_ms, pgbench.p50_ms, pgbench.p99_ms),
            format!("{:.2} / {}", host.commits_per, opt(host.syncs_per)),
            format!("{pg_commits:.2} / {}", opt(pg_syncs)),
        );
    }
    println!();
    if let Some(Row { host, pgbench, .. }) = rows.iter().find(|r| r.clients == 1) {
        println!(
            "  one at a time: a transition takes {:.2} ms (p50) against {:.2} ms for a pgbench -N transaction: \
             {:.2} ms more",
            host.p50_ms,
            pgbench.p50_ms,
            host.p50_ms - pgbench.p50_ms
        );
    }
    for Row { clients, host, pgbench } in rows.iter().filter(|r| r.clients >= OVER_HTTP_FROM_CLIENTS) {
        let ratio = host.rate / pgbench.tps;
        println!(
            "  {clients} clients over HTTP: host {:.0} transitions/s / pgbench {:.0} tps = {ratio:.2} \
             (the >= 1.0 target applies in process, above), host p99 {:.2} ms",
            host.rate, pgbench.tps, host.p99_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 50.0), 50.0);
        assert_eq!(percentile_ms(&us, 99.0), 99.0);
        assert_eq!(percentile_ms(&us, 100.0), 100.0);
        assert_eq!(percentile_ms(&[1500], 99.0), 1.5);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }
}
