//! `cargo xtask ci`: the README's test command. Brings up the services the tests need, runs
//! the pipeline (stopping at the first failure), then stops what it started, also on failure
//! or interruption.

use std::path::Path;
use std::time::Instant;

use crate::{cmd, fuzz, layers, services};

/// What a CI step does.
enum Action {
    /// Run `cargo` with these arguments.
    Cargo(&'static [&'static str]),
    /// Run the layer check in-process.
    CheckLayers,
    /// `cargo xtask fuzz --seconds N`: every fuzz target for N seconds.
    Fuzz(u64),
}

/// Seconds the CI fuzz step gives each target (eight targets: under two minutes in all).
const FUZZ_SECONDS: u64 = 13;

/// The pipeline, in order.
const STEPS: &[(&str, Action)] = &[
    ("fmt", Action::Cargo(&["fmt", "--all", "--", "--check"])),
    // fuzz/ is its own workspace (built on nightly by the fuzz step), so `--all` misses it.
    ("fmt-fuzz", Action::Cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"])),
    ("clippy", Action::Cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])),
    ("test", Action::Cargo(&["test", "--workspace", "--locked"])),
    ("check-layers", Action::CheckLayers),
    (
        "validate-contracts",
        Action::Cargo(&[
            "run",
            "--locked",
            "-p",
            "onex-infra",
            "--bin",
            "onex-runtime-host",
            "--",
            "validate",
            "--strict",
            "contracts",
        ]),
    ),
    ("fuzz", Action::Fuzz(FUZZ_SECONDS)),
];

/// Runs `services up`, every step from `root`, then `services down` whatever happened; the
/// error names the first failure (a failed `down` after passing steps fails the run too).
pub fn run(root: &Path) -> Result<(), String> {
    let interrupted = cmd::Interrupted::install()?;
    // A developer who ran `services up` by hand keeps what it started; otherwise `ci` stops
    // what its own `up` starts.
    let held_by_developer = services::held(root);
    println!("==> services up");
    let outcome = services::run(root, "up")
        .map_err(|e| format!("ci step `services up` failed: {e}"))
        .and_then(|()| steps(root, &interrupted));
    let stopped = if held_by_developer {
        println!("==> services left running (started by an earlier `cargo xtask services up`)");
        Ok(())
    } else {
        println!("==> services down");
        services::run(root, "down").map_err(|e| format!("ci step `services down` failed: {e}"))
    };
    outcome.and(stopped)?;
    println!("ci: all steps passed");
    Ok(())
}

fn steps(root: &Path, interrupted: &cmd::Interrupted) -> Result<(), String> {
    let cargo = cmd::cargo();
    for (name, action) in STEPS {
        interrupted.check()?;
        println!("==> {name}");
        let started = Instant::now();
        let result = match action {
            Action::Cargo(args) => cmd::run_interruptible(root, &cargo, args, interrupted),
            Action::CheckLayers => layers::run(root),
            Action::Fuzz(seconds) => {
                let options = fuzz::Options { seconds: Some(*seconds), runs: None, target: None, extra: Vec::new() };
                fuzz::run(root, &options, interrupted)
            }
        };
        println!("    {name}: {:.1}s", started.elapsed().as_secs_f64());
        result.map_err(|e| format!("ci step `{name}` failed: {e}"))?;
    }
    Ok(())
}
