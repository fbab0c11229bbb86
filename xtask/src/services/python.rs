//! The Python the tests run outside clients with: a venv in the cache outside the repo with
//! aiokafka (the Kafka client of the Python ONEX runtime), pinned, made once and reused.

use std::path::PathBuf;
use std::process::Command;

use super::{Pairs, run_with_env};
use crate::cmd;

/// What the venv holds (pip requirement specifiers).
const REQUIREMENTS: &[&str] = &["aiokafka==0.14.0"];
/// The module that must import for the venv to count as made.
const PROBE: &str = "import aiokafka";

/// The venv's directory: beside the cached cargo root, named by what it holds.
fn venv_dir() -> PathBuf {
    let name = format!("pyenv-{}", REQUIREMENTS.join("-").replace("==", "-"));
    cmd::cargo_root().with_file_name(name)
}

fn python(venv: &std::path::Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Makes the venv when it is missing or broken; returns the env line naming its Python.
pub(super) fn ensure() -> Result<Pairs, String> {
    let venv = venv_dir();
    let python = python(&venv);
    let ready = Command::new(&python).args(["-c", PROBE]).output().is_ok_and(|o| o.status.success());
    if !ready {
        let dir = venv.to_string_lossy().into_owned();
        println!("services: making the Python venv {dir} ({})", REQUIREMENTS.join(", "));
        run_with_env("python3", &["-m", "venv", "--clear", &dir], &[])?;
        let pip = venv.join("bin").join("pip").to_string_lossy().into_owned();
        let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
        args.extend(REQUIREMENTS);
        run_with_env(&pip, &args, &[])?;
    }
    Ok(vec![("ONEX_PYTHON".to_owned(), python.to_string_lossy().into_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venv_lives_in_the_cache_and_is_named_by_its_pins() {
        let dir = venv_dir();
        assert_eq!(dir.parent(), cmd::cargo_root().parent());
        assert!(dir.ends_with("pyenv-aiokafka-0.14.0"), "{}", dir.display());
    }
}
