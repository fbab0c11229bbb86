//! `cargo xtask`: the project's task runner (layer checks, local CI).

// This is a command-line tool: printing to stdout/stderr is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench_check;
mod bench_host;
mod bench_pg;
mod ci;
mod cmd;
mod coverage;
mod fuzz;
mod host_process;
mod layers;
mod services;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  bench-check   Run the benchmarks with targets briefly (bus path, stamping, keycloak verify, bench-host;
                ONEX_BENCH_QUICK=1) and fail naming every target missed (a developer's
                check before submitting, not CI's: shared machines are too noisy)
  bench-host    Build the release host binary and judge it against the targets, one `check`
                line each: startup to /health/ready with the bundled contracts (median of 5
                starts, <= 30 ms); HTTP ingress with wrk, 2 threads x 16 connections
                (POST /v1/envelopes local.echo over GET /health/live, ratio >= 0.8; wrk is
                installed with apt-get if missing); VmHWM after 1,000,000 envelopes
                (<= 16 MiB). Also times `validate` over ../shared/upstream/contracts.
                ONEX_BENCH_QUICK=1: shorter runs. Missed targets are reported, not errors
  bench-pg      Build the release host binary and measure durable reducer transitions on
                PostgreSQL (1, 8, 64 clients over HTTP) against `pgbench -N` on the same
                server (target: ratio >= 1.0 at 8 and 64 clients); prints p50/p99 latency
  check-layers  Check crate layering rules against `cargo metadata`
  ci            Run fmt, clippy, tests, layer check, contract validation and a short fuzz
                run (13 s per target)
  coverage [-p CRATE]... [--fail-under N]
                Line coverage of onex-core, onex-spi and onex-infra over the workspace tests
                (or only CRATE's) with cargo-tarpaulin's LLVM engine (installed into
                ~/.cache/onex/cargo-root if missing), services brought up as for `ci`; prints
                covered/coverable lines per crate, report in target/coverage/lcov.info; fails
                when the total is under N % (default 80)
  fuzz [--seconds N] [--runs N] [--target NAME] [-- LIBFUZZER_FLAGS...]
                Build the cargo-fuzz targets of fuzz/ (cargo-fuzz installed into
                ~/.cache/onex/cargo-root if missing; nightly) and run each for N seconds
                (default 60) or N executions, corpus in target/fuzz-corpus/<target>;
                prints executions, execs/s and corpus size, fails naming a crash's input
  services up|down|status
                Start the services integration tests need (PostgreSQL, RustyVault;
                installed if missing), stop only what `up` started, or tell whether
                each answers
  help          Print this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["bench-check"] => report(bench_check::run(&cmd::workspace_root())),
        ["bench-host"] => report(bench_host::run(&cmd::workspace_root())),
        ["bench-pg"] => report(bench_pg::run(&cmd::workspace_root())),
        ["check-layers"] => report(layers::run(&cmd::workspace_root())),
        ["ci"] => report(ci::run(&cmd::workspace_root())),
        ["coverage", rest @ ..] => report(coverage::main(&cmd::workspace_root(), rest)),
        ["fuzz", rest @ ..] => report(fuzz::main(&cmd::workspace_root(), rest)),
        ["services", action] => report(services::run(&cmd::workspace_root(), action)),
        _ => {
            eprintln!("error: unknown command `{}`\n\n{USAGE}", args.join(" "));
            ExitCode::from(2)
        }
    }
}

/// Turns a command result into an exit code, printing the error if any.
fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
