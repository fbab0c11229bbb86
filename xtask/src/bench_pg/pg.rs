//! The PostgreSQL side of `bench-pg`: scratch databases (dropped on drop), the server's
//! counters (transactions committed, WAL syncs) and `pgbench -N` runs with per-transaction
//! logs for percentiles.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The database psql connects to for creating and dropping the scratch databases.
const MAINTENANCE_DB: &str = "postgres";

/// Where the server is: `PGHOST`, `PGPORT`, `PGUSER`, else `127.0.0.1:5432` as `postgres`.
#[derive(Debug, Clone)]
pub struct Server {
    host: String,
    port: String,
    user: String,
}

impl Server {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
        };
        Self { host: var("PGHOST", "127.0.0.1"), port: var("PGPORT", "5432"), user: var("PGUSER", "postgres") }
    }

    /// The URL of database `db` on this server (trust or `.pgpass` authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}@{}:{}/{db}", self.user, self.host, self.port)
    }

    fn conn_args(&self) -> [&str; 6] {
        ["-h", &self.host, "-p", &self.port, "-U", &self.user]
    }

    /// Runs one statement in `db`; returns psql's unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(self.conn_args())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql (is the PostgreSQL client installed?): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!("psql -d {db} -c {sql:?} failed ({}): {}", out.status, stderr.trim()))
        }
    }

    /// The server's version string (also checks that it answers).
    pub fn version(&self) -> Result<String, String> {
        self.psql(MAINTENANCE_DB, "SHOW server_version")
    }

    /// Creates an empty database `name` (dropping a leftover of that name first).
    pub fn create(&self, name: &str) -> Result<Database, String> {
        self.psql(MAINTENANCE_DB, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        self.psql(MAINTENANCE_DB, &format!("CREATE DATABASE {name}"))?;
        Ok(Database { server: self.clone(), name: name.to_owned() })
    }

    /// Cluster-wide WAL syncs so far (`pg_stat_wal`, PostgreSQL 14+); `None` when unknown.
    fn wal_syncs(&self) -> Option<u64> {
        self.psql(MAINTENANCE_DB, "SELECT wal_sync FROM pg_stat_wal").ok()?.parse().ok()
    }
}

/// A scratch database, dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct Database {
    server: Server,
    pub name: String,
}

/// Server counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// Transactions committed in the database (read-only ones included).
    pub commits: u64,
    /// WAL syncs of the whole cluster.
    pub wal_syncs: Option<u64>,
}

impl Counters {
    /// What happened from `before` to `self`, per `n` units of work.
    pub fn per(&self, before: &Self, n: usize) -> (f64, Option<f64>) {
        let n = n.max(1) as f64;
        let commits = self.commits.saturating_sub(before.commits) as f64 / n;
        let syncs = self.wal_syncs.zip(before.wal_syncs).map(|(a, b)| a.saturating_sub(b) as f64 / n);
        (commits, syncs)
    }
}

impl Database {
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// The counters now. Backends report their counters when idle or at exit, so read these
    /// after the clients disconnected.
    pub fn counters(&self) -> Result<Counters, String> {
        std::thread::sleep(Duration::from_millis(500));
        let sql = format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{}'", self.name);
        let out = self.server.psql(MAINTENANCE_DB, &sql)?;
        let commits = out.parse().map_err(|_| format!("pg_stat_database: unexpected {out:?}"))?;
        Ok(Counters { commits, wal_syncs: self.server.wal_syncs() })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = self.server.psql(MAINTENANCE_DB, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        {
            eprintln!("warning: cannot drop the scratch database {}: {e}", self.name);
        }
    }
}

/// One `pgbench -N` run.
#[derive(Debug)]
pub struct Pgbench {
    /// Transactions per second (pgbench's figure, without initial connection time).
    pub tps: f64,
    /// pgbench's `latency average`, milliseconds.
    pub latency_avg_ms: f64,
    /// From the per-transaction log, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Transactions in the log.
    pub transactions: usize,
    /// Server counters before and after the run.
    pub before: Counters,
    pub after: Counters,
}

/// `pgbench -i -s scale` into `db`.
pub fn init(db: &Database, scale: u32) -> Result<(), String> {
    let scale = scale.to_string();
    let out = Command::new("pgbench")
        .args(db.server.conn_args())
        .args(["-i", "-q", "-s", &scale, &db.name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pgbench (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("pgbench -i failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `pgbench -N` (simple-update) with `clients` clients for `duration`, logging every
/// transaction's latency under `log_dir`.
pub fn run(db: &Database, clients: usize, duration: Duration, log_dir: &Path) -> Result<Pgbench, String> {
    let prefix = log_dir.join(format!("pgbench-c{clients}"));
    let (c, j, t) = (clients.to_string(), clients.clamp(1, 2).to_string(), duration.as_secs().max(1).to_string());
    let args = ["-N", "-c", &c, "-j", &j, "-T", &t, "--log"];
    let before = db.counters()?;
    let out = Command::new("pgbench")
        .args(db.server.conn_args())
        .args(args)
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(&db.name)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("pgbench {} failed ({}): {}{}", args.join(" "), out.status, stdout, stderr.trim()));
    }
    let after = db.counters()?;
    let figure = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("pgbench printed no `{label}`:\n{stdout}"))
    };
    let (tps, latency_avg_ms) = (figure("tps = ")?, figure("latency average = ")?);
    let mut latencies = read_logs(&prefix)?;
    latencies.sort_unstable();
    Ok(Pgbench {
        tps,
        latency_avg_ms,
        p50_ms: super::percentile_ms(&latencies, 50.0),
        p99_ms: super::percentile_ms(&latencies, 99.0),
        transactions: latencies.len(),
        before,
        after,
    })
}

/// Latencies (µs) from the logs pgbench wrote as `<prefix>.<pid>[.<thread>]`, then removes them.
fn read_logs(prefix: &Path) -> Result<Vec<u64>, String> {
    let (Some(dir), Some(stem)) = (prefix.parent(), prefix.file_name().and_then(|n| n.to_str())) else {
        return Err(format!("bad log prefix {}", prefix.display()));
    };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut latencies = Vec::new();
    let mut files = 0;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{stem}."))) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        latencies.extend(parse_log(&text));
        files += 1;
        let _ = std::fs::remove_file(&path);
    }
    if latencies.is_empty() {
        return Err(format!("no transactions in the pgbench logs {}.* ({files} files)", prefix.display()));
    }
    Ok(latencies)
}

/// The latency column (µs) of a pgbench log: `client_id transaction_no time script_no
/// time_epoch time_us` per line.
fn parse_log(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.lines().filter_map(|line| line.split_whitespace().nth(2)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_latency_column_of_pgbench_logs() {
        let log = "0 1 1234 0 1700000000 123456\n1 1 987 0 1700000000 123999\n\n";
        assert_eq!(parse_log(log).collect::<Vec<_>>(), [1234, 987]);
    }

    #[test]
    fn counters_per_unit_of_work() {
        let before = Counters { commits: 10, wal_syncs: Some(5) };
        let after = Counters { commits: 40, wal_syncs: Some(20) };
        assert_eq!(after.per(&before, 10), (3.0, Some(1.5)));
        assert_eq!(Counters { wal_syncs: None, ..after }.per(&before, 10), (3.0, None));
    }
}
