//! `cargo xtask coverage`: line coverage of the library crates (onex-core, onex-spi,
//! onex-infra) over the workspace tests, measured by cargo-tarpaulin's LLVM engine (installed
//! into [`cmd::cargo_root`] if missing), with the services the tests need brought up like
//! `cargo xtask ci` does. Prints covered/coverable lines per crate and fails when the total is
//! under the threshold (80 % unless `--fail-under N`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cmd, services};

/// The threshold when `--fail-under` is not given, in percent of coverable lines.
pub const DEFAULT_FAIL_UNDER: f64 = 80.0;

/// The crates whose lines count (their `crates/<name>/src/` files), in table order.
pub const CRATES: &[&str] = &["onex-core", "onex-spi", "onex-infra"];

/// Files left out of the figure (tarpaulin `--exclude-files` globs, relative to the root; `*`
/// crosses directories). Only `crates/<name>/src/` files are summed anyway.
const EXCLUDED_FILES: &[&str] = &["tests/*", "benches/*", "xtask/*", "fuzz/*", "third_party/*"];

/// Tarpaulin's own target dir (so the instrumented build leaves `target/debug` alone) and where
/// the report goes, relative to the workspace root.
const OUT_DIR: &str = "target/coverage";

/// The report tarpaulin writes into [`OUT_DIR`] with `--out Lcov`.
const REPORT: &str = "lcov.info";

/// The host binary tarpaulin builds for onex-infra's tests, relative to the root.
const HOST_BIN: &str = "target/coverage/debug/onex-runtime-host";

/// The script the end-to-end tests run as the host (`ONEX_HOST_BIN`), relative to the root.
const HOST_WRAPPER: &str = "target/coverage/onex-runtime-host-continuous";

/// Seconds a test binary may run under instrumentation (tarpaulin's default, 60, is too short
/// for the end-to-end suites).
const TIMEOUT_SECONDS: u64 = 1800;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `-p` packages whose tests run; empty: the whole workspace.
    pub packages: Vec<String>,
    /// The total, in percent, under which the command fails.
    pub fail_under: f64,
}

impl Options {
    /// Parses `[-p CRATE]... [--fail-under N]`.
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Self { packages: Vec::new(), fail_under: DEFAULT_FAIL_UNDER };
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let mut value = || args.next().copied().ok_or(format!("`{arg}` needs a value"));
            match arg {
                "-p" | "--package" => options.packages.push(value()?.to_owned()),
                "--fail-under" => {
                    let text = value()?;
                    options.fail_under = text
                        .parse()
                        .ok()
                        .filter(|n: &f64| (0.0..=100.0).contains(n))
                        .ok_or(format!("`--fail-under` takes a percentage from 0 to 100, not `{text}`"))?;
                }
                other => return Err(format!("unknown `coverage` argument `{other}`")),
            }
        }
        Ok(options)
    }

    /// Whether tarpaulin builds onex-infra's binary (for onex-infra's own tests) before any
    /// test runs, so the end-to-end tests can be pointed at it.
    fn builds_host(&self) -> bool {
        self.packages.is_empty() || self.packages.iter().any(|p| p == "onex-infra")
    }

    /// The figures of an LCOV report of this run: with `-p`, of the crates the tests reached
    /// ([`Summary::ran_only`]).
    fn summary(&self, lcov: &str, root: &Path) -> Summary {
        let summary = summarize_lcov(lcov, root);
        if self.packages.is_empty() { summary } else { summary.ran_only() }
    }

    /// The arguments after `cargo`: the tarpaulin run measuring these packages.
    fn tarpaulin_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "tarpaulin",
            "--engine",
            "llvm",
            // Lets a process whose LLVM_PROFILE_FILE has `%c` (the host, see `host_wrapper`)
            // keep its counters in the file as they change. The same flags on every run, so
            // the target dir is reused whatever `-p` selects.
            "--rustflags=-Cllvm-args=-runtime-counter-relocation",
        ]
        .map(str::to_owned)
        .to_vec();
        if self.packages.is_empty() {
            args.push("--workspace".to_owned());
        }
        for package in &self.packages {
            args.extend(["-p".to_owned(), package.clone()]);
        }
        let timeout = TIMEOUT_SECONDS.to_string();
        args.extend(
            [
                "--locked",
                // The separate target dir is kept between runs: only what changed is rebuilt.
                "--skip-clean",
                "--no-fail-fast",
                // Tests run on libtest's threads as under `cargo test` (tarpaulin's LLVM engine
                // otherwise runs one at a time, for exact hit counts; a line is covered either way).
                "--implicit-test-threads",
                "--target-dir",
                OUT_DIR,
                "--out",
                "Lcov",
                "--output-dir",
                OUT_DIR,
                "--timeout",
                &timeout,
            ]
            .map(str::to_owned),
        );
        for glob in EXCLUDED_FILES {
            args.extend(["--exclude-files".to_owned(), (*glob).to_owned()]);
        }
        args
    }
}

