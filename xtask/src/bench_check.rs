//! `cargo xtask bench-check`: runs the key benchmarks briefly (`ONEX_BENCH_QUICK=1`) and
//! `bench-host` in its quick mode, and fails when a target is missed. Each benchmark prints its
//! verdicts as `check …` lines (`onex_benches::check`); this passes its output through and
//! reads them. Meant for a
//! developer before submitting, not for CI: shared machines are too noisy for ratios.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cmd;

/// The benchmarks with targets, as `cargo bench` arguments.
const BENCHES: &[&[&str]] = &[
    &["bench", "-p", "onex-benches", "--bench", "bus_path"],
    &["bench", "-p", "onex-benches", "--bench", "bus_allocations"],
    &["bench", "-p", "onex-benches", "--bench", "stamp"],
    &["bench", "-p", "onex-benches", "--bench", "keycloak_verify"],
];

/// Runs every benchmark of [`BENCHES`] and judges their `check` lines.
pub fn run(root: &Path) -> Result<(), String> {
    let mut checks = Vec::new();
    for args in BENCHES {
        checks.extend(checks_of(root, args)?);
    }
    checks.extend(crate::bench_host::checks(root, true)?);
    println!("\nbench-check summary");
    for line in &checks {
        println!("  {line}");
    }
    judge(&checks)
}

/// Fails naming every missed target; fails too when there is no check at all.
fn judge(checks: &[String]) -> Result<(), String> {
    let missed: Vec<&str> = checks.iter().filter(|l| l.ends_with("MISSED")).map(String::as_str).collect();
    match (checks.is_empty(), missed.is_empty()) {
        (true, _) => Err("the benchmarks printed no `check` line".to_owned()),
        (false, true) => Ok(()),
        (false, false) => {
            Err(format!("{} of {} targets missed:\n  {}", missed.len(), checks.len(), missed.join("\n  ")))
        }
    }
}

/// Runs `cargo args` quickly, printing its output as it comes; returns its `check` lines.
fn checks_of(root: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let line = cmd::display("cargo", args);
    let mut child = Command::new(cmd::cargo())
        .args(args)
        .current_dir(root)
        .env(crate::bench_host::check::QUICK, "1")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to start `{line}`: {e}"))?;
    let stdout = child.stdout.take().ok_or_else(|| format!("`{line}`: no stdout"))?;
    let mut checks = Vec::new();
    for text in BufReader::new(stdout).lines() {
        let text = text.map_err(|e| format!("reading `{line}`: {e}"))?;
        println!("{text}");
        if text.starts_with("check ") {
            checks.push(text);
        }
    }
    let status = child.wait().map_err(|e| format!("`{line}`: {e}"))?;
    if status.success() { Ok(checks) } else { Err(format!("`{line}` failed ({status})")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_fails_the_check_and_is_named() {
        let met = "check ratio: 0.600 (target >= 0.5) -> met".to_owned();
        let missed = "check latency: 9.000 (target <= 5) -> MISSED".to_owned();
        assert_eq!(judge(std::slice::from_ref(&met)), Ok(()));
        let error = judge(&[met, missed]).unwrap_err();
        assert!(error.contains("1 of 2 targets missed") && error.contains("check latency"), "{error}");
        assert!(judge(&[]).is_err(), "no check at all is not a pass");
    }
}
