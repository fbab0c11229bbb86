//! `cargo xtask ci`: the full local CI pipeline, stopping at the first failure.

use std::path::Path;
use std::time::Instant;

use crate::{cmd, layers};

/// What a CI step does.
enum Action {
    /// Run `cargo` with these arguments.
    Cargo(&'static [&'static str]),
    /// Run the layer check in-process.
    CheckLayers,
}

/// The pipeline, in order.
const STEPS: &[(&str, Action)] = &[
    ("fmt", Action::Cargo(&["fmt", "--all", "--", "--check"])),
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
            "--deny-warnings",
            "contracts",
        ]),
    ),
];

/// Runs every step from `root`; returns an error naming the first failed step.
pub fn run(root: &Path) -> Result<(), String> {
    let cargo = cmd::cargo();
    for (name, action) in STEPS {
        println!("==> {name}");
        let started = Instant::now();
        let result = match action {
            Action::Cargo(args) => cmd::run(root, &cargo, args),
            Action::CheckLayers => layers::run(root),
        };
        println!("    {name}: {:.1}s", started.elapsed().as_secs_f64());
        result.map_err(|e| format!("ci step `{name}` failed: {e}"))?;
    }
    println!("ci: all steps passed");
    Ok(())
}
