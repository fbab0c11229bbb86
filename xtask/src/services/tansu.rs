//! tansu (a Kafka-protocol broker) as the tests' Kafka: installed with `cargo install` into a
//! cache outside the repo (skipped when cached), started on loopback with its SQLite storage
//! engine in a temp dir, so a broker restart keeps what it acknowledged. It creates no topic on
//! first use: the host and the tests create theirs.
//!
//! tansu 0.6's SQLite schema has no index on its `header` table, and a fetch looks up each
//! record's headers by `(topition, offset_id)`: every record fetched scans every header stored
//! (an envelope carries about twenty), so the broker slows down as its log grows (20 ms a record
//! at 13,000 records). Once the broker has made its schema, `up` adds that index
//! ([`HEADER_INDEX`], with Debian's `sqlite3`); the tests' own brokers do the same.

use std::path::PathBuf;
use std::time::Instant;

use super::{Details, Files, Pairs, detail, process, run_with_env};
use crate::cmd;

/// Where it answers (Kafka's usual port, loopback only).
pub(super) const ADDR: &str = "127.0.0.1:9092";
/// The crate `cargo install` builds `tansu` from, at the version the tests were written against.
const CRATE: &str = "tansu";
const VERSION: &str = "0.6.0";
/// The binary's name.
const BINARY: &str = "tansu";
/// The storage file, relative to the data dir (tansu reads `sqlite://` paths relative to its
/// working directory).
const STORAGE: &str = "sqlite://tansu.db";

/// The index tansu's store lacks, in the file the tests' own brokers
/// (`tests/tests/kafka_support/`) read too: one statement, handed to `sqlite3` as an argument
/// (so no leading `--` comment, which it would take for an option).
const HEADER_INDEX: &str = include_str!("tansu_header_index.sql");

/// `tansu` in the cached cargo root ([`cmd::cargo_root`]), else on `PATH`.
fn binary() -> Option<PathBuf> {
    cmd::find_tool(BINARY)
}

pub(super) fn installed() -> bool {
    binary().is_some() && cmd::find_tool("sqlite3").is_some()
}

/// `cargo install tansu --locked --features libsql` into [`cmd::cargo_root`], and Debian's
/// `sqlite3` (for [`HEADER_INDEX`]); each only when missing.
pub(super) fn install() -> Result<(), String> {
    if cmd::find_tool("sqlite3").is_none() {
        println!("services: installing sqlite3 (to index the broker's store)");
        run_with_env("apt-get", &["update"], &[])?;
        run_with_env("apt-get", &["install", "-y", "sqlite3"], &[("DEBIAN_FRONTEND", "noninteractive")])?;
    }
    if binary().is_some() {
        return Ok(());
    }
    let root = cmd::cargo_root().to_string_lossy().into_owned();
    println!(
        "services: `cargo install {CRATE}@{VERSION} --locked --features libsql --root {root}` (20-30 min on 2 cores; cached afterwards)"
    );
    let started = Instant::now();
    let spec = format!("{CRATE}@{VERSION}");
    run_with_env(&cmd::cargo(), &["install", &spec, "--locked", "--features", "libsql", "--root", &root], &[])?;
    println!("services: installed {BINARY} in {:.0?}", started.elapsed());
    Ok(())
}

/// The broker's arguments: listening and advertised on `addr`, storage in its working dir.
pub(super) fn broker_args(addr: &str) -> Vec<String> {
    let url = format!("tcp://{addr}");
    ["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", STORAGE]
        .map(str::to_owned)
        .to_vec()
}

/// Starts the broker in the background on a fresh temp dir; records its pid and dir.
pub(super) fn start(files: &Files) -> Result<Pairs, String> {
    let bin = binary().ok_or("tansu is not installed")?;
    let dir = process::temp_dir("tansu")?;
    let args = broker_args(ADDR);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = process::spawn(files, &bin, &args, &dir, "onex-tansu.log")?;
    Ok(vec![("pid".to_owned(), pid.to_string()), ("dir".to_owned(), dir.to_string_lossy().into_owned())])
}

/// Stops the broker `start` started (by its pid) and removes its data dir.
pub(super) fn stop(_files: &Files, details: &Details) -> Result<(), String> {
    process::stop(detail(details, "pid"), BINARY, detail(details, "dir"))
}

/// Adds [`HEADER_INDEX`] to the store of the broker `start` started (a broker that was running
/// before `up` is left as it is); the env lines: where the broker is, and the binary (tests that
/// stop and restart a broker run their own on another port).
pub(super) fn prepare(_files: &Files, details: &Details, _deadline: Instant) -> Result<Pairs, String> {
    let bin = binary().ok_or("tansu is not installed")?;
    if let Some(dir) = detail(details, "dir") {
        index_headers(&PathBuf::from(dir).join("tansu.db"))?;
    }
    Ok(vec![
        ("ONEX_KAFKA_BOOTSTRAP".to_owned(), ADDR.to_owned()),
        ("ONEX_TANSU_BIN".to_owned(), bin.to_string_lossy().into_owned()),
    ])
}

/// Runs [`HEADER_INDEX`] on the store at `db`, waiting up to 10 s for the broker's own writes.
fn index_headers(db: &std::path::Path) -> Result<(), String> {
    let sqlite3 = cmd::find_tool("sqlite3").ok_or("sqlite3 is not installed")?;
    let (sqlite3, db) = (sqlite3.to_string_lossy(), db.to_string_lossy());
    run_with_env(&sqlite3, &["-cmd", ".timeout 10000", &db, HEADER_INDEX], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_listens_on_loopback_and_keeps_its_data_in_sqlite() {
        let args = broker_args(ADDR);
        assert_eq!(args[0], "broker");
        assert!(args.windows(2).any(|w| w == ["--listener-url", "tcp://127.0.0.1:9092"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--advertised-listener-url", "tcp://127.0.0.1:9092"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--storage-engine", "sqlite://tansu.db"]), "{args:?}");
    }
}
