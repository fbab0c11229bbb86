//! `cargo xtask fuzz`: builds the cargo-fuzz targets of `fuzz/` and runs each for a time or a
//! number of executions, with a corpus under `target/fuzz-corpus/<target>` seeded from the
//! repository's contracts (and `../shared/upstream` when it is there). Prints executions,
//! execs/s and corpus size per target; fails naming the saved input of any crash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cmd;

/// What `cargo xtask fuzz` runs for when given neither `--seconds` nor `--runs`.
pub const DEFAULT_SECONDS: u64 = 60;

/// Largest input libFuzzer makes: short inputs run an order of magnitude faster and reach
/// more code per second than the seeds' full size (up to 38 KB).
const MAX_LEN: u32 = 1024;

/// An input that runs longer than this is a hang, reported like a crash.
const TIMEOUT_SECONDS: u32 = 10;

/// Where a target's seeds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeds {
    /// YAML: `contracts/`, and `../shared/upstream/contracts` when present.
    Contracts,
    /// JSON: `fuzz/seeds/envelope/`, and `../shared/upstream/envelopes` when present.
    Envelopes,
}

impl Seeds {
    /// The seed directories under the workspace `root`, existing or not.
    fn candidates(self, root: &Path) -> [PathBuf; 2] {
        match self {
            Self::Contracts => [root.join("contracts"), root.join("../shared/upstream/contracts")],
            Self::Envelopes => [root.join("fuzz/seeds/envelope"), root.join("../shared/upstream/envelopes")],
        }
    }

