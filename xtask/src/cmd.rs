//! Helpers for locating the workspace and running external commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Root of the cargo workspace (the parent directory of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo executable to use: `$CARGO` when run through cargo, else `cargo`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Renders a command line for messages, e.g. `cargo fmt --all`
/// (the program is shown without its directory).
pub fn display(program: &str, args: &[&str]) -> String {
    let program = Path::new(program).file_name().and_then(|name| name.to_str()).unwrap_or(program);
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// Runs `program args` in `dir` with inherited stdio; fails on non-zero exit.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("failed to start `{}`: {e}", display(program, args)))?;
    if status.success() { Ok(()) } else { Err(format!("`{}` failed ({status})", display(program, args))) }
}

/// Runs `program args` in `dir` and returns its stdout; stderr is inherited.
pub fn output(dir: &Path, program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("failed to start `{}`: {e}", display(program, args)))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("`{}` failed ({})", display(program, args), out.status))
    }
}
