//! Helpers for locating the workspace and running external commands.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Root of the cargo workspace (the parent directory of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo executable to use: `$CARGO` when run through cargo, else `cargo`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The cargo root the project's tools are installed into (`cargo install --root`):
/// `$XDG_CACHE_HOME/onex/cargo-root`, else `$HOME/.cache/onex/cargo-root` (outside the repo, so
/// fresh clones reuse it).
pub fn cargo_root() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("onex").join("cargo-root")
}

/// The executable `name` in [`cargo_root`]'s `bin`, else on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let cached = cargo_root().join("bin").join(name);
    if cached.is_file() {
        return Some(cached);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
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

/// Set once SIGINT or SIGTERM arrives, so a long command can clean up instead of dying with
/// the services it started still running.
#[derive(Debug, Clone)]
pub struct Interrupted(Arc<AtomicBool>);

impl Interrupted {
    /// Catches SIGINT and SIGTERM from now on (the default action, dying, is replaced by
    /// setting the flag; children still get a terminal's Ctrl-C themselves).
    pub fn install() -> Result<Self, String> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .map_err(|e| format!("cannot catch signal {signal}: {e}"))?;
        }
        Ok(Self(flag))
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error once a signal arrived.
    pub fn check(&self) -> Result<(), String> {
        if self.is_set() { Err("interrupted".to_owned()) } else { Ok(()) }
    }
}

/// [`run`], killing the child when `interrupted` is set (a SIGTERM sent to this process alone
/// does not reach it otherwise).
pub fn run_interruptible(dir: &Path, program: &str, args: &[&str], interrupted: &Interrupted) -> Result<(), String> {
    let line = display(program, args);
    let status = wait_interruptible(Command::new(program).args(args).current_dir(dir), &line, interrupted)?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed ({status})")) }
}

/// Starts `command` (`line` names it in errors) and waits for it, killing it when
/// `interrupted` is set; returns its exit status, or an error once interrupted.
pub fn wait_interruptible(command: &mut Command, line: &str, interrupted: &Interrupted) -> Result<ExitStatus, String> {
    let mut child = command.spawn().map_err(|e| format!("failed to start `{line}`: {e}"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for `{line}`: {e}"))? {
            interrupted.check()?;
            return Ok(status);
        }
        if interrupted.is_set() {
            // Already gone is fine: the next `try_wait` reports its status.
            let _ = child.kill();
        }
        std::thread::sleep(POLL);
    }
}

/// How often [`run_interruptible`] looks at its child and the flag.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_cache_is_outside_the_repo() {
        let root = cargo_root();
        assert!(root.ends_with("onex/cargo-root"), "{}", root.display());
        assert!(!root.starts_with(env!("CARGO_MANIFEST_DIR")));
    }
}
