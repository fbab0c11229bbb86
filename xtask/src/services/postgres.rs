//! PostgreSQL as Debian/Ubuntu package it: clusters managed by `pg_ctlcluster`, the machine's
//! server used when it answers.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{Details, Files, Pairs, run_with_env};
use crate::cmd;

/// Where it answers.
pub(super) const ADDR: &str = "127.0.0.1:5432";
/// The database URL the tests get.
const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const CONFIG_ROOT: &str = "/etc/postgresql";
const CLUSTER: &str = "main";
const PSQL: &[&str] = &["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc"];

/// The installed major version to use: the highest numeric directory name.
pub(super) fn pick_version<I: IntoIterator<Item = String>>(names: I) -> Option<String> {
    names
        .into_iter()
        .filter_map(|n| n.parse::<f64>().ok().map(|v| (v, n)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

fn version() -> Option<String> {
    let entries = std::fs::read_dir(CONFIG_ROOT).ok()?;
    pick_version(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()))
}

pub(super) fn installed() -> bool {
    version().is_some()
}

fn ctl(action: &str) -> Result<(), String> {
    let version = version().ok_or_else(|| format!("no PostgreSQL cluster under {CONFIG_ROOT}"))?;
    run_with_env("pg_ctlcluster", &["--skip-systemctl-redirect", &version, CLUSTER, action], &[])
}

/// Starts the cluster; nothing to record (the cluster is stopped by name).
pub(super) fn start(_files: &Files) -> Result<Pairs, String> {
    ctl("start").map(|()| Vec::new())
}

pub(super) fn stop(_files: &Files, _details: &Details) -> Result<(), String> {
    ctl("stop")
}

/// `pg_hba.conf` with password-less access from localhost put first (a test machine's
/// fresh install; unchanged if the lines are there).
pub(super) fn trust_localhost(pg_hba: &str) -> String {
    const TRUST: &str = "# added by `cargo xtask services up` (test machine)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n";
    if pg_hba.contains(TRUST) { pg_hba.to_owned() } else { format!("{TRUST}{pg_hba}") }
}

pub(super) fn install() -> Result<(), String> {
    run_with_env("apt-get", &["update"], &[])?;
    run_with_env("apt-get", &["install", "-y", "postgresql"], &[("DEBIAN_FRONTEND", "noninteractive")])?;
    let version = version().ok_or_else(|| format!("installed PostgreSQL, but found no cluster under {CONFIG_ROOT}"))?;
    let hba: PathBuf = Path::new(CONFIG_ROOT).join(&version).join(CLUSTER).join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).map_err(|e| format!("cannot read {}: {e}", hba.display()))?;
    std::fs::write(&hba, trust_localhost(&text)).map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
    // The package may have started the cluster with the old rules.
    if super::answers(ADDR) { ctl("reload") } else { Ok(()) }
}

fn psql(sql: &str) -> Result<String, String> {
    let args: Vec<&str> = PSQL.iter().copied().chain([sql]).collect();
    let out = cmd::output(Path::new("."), "psql", &args)?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// Waits until queries run (a starting server refuses them), then creates database `test`.
pub(super) fn prepare(_files: &Files, _details: &Details, deadline: Instant) -> Result<Pairs, String> {
    let exists = loop {
        match psql("SELECT 1 FROM pg_database WHERE datname = 'test'") {
            Ok(out) => break out == "1",
            Err(e) if Instant::now() >= deadline => return Err(format!("PostgreSQL does not run queries: {e}")),
            Err(_) => sleep(Duration::from_millis(250)),
        }
    };
    if !exists {
        psql("CREATE DATABASE test")?;
        println!("services: created database `test`");
    }
    Ok(vec![("ONEX_POSTGRES_URL".to_owned(), URL.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_installed_version_is_used() {
        let names = ["9.6", "15", "common", "13"].map(str::to_owned);
        assert_eq!(pick_version(names), Some("15".to_owned()));
        assert_eq!(pick_version(Vec::new()), None);
    }

    #[test]
    fn localhost_trust_is_added_once_and_first() {
        let hba = "local all postgres peer\n";
        let once = trust_localhost(hba);
        assert!(once.ends_with(hba));
        assert!(once.starts_with("# added by"));
        assert!(once.contains("host all all 127.0.0.1/32 trust\n"));
        assert_eq!(trust_localhost(&once), once);
    }
}