/// Covered and coverable lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lines {
    pub covered: u64,
    pub coverable: u64,
}

impl Lines {
    /// Covered lines in percent of coverable ones (`None` when nothing is coverable).
    pub fn percent(self) -> Option<f64> {
        (self.coverable > 0).then(|| self.covered as f64 * 100.0 / self.coverable as f64)
    }
}

/// A report's lines per crate of [`CRATES`] (in that order) and in total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub crates: Vec<(&'static str, Lines)>,
    pub total: Lines,
}

impl Summary {
    /// Sums `crates` into a summary.
    fn new(crates: Vec<(&'static str, Lines)>) -> Self {
        let total = crates.iter().fold(Lines::default(), |sum, (_, l)| Lines {
            covered: sum.covered + l.covered,
            coverable: sum.coverable + l.coverable,
        });
        Self { crates, total }
    }

    /// Leaves out the crates none of whose lines ran. For `-p` runs: tarpaulin lists every
    /// crate's never-instantiated code (generic and default trait methods) as uncovered lines,
    /// also of crates the selected tests do not reach.
    pub fn ran_only(self) -> Self {
        Self::new(
            self.crates
                .into_iter()
                .map(|(name, lines)| (name, if lines.covered == 0 { Lines::default() } else { lines }))
                .collect(),
        )
    }

    /// The table printed after a run.
    pub fn table(&self) -> String {
        let row = |name: &str, lines: Lines| {
            let percent = lines.percent().map_or_else(|| "-".to_owned(), |p| format!("{p:.1} %"));
            format!("{name:<12} {:>8} {:>10} {percent:>9}\n", lines.covered, lines.coverable)
        };
        let mut text = format!("{:<12} {:>8} {:>10} {:>9}\n", "crate", "covered", "coverable", "lines");
        for (name, lines) in &self.crates {
            text.push_str(&row(name, *lines));
        }
        text.push_str(&row("total", self.total));
        text
    }

    /// An error when the total is under `fail_under` percent (or nothing was measured).
    pub fn check(&self, fail_under: f64) -> Result<(), String> {
        let percent =
            self.total.percent().ok_or("the report has no coverable lines of onex-core, onex-spi or onex-infra")?;
        if percent < fail_under {
            return Err(format!(
                "line coverage is {percent:.1} % ({} of {} lines), under the {fail_under} % threshold",
                self.total.covered, self.total.coverable
            ));
        }
        Ok(())
    }
}

/// The script run as the host by the end-to-end tests: it execs the instrumented `bin` (same
/// pid, arguments and stdio) with `%c` added to the inherited LLVM_PROFILE_FILE. In this
/// continuous mode the counters live in the mapped profile file, so a host the tests SIGKILL
/// (every `Host` dropped) still counts; otherwise a profile is only written on a normal exit.
pub fn host_wrapper(bin: &Path) -> String {
    let quoted = bin.display().to_string().replace('\'', r"'\''");
    HOST_WRAPPER_SCRIPT.replace("@BIN@", &quoted)
}

/// [`host_wrapper`]'s text; `@BIN@` is the binary, single-quoted.
const HOST_WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# Written by `cargo xtask coverage`: the end-to-end tests' host (ONEX_HOST_BIN), profiled in
# LLVM's continuous mode so that a killed host still leaves its counts.
case "$LLVM_PROFILE_FILE" in
  *%c*) ;;
  *.profraw) LLVM_PROFILE_FILE="${LLVM_PROFILE_FILE%.profraw}%c.profraw"; export LLVM_PROFILE_FILE ;;
