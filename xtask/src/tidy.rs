//! Tidy: the codebase's written rules, checked by `cargo test -p xtask` (in the spirit of
//! rust-analyzer's tidy tests). Each rule names the files that break it.

use std::path::{Path, PathBuf};

/// Rust files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() && path.file_name().is_some_and(|n| n != "target" && n != "fixtures") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every Rust file of the project, with its text.
fn project_sources(root: &Path) -> Vec<(PathBuf, String)> {
    ["crates", "xtask/src", "tests", "benches", "fuzz"]
        .iter()
        .flat_map(|d| rust_files(&root.join(d)))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect()
}

/// Files (relative to `root`) for which `breaks` holds.
fn offenders(root: &Path, files: &[(PathBuf, String)], breaks: impl Fn(&Path, &str) -> bool) -> Vec<String> {
    files
        .iter()
        .filter(|(p, t)| breaks(p, t))
        .map(|(p, _)| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::workspace_root;

    fn sources() -> (PathBuf, Vec<(PathBuf, String)>) {
        let root = workspace_root();
        let files = project_sources(&root);
        assert!(files.len() > 20, "tidy found too few files under {}", root.display());
        (root, files)
    }

    #[test]
    fn every_module_starts_with_a_doc_line() {
        let (root, files) = sources();
        let bad = offenders(&root, &files, |_, text| !text.trim_start().starts_with("//!"));
        assert!(bad.is_empty(), "start these files with a `//!` line saying what they are for: {bad:?}");
    }

    #[test]
    fn no_placeholders_or_ignored_tests() {
        let (root, files) = sources();
        let needles = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("#[", "ignore")];
        let bad = offenders(&root, &files, |_, text| needles.iter().any(|n| text.contains(n)));
        assert!(bad.is_empty(), "a stub is not a feature; finish or remove: {bad:?}");
    }

    #[test]
    fn core_sources_do_no_io() {
        let (root, files) = sources();
        let forbidden = [
            "std::fs",
            "std::net",
            "std::process",
            "tokio",
            "SystemTime::now",
            "Instant::now",
            "std::env::var",
            "onex_spi",
            "onex_infra",
        ];
        let core_src = root.join("crates/onex-core/src");
        let bad =
            offenders(&root, &files, |p, text| p.starts_with(&core_src) && forbidden.iter().any(|f| text.contains(f)));
        assert!(bad.is_empty(), "onex-core must stay pure (no I/O, clock, env, spi/infra): {bad:?}");
    }

    #[test]
    fn library_files_stay_short() {
        let (root, files) = sources();
        let bad = offenders(&root, &files, |p, text| {
            p.components().any(|c| c.as_os_str() == "src") && text.lines().count() > 500
        });
        assert!(bad.is_empty(), "split these into modules with one job each (> 500 lines): {bad:?}");
    }

    #[test]
    fn every_loader_and_the_envelope_decoder_have_a_fuzz_target_ci_runs() {
        let root = workspace_root();
        let document = std::fs::read_to_string(root.join("crates/onex-core/src/contract/document.rs")).unwrap();
        // A loader: `pub fn <name>(source: &str, bytes: &[u8])`.
        let loaders: Vec<&str> = document
            .lines()
            .filter_map(|l| l.strip_prefix("pub fn "))
            .filter(|l| l.contains("(source: &str, bytes: &[u8])"))
            .filter_map(|l| l.split('(').next())
            .collect();
        assert!(loaders.len() >= 6, "found too few loaders in document.rs: {loaders:?}");
        let targets: Vec<&str> = crate::fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
        let wanted = loaders.iter().copied().chain(["yaml_parse", "envelope_decode"]);
        let missing: Vec<&str> = wanted.filter(|name| !targets.contains(name)).collect();
        assert!(
            missing.is_empty(),
            "give these a fuzz target (fuzz/fuzz_targets/) listed in xtask's fuzz::TARGETS: {missing:?}"
        );

        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
        let files: Vec<String> = rust_files(&root.join("fuzz/fuzz_targets"))
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        for name in &targets {
            assert!(
                files.iter().any(|f| f == name),
                "fuzz::TARGETS names `{name}` but fuzz/fuzz_targets/{name}.rs is missing"
            );
            assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] `{name}`");
        }
        let unlisted: Vec<&String> = files.iter().filter(|f| !targets.contains(&f.as_str())).collect();
        assert!(unlisted.is_empty(), "list these fuzz targets in xtask's fuzz::TARGETS, so CI runs them: {unlisted:?}");
    }

    #[test]
    fn ci_runs_the_readme_test_command() {
        let root = workspace_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap_or_default();
        assert!(readme.contains("cargo xtask ci"), "README must give the test command");
        assert!(ci.lines().any(|l| l.trim() == "cargo xtask ci"), ".ci/run must run the README's test command");
        // The test command sets up what it needs itself: CI doing more would hide a fresh
        // machine on which the README's command alone fails.
        let commands: Vec<&str> = ci.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(
            commands,
            ["set -euo pipefail", "cd \"$(dirname \"$0\")/..\"", "cargo xtask ci"],
            ".ci/run must run the README's test command and nothing else"
        );
    }
}