    /// The libFuzzer dictionary, relative to the workspace root.
    fn dictionary(self) -> &'static str {
        match self {
            Self::Contracts => "fuzz/dict/yaml.dict",
            Self::Envelopes => "fuzz/dict/json.dict",
        }
    }
}

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`) and its seeds. The tidy tests hold this
/// list to the files and to the loaders of `contract/document.rs`.
pub const TARGETS: &[(&str, Seeds)] = &[
    ("yaml_parse", Seeds::Contracts),
    ("check_document", Seeds::Contracts),
    ("load_document", Seeds::Contracts),
    ("load_node_contract", Seeds::Contracts),
    ("load_fsm", Seeds::Contracts),
    ("load_workflow", Seeds::Contracts),
    ("load_runtime_config", Seeds::Contracts),
    ("envelope_decode", Seeds::Envelopes),
];

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// libFuzzer `-max_total_time`, per target.
    pub seconds: Option<u64>,
    /// libFuzzer `-runs`, per target.
    pub runs: Option<u64>,
    /// Only this target.
    pub target: Option<String>,
    /// Further libFuzzer flags (after `--`), placed after ours so they win.
    pub extra: Vec<String>,
}

impl Options {
    /// Parses `[--seconds N] [--runs N] [--target NAME] [-- LIBFUZZER_FLAGS...]`; with neither
    /// `--seconds` nor `--runs`, runs for [`DEFAULT_SECONDS`].
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Self { seconds: None, runs: None, target: None, extra: Vec::new() };
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            let mut value = || args.next().copied().ok_or(format!("`{arg}` needs a value"));
            match arg {
                "--seconds" => options.seconds = Some(number(arg, value()?)?),
                "--runs" => options.runs = Some(number(arg, value()?)?),
                "--target" => {
                    let name = value()?;
                    if !TARGETS.iter().any(|(t, _)| *t == name) {
                        let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
                        return Err(format!("no fuzz target `{name}` (there are: {})", names.join(", ")));
                    }
                    options.target = Some(name.to_owned());
                }
                "--" => options.extra.extend(args.by_ref().map(|a| (*a).to_owned())),
                other => return Err(format!("unknown `fuzz` argument `{other}`")),
            }
        }
        if options.seconds.is_none() && options.runs.is_none() {
            options.seconds = Some(DEFAULT_SECONDS);
        }
        Ok(options)
    }

    fn targets(&self) -> impl Iterator<Item = &(&'static str, Seeds)> {
        TARGETS.iter().filter(|(name, _)| self.target.as_deref().is_none_or(|t| t == *name))
    }

    /// The libFuzzer flags for `name`, whose crashes go to `artifacts` (ending in `/`).
    fn libfuzzer_flags(&self, root: &Path, seeds: Seeds, artifacts: &str) -> Vec<String> {
        let mut flags = vec![
            format!("-max_len={MAX_LEN}"),
            format!("-timeout={TIMEOUT_SECONDS}"),
            format!("-dict={}", root.join(seeds.dictionary()).display()),
            format!("-artifact_prefix={artifacts}"),
            "-print_final_stats=1".to_owned(),
        ];
        flags.extend(self.seconds.map(|s| format!("-max_total_time={s}")));
        flags.extend(self.runs.map(|r| format!("-runs={r}")));
        flags.extend(self.extra.iter().cloned());
        flags
    }
}

fn number(flag: &str, text: &str) -> Result<u64, String> {
    text.parse().ok().filter(|n| *n > 0).ok_or(format!("`{flag}` takes a positive whole number, not `{text}`"))
}

/// What one run printed at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `stat::number_of_executed_units`.
    pub executions: Option<u64>,
    /// `stat::average_exec_per_sec`.
    pub execs_per_sec: Option<u64>,
    /// The last status line's `corp: <inputs>/<size>`.
    pub corpus: Option<(u64, String)>,
    /// Where libFuzzer saved the input that crashed (`Test unit written to <path>`).
    pub crash_input: Option<String>,
    /// The panic message or libFuzzer's error line, when it failed.
    pub failure: Option<String>,
}

/// Reads [`Stats`] out of a libFuzzer log.
pub fn parse_log(log: &str) -> Stats {
    let stat =
        |key: &str| log.lines().find_map(|l| l.trim().strip_prefix(key)).and_then(|v| v.trim().parse::<u64>().ok());
    let corpus = log.lines().rev().find_map(|l| {
        let (_, after) = l.split_once(" corp: ")?;
        let (inputs, size) = after.split_whitespace().next()?.split_once('/')?;
        Some((inputs.parse().ok()?, size.to_owned()))
    });
    let crash_input =
        log.lines().find_map(|l| l.split_once("Test unit written to ").map(|(_, path)| path.trim().to_owned()));
    let lines: Vec<&str> = log.lines().collect();
    let failure = lines
        .iter()
        .position(|l| l.contains(" panicked at "))
        .map(|at| {
            lines[at..]
                .iter()
                .take_while(|l| !l.starts_with("note:") && !l.starts_with("==") && !l.starts_with("stack backtrace:"))
                .take(12)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .or_else(|| {
            lines.iter().find(|l| l.contains("ERROR: libFuzzer") || l.contains("ERROR: ")).map(|l| (*l).to_owned())
        });
    Stats {
        executions: stat("stat::number_of_executed_units:"),
        execs_per_sec: stat("stat::average_exec_per_sec:"),
        corpus,
        crash_input,
        failure,
    }
}

/// How `cargo fuzz` is run: on nightly when rustup has it, else on the current toolchain with
/// `RUSTC_BOOTSTRAP=1` (cargo-fuzz needs unstable `-Z` flags; a machine with one toolchain
/// still runs the targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    Nightly,
    Bootstrapped,
}

impl Toolchain {
    fn detect() -> Self {
        let nightly = Command::new("cargo")
            .args(["+nightly", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if nightly { Self::Nightly } else { Self::Bootstrapped }
    }

    /// `cargo [+nightly] fuzz <args>` with `bin` (where cargo-fuzz is) first on `PATH`.
    fn command(self, root: &Path, bin: &Path, args: &[String]) -> (Command, String) {
        let (program, mut full) = match self {
            Self::Nightly => ("cargo".to_owned(), vec!["+nightly".to_owned(), "fuzz".to_owned()]),
            Self::Bootstrapped => (cmd::cargo(), vec!["fuzz".to_owned()]),
        };
        full.extend(args.iter().cloned());
        let mut command = Command::new(&program);
        command.args(&full).current_dir(root);
        if self == Self::Bootstrapped {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("PATH", joined);
        }
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        (command, cmd::display(&program, &refs))
    }
}

/// The directory holding `cargo-fuzz`, installed into [`cmd::cargo_root`] first if missing.
fn ensure_cargo_fuzz() -> Result<PathBuf, String> {
    if let Some(found) = cmd::find_tool("cargo-fuzz") {
        return found.parent().map(Path::to_path_buf).ok_or(format!("{} has no directory", found.display()));
    }
    let root = cmd::cargo_root();
    let root_text = root.to_string_lossy().into_owned();
    println!("fuzz: `cargo install cargo-fuzz --locked --root {root_text}` (about 2 min on 2 cores, once)");
    cmd::run(&std::env::temp_dir(), &cmd::cargo(), &["install", "cargo-fuzz", "--locked", "--root", &root_text])?;
    cmd::find_tool("cargo-fuzz")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cargo-fuzz was installed but is not found".to_owned())
}

/// The flags every `cargo fuzz` call gets, so `run` reuses `build`'s binaries: no sanitizer
/// (onex-core forbids `unsafe`; what is looked for are panics and broken invariants, and
/// AddressSanitizer costs most of the speed), optimised with debug assertions.
const CARGO_FUZZ_FLAGS: &[&str] = &["--fuzz-dir", "fuzz", "--sanitizer", "none"];

/// `cargo xtask fuzz` from the workspace `root`.
pub fn main(root: &Path, args: &[&str]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let interrupted = cmd::Interrupted::install()?;
    run(root, &options, &interrupted)
}

/// Builds and runs the targets `options` selects; the error names every target that crashed
/// and where its input is.
pub fn run(root: &Path, options: &Options, interrupted: &cmd::Interrupted) -> Result<(), String> {
    let root = root.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let bin = ensure_cargo_fuzz()?;
    let toolchain = Toolchain::detect();
    if toolchain == Toolchain::Bootstrapped {
        println!("fuzz: no nightly toolchain; building on this one with RUSTC_BOOTSTRAP=1");
    }
    let mut build: Vec<String> =
        std::iter::once("build").chain(CARGO_FUZZ_FLAGS.iter().copied()).map(str::to_owned).collect();
    build.extend(options.target.clone());
    let (mut command, line) = toolchain.command(&root, &bin, &build);
    let status = cmd::wait_interruptible(&mut command, &line, interrupted)?;
    if !status.success() {
        return Err(format!("`{line}` failed ({status})"));
    }

    let mut failures = Vec::new();
    for &(name, seeds) in options.targets() {
        interrupted.check()?;
        if let Err(e) = run_target(&root, &bin, toolchain, options, name, seeds, interrupted) {
            println!("fuzz: {name}: FAILED: {e}");
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(format!("fuzzing failed:\n  {}", failures.join("\n  "))) }
}

fn run_target(
    root: &Path,
    bin: &Path,
    toolchain: Toolchain,
    options: &Options,
    name: &str,
    seeds: Seeds,
    interrupted: &cmd::Interrupted,
) -> Result<(), String> {
    let target = root.join("target");
    let corpus = target.join("fuzz-corpus").join(name);
    let artifacts = target.join("fuzz-artifacts").join(name);
    let logs = target.join("fuzz-logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot reopen {}: {e}", log_path.display()))?;

    let seed_dirs: Vec<PathBuf> = seeds.candidates(root).into_iter().filter(|d| d.is_dir()).collect();
    let mut args: Vec<String> =
        std::iter::once("run").chain(CARGO_FUZZ_FLAGS.iter().copied()).map(str::to_owned).collect();
    args.push(name.to_owned());
    args.extend([&corpus].into_iter().chain(&seed_dirs).map(|d| d.display().to_string()));
    args.push("--".to_owned());
    args.extend(options.libfuzzer_flags(root, seeds, &format!("{}/", artifacts.display())));
    let (mut command, line) = toolchain.command(root, bin, &args);
    command.stdout(log).stderr(log_err);

    let seed_names: Vec<String> = seed_dirs.iter().map(|d| shorten(root, d)).collect();
    println!("==> fuzz {name} (seeds: {}; log: {})", seed_names.join(", "), shorten(root, &log_path));
    let started = Instant::now();
    let status = cmd::wait_interruptible(&mut command, &line, interrupted)?;
    let wall = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stats = parse_log(&text);
    let files = std::fs::read_dir(&corpus).map(Iterator::count).unwrap_or(0);
    let na = || "?".to_owned();
    let (inputs, size) = stats.corpus.clone().map_or((na(), na()), |(n, s)| (n.to_string(), s));
    println!(
        "    {name}: {} executions in {wall:.1} s ({} execs/s), corpus {inputs} inputs ({size}), {files} files in {}",
        stats.executions.map_or_else(na, |n| n.to_string()),
        stats.execs_per_sec.map_or_else(na, |n| n.to_string()),
        shorten(root, &corpus),
    );
    if status.success() {
        return Ok(());
    }
    if let Some(failure) = &stats.failure {
        println!("{failure}");
    }
    Err(match stats.crash_input {
        Some(input) => format!("crashed; the input is {input} (log: {})", log_path.display()),
        None => format!("`{line}` failed ({status}); see {}", log_path.display()),
    })
}

/// `path` relative to `root` when under it, for messages.
fn shorten(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_a_time_and_take_runs_targets_and_flags() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!((o.seconds, o.runs, o.target), (Some(DEFAULT_SECONDS), None, None));
        let o = Options::parse(&["--runs", "10000000", "--target", "load_fsm", "--", "-seed=1"]).unwrap();
        assert_eq!((o.seconds, o.runs, o.target.as_deref()), (None, Some(10_000_000), Some("load_fsm")));
        assert_eq!(o.extra, ["-seed=1"]);
        let flags = o.libfuzzer_flags(Path::new("/r"), Seeds::Contracts, "/r/target/a/");
        assert!(flags.contains(&"-runs=10000000".to_owned()), "{flags:?}");
        assert!(!flags.iter().any(|f| f.starts_with("-max_total_time")), "{flags:?}");
        assert_eq!(flags.last().map(String::as_str), Some("-seed=1"), "extra flags come last, so they win");
        assert!(Options::parse(&["--seconds", "0"]).is_err());
        assert!(Options::parse(&["--seconds"]).is_err());
        assert!(Options::parse(&["--target", "nope"]).unwrap_err().contains("load_document"));
        assert!(Options::parse(&["--verbose"]).is_err());
    }

    #[test]
    fn the_log_gives_the_figures() {
        let log = "\
INFO: seed corpus: files: 148 min: 551b max: 38603b total: 820474b rss: 38Mb
#149\tINITED cov: 1016 ft: 3298 corp: 126/367Kb exec/s: 0 rss: 28Mb
#57712\tDONE   cov: 1831 ft: 5921 corp: 677/1121Kb lim: 4096 exec/s: 2748 rss: 32Mb
Done 57712 runs in 21 second(s)
stat::number_of_executed_units: 57712
stat::average_exec_per_sec:     2748
stat::new_units_added:          1529
";
        let stats = parse_log(log);
        assert_eq!(stats.executions, Some(57_712));
        assert_eq!(stats.execs_per_sec, Some(2748));
        assert_eq!(stats.corpus, Some((677, "1121Kb".to_owned())));
        assert_eq!((stats.crash_input, stats.failure), (None, None));
    }

    #[test]
    fn a_crash_names_its_input_and_message() {
        let log = "\
#1200\tNEW    cov: 20 ft: 30 corp: 12/1Kb lim: 4 exec/s: 0 rss: 28Mb
thread '<unnamed>' panicked at fuzz/fuzz_targets/yaml_parse.rs:33:13:
a tree 70 collections deep (the bound is 64)
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
==4242== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/target/fuzz-artifacts/yaml_parse/'; Test unit written to /w/target/fuzz-artifacts/yaml_parse/crash-abc
stat::number_of_executed_units: 1201
";
        let stats = parse_log(log);
        assert_eq!(stats.crash_input.as_deref(), Some("/w/target/fuzz-artifacts/yaml_parse/crash-abc"));
        let failure = stats.failure.unwrap();
        assert!(failure.contains("yaml_parse.rs:33:13") && failure.contains("70 collections deep"), "{failure}");
        assert!(!failure.contains("RUST_BACKTRACE"), "{failure}");
        assert_eq!(stats.executions, Some(1201));
        assert_eq!(stats.execs_per_sec, None);
    }

    #[test]
    fn seeds_are_the_repository_s_and_upstream_s() {
        let root = Path::new("/w/repo");
        assert_eq!(Seeds::Contracts.candidates(root)[0], root.join("contracts"));
        assert!(Seeds::Envelopes.candidates(root)[1].ends_with("shared/upstream/envelopes"));
        for (name, seeds) in TARGETS {
            assert!(cmd::workspace_root().join(seeds.dictionary()).is_file(), "{name}: no dictionary");
            assert!(seeds.candidates(&cmd::workspace_root())[0].is_dir(), "{name}: no seeds in the repository");
        }
    }
}
