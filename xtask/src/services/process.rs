//! Servers `services up` starts itself: spawned in their own process group with their output in
//! a log under `target/`, recorded by pid, and stopped by that pid only while it is still the
//! same program.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{Files, run_with_env};

/// Starts `bin args` in `dir`, its output in `target/<log_name>`; returns its pid.
pub(super) fn spawn(files: &Files, bin: &Path, args: &[&str], dir: &Path, log_name: &str) -> Result<u32, String> {
    let log_path = files.target.join(log_name);
    std::fs::create_dir_all(&files.target).map_err(|e| format!("cannot create {}: {e}", files.target.display()))?;
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot reopen {}: {e}", log_path.display()))?;
    let child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group: a Ctrl-C meant for `cargo xtask` does not stop it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    println!("services: started {} (pid {}), log in {}", bin.display(), child.id(), log_path.display());
    Ok(child.id())
}

/// Whether `pid` is a live process of the program `binary` (a recycled pid of another program
/// is not).
fn is_running(pid: &str, binary: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).next().is_some_and(|argv0| argv0.ends_with(binary.as_bytes())))
}

/// Stops the `binary` process `pid` (TERM, then KILL after 10 s) and removes `dir`, if given.
pub(super) fn stop(pid: Option<&str>, binary: &str, dir: Option<&str>) -> Result<(), String> {
    let pid = pid.ok_or_else(|| format!("no {binary} pid recorded"))?;
    if pid.parse::<u32>().is_err() {
        return Err(format!("recorded {binary} pid `{pid}` is not a number"));
    }
    if is_running(pid, binary) {
        run_with_env("kill", &["-TERM", pid], &[])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_running(pid, binary) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
        if is_running(pid, binary) {
            run_with_env("kill", &["-KILL", pid], &[])?;
        }
    }
    if let Some(dir) = dir {
        std::fs::remove_dir_all(dir)
            .or_else(|e| if Path::new(dir).exists() { Err(e) } else { Ok(()) })
            .map_err(|e| format!("cannot remove {dir}: {e}"))?;
    }
    Ok(())
}

/// A fresh directory under the temp dir for `name`'s data.
pub(super) fn temp_dir(name: &str) -> Result<std::path::PathBuf, String> {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("onex-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