esac
exec '@BIN@' "$@"
"#;

/// Writes [`host_wrapper`] for the host under `root` to [`HOST_WRAPPER`] (executable).
fn write_host_wrapper(root: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(HOST_WRAPPER);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, host_wrapper(&root.join(HOST_BIN))))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The crate of [`CRATES`] a report path belongs to: `crates/<name>/src/...`, relative to
/// `root` or already relative.
fn crate_of(path: &str, root: &Path) -> Option<&'static str> {
    let path = Path::new(path);
    let relative = path.strip_prefix(root).unwrap_or(path);
    let mut parts = relative.components().map(|c| c.as_os_str().to_str());
    let (Some(Some("crates")), Some(Some(name)), Some(Some("src"))) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    CRATES.iter().copied().find(|c| *c == name)
}

/// Sums an LCOV report's `DA:<line>,<hits>` records per crate: a line counts once per file
/// (however many records name it) and is covered when any record has hits. Files outside
/// `crates/<name>/src/` of [`CRATES`] are left out.
pub fn summarize_lcov(lcov: &str, root: &Path) -> Summary {
    // (crate, file) -> line -> covered
    let mut files: BTreeMap<(&'static str, String), BTreeMap<u64, bool>> = BTreeMap::new();
    let mut current: Option<(&'static str, String)> = None;
    for line in lcov.lines().map(str::trim) {
        if let Some(path) = line.strip_prefix("SF:") {
            current = crate_of(path, root).map(|name| (name, path.to_owned()));
        } else if line == "end_of_record" {
            current = None;
        } else if let (Some(key), Some(record)) = (&current, line.strip_prefix("DA:")) {
            let mut fields = record.split(',');
            let number = fields.next().and_then(|n| n.trim().parse::<u64>().ok());
            let hits = fields.next().and_then(|n| n.trim().parse::<u64>().ok());
            if let (Some(number), Some(hits)) = (number, hits) {
                let covered = files.entry(key.clone()).or_default().entry(number).or_default();
                *covered |= hits > 0;
            }
        }
    }
    let mut crates: Vec<(&'static str, Lines)> = CRATES.iter().map(|c| (*c, Lines::default())).collect();
    for ((name, _), lines) in &files {
        if let Some((_, sum)) = crates.iter_mut().find(|(c, _)| c == name) {
            sum.coverable += lines.len() as u64;
            sum.covered += lines.values().filter(|covered| **covered).count() as u64;
        }
    }
    Summary::new(crates)
}

/// `cargo-tarpaulin`'s directory, installed into [`cmd::cargo_root`] first if missing.
fn ensure_tarpaulin() -> Result<PathBuf, String> {
    if cmd::find_tool("cargo-tarpaulin").is_none() {
        let root = cmd::cargo_root();
        let root_text = root.to_string_lossy().into_owned();
        println!(
            "coverage: `cargo install cargo-tarpaulin --locked --root {root_text}` (about 5 min on 2 cores, once; progress follows)"
        );
        let started = Instant::now();
        let args = ["install", "cargo-tarpaulin", "--locked", "--root", &root_text];
        cmd::run(&std::env::temp_dir(), &cmd::cargo(), &args)?;
        println!("coverage: installed cargo-tarpaulin in {:.0?}", started.elapsed());
    }
    cmd::find_tool("cargo-tarpaulin")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cargo-tarpaulin was installed but is not found".to_owned())
}

/// `cargo xtask coverage` from the workspace `root`.
pub fn main(root: &Path, args: &[&str]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let root = root.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let interrupted = cmd::Interrupted::install()?;
    // As in `ci`: a developer who ran `services up` by hand keeps what it started.
    let held_by_developer = services::held(&root);
    println!("==> services up");
    let outcome = services::run(&root, "up")
        .map_err(|e| format!("`services up` failed: {e}"))
        // After `services up`: it installs the OpenSSL headers tarpaulin's build needs.
        .and_then(|()| ensure_tarpaulin())
        .and_then(|bin| measure(&root, &bin, &options, &interrupted));
    let stopped = if held_by_developer {
        println!("==> services left running (started by an earlier `cargo xtask services up`)");
        Ok(())
    } else {
        println!("==> services down");
        services::run(&root, "down").map_err(|e| format!("`services down` failed: {e}"))
    };
    outcome.and(stopped)
}

/// Runs tarpaulin (its binary in `bin`), prints the table and judges the total.
fn measure(root: &Path, bin: &Path, options: &Options, interrupted: &cmd::Interrupted) -> Result<(), String> {
    let out_dir = root.join(OUT_DIR);
    let report = out_dir.join(REPORT);
    // A report left by an earlier run must not pass for this one's.
    if let Err(e) = std::fs::remove_file(&report)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(format!("cannot remove {}: {e}", report.display()));
    }
    let cargo = cmd::cargo();
    let args = options.tarpaulin_args();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = cmd::display(&cargo, &refs);
    let mut command = Command::new(&cargo);
    command.args(&args).current_dir(root);
    // Test processes inherit this: a test's own `cargo build` (the end-to-end tests build the
    // host unless ONEX_HOST_BIN is set) then reuses tarpaulin's instrumented build instead of
    // rebuilding `target/debug` with tarpaulin's RUSTFLAGS.
    command.env("CARGO_TARGET_DIR", &out_dir);
    if options.builds_host() {
        // The host tarpaulin built is among the binaries it maps profiles to; the end-to-end
        // tests run it through the wrapper, so that hosts they kill count too.
        command.env("ONEX_HOST_BIN", write_host_wrapper(root)?);
    } else if options.packages.iter().any(|p| p == "onex-e2e") {
        println!("coverage: without `-p onex-infra` the hosts the end-to-end tests start are not counted");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Ok(joined) = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path))) {
        command.env("PATH", joined);
    }
    println!("==> {line}");
    let started = Instant::now();
    let status = cmd::wait_interruptible(&mut command, &line, interrupted)?;
    println!("    coverage run: {:.1}s", started.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(&report);
    if !status.success() {
        let partial = text.as_deref().map(|t| options.summary(t, root).table()).unwrap_or_default();
        print!("{partial}");
        return Err(format!("`{line}` failed ({status}): a test failed or did not finish under coverage"));
    }
    let text = text.map_err(|e| format!("cannot read the report {}: {e}", report.display()))?;
    let summary = options.summary(&text, root);
    println!("==> line coverage of crates/<crate>/src (the figure judged)\n{}", summary.table());
    if !options.packages.is_empty() {
        println!("coverage: with -p, crates none of whose lines ran are left out");
    }
    println!("coverage: report in {}", report.display());
    summary.check(options.fail_under)?;
    println!("coverage: total at or above {} %", options.fail_under);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/w/onex";

    /// A report as tarpaulin writes it: absolute paths, one record per file.
    const LCOV: &str = "\
TN:
SF:/w/onex/crates/onex-core/src/lib.rs
FN:3,core_fn
FNDA:1,core_fn
DA:3,1
DA:4,2
DA:5,0
DA:6,7
LF:4
LH:3
end_of_record
SF:/w/onex/crates/onex-core/src/envelope.rs
DA:10,0
DA:11,0
end_of_record
SF:/w/onex/crates/onex-infra/src/bin/onex-runtime-host.rs
DA:1,1
DA:2,0
end_of_record
SF:/w/onex/crates/onex-infra/tests/dispatch.rs
DA:1,1
end_of_record
SF:/w/onex/tests/host.rs
DA:1,1
end_of_record
SF:/w/onex/xtask/src/main.rs
DA:1,0
end_of_record
";

    #[test]
    fn lines_are_summed_per_crate_and_only_library_sources_count() {
        let summary = summarize_lcov(LCOV, Path::new(ROOT));
        let lines = |covered, coverable| Lines { covered, coverable };
        assert_eq!(
            summary.crates,
            [("onex-core", lines(3, 6)), ("onex-spi", lines(0, 0)), ("onex-infra", lines(1, 2))]
        );
        assert_eq!(summary.total, lines(4, 8));
        assert_eq!(summary.total.percent(), Some(50.0));
        assert_eq!(summary.crates[1].1.percent(), None);

        let lcov = format!("{LCOV}SF:/w/onex/crates/onex-spi/src/bus.rs\nDA:101,0\nDA:102,0\nend_of_record\n");
        let all = summarize_lcov(&lcov, Path::new(ROOT));
        assert_eq!((all.crates[1].1, all.total), (lines(0, 2), lines(4, 10)), "the whole workspace: all count");
        let selected = Options::parse(&["-p", "onex-core"]).unwrap().summary(&lcov, Path::new(ROOT));
        assert_eq!((selected.crates[1].1, selected.total), (lines(0, 0), lines(4, 8)), "-p: what ran counts");
    }

    #[test]
    fn a_line_named_twice_counts_once_and_is_covered_if_any_record_hit_it() {
        let lcov = "SF:crates/onex-spi/src/a.rs\nDA:1,0\nDA:2,0\nend_of_record\n\
                    SF:crates/onex-spi/src/a.rs\nDA:1,4\nDA:2,0,abc\nend_of_record\n";
        let summary = summarize_lcov(lcov, Path::new(ROOT));
        assert_eq!(summary.crates[1], ("onex-spi", Lines { covered: 1, coverable: 2 }));
        assert_eq!(summarize_lcov("", Path::new(ROOT)).total, Lines::default());
    }

    #[test]
    fn the_table_lists_every_crate_and_the_check_applies_the_threshold() {
        let summary = summarize_lcov(LCOV, Path::new(ROOT));
        let table = summary.table();
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 5, "{table}");
        assert!(rows[1].starts_with("onex-core") && rows[1].ends_with("50.0 %"), "{table}");
        assert!(rows[2].starts_with("onex-spi") && rows[2].ends_with('-'), "{table}");
        assert!(rows[4].starts_with("total") && rows[4].contains("4") && rows[4].contains("8"), "{table}");
        assert!(summary.check(50.0).is_ok());
        let error = summary.check(DEFAULT_FAIL_UNDER).unwrap_err();
        assert!(error.contains("50.0 %") && error.contains("4 of 8") && error.contains("80 %"), "{error}");
        assert!(summarize_lcov("", Path::new(ROOT)).check(0.0).is_err(), "an empty report is no pass");
    }

    #[test]
    fn the_host_wrapper_execs_the_binary_with_continuous_profiling() {
        let script = host_wrapper(Path::new("/w/it's/onex-runtime-host"));
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.ends_with("exec '/w/it'\\''s/onex-runtime-host' \"$@\"\n"), "{script}");
        assert!(script.contains(r#"LLVM_PROFILE_FILE="${LLVM_PROFILE_FILE%.profraw}%c.profraw""#), "{script}");
        assert!(Options::parse(&[]).unwrap().builds_host());
        assert!(Options::parse(&["-p", "onex-e2e", "-p", "onex-infra"]).unwrap().builds_host());
        assert!(!Options::parse(&["-p", "onex-core"]).unwrap().builds_host());
    }

    #[test]
    fn options_take_packages_and_a_threshold() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!(o, Options { packages: Vec::new(), fail_under: DEFAULT_FAIL_UNDER });
        let args = o.tarpaulin_args();
        assert_eq!(args[..3], ["tarpaulin", "--engine", "llvm"]);
        assert!(args.contains(&"--workspace".to_owned()), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--exclude-files", "third_party/*"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--target-dir", OUT_DIR]), "{args:?}");
        let o = Options::parse(&["-p", "onex-core", "--package", "onex-spi", "--fail-under", "0"]).unwrap();
        assert_eq!(o.packages, ["onex-core", "onex-spi"]);
        assert_eq!(o.fail_under, 0.0);
        let args = o.tarpaulin_args();
        assert!(!args.contains(&"--workspace".to_owned()), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-p", "onex-spi"]), "{args:?}");
        assert!(Options::parse(&["--fail-under", "101"]).is_err());
        assert!(Options::parse(&["--fail-under", "x"]).is_err());
        assert!(Options::parse(&["-p"]).is_err());
        assert!(Options::parse(&["--verbose"]).is_err());
    }
}
