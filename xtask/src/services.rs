//! `cargo xtask services up|down|status`: the external services the integration tests need
//! (PostgreSQL for now), used if already running, else started or installed on this machine.
//!
//! `up` writes `target/onex-services.env` (`KEY=value` lines telling the tests where each
//! service is) and `target/onex-services.state` (what `up` started); `down` stops only that.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd;

/// How long `up` waits for a started service to answer and to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An external service the tests use. New services (Vault, Consul, Kafka) are new entries of
/// [`SERVICES`].
struct Service {
    /// Short name, used in messages and as the key in the state file.
    name: &'static str,
    /// Where it answers TCP connections.
    addr: &'static str,
    /// Lines of `target/onex-services.env` telling the tests where it is.
    env: &'static [(&'static str, &'static str)],
    /// Whether it is installed on this machine.
    installed: fn() -> bool,
    /// Installs it (system packages and test-only configuration).
    install: fn() -> Result<(), String>,
    /// Starts the installed service.
    start: fn() -> Result<(), String>,
    /// Stops the service `start` started.
    stop: fn() -> Result<(), String>,
    /// Once it answers: waits until it is ready and creates what the tests expect.
    prepare: fn(Instant) -> Result<(), String>,
}

/// Every service, in start order.
const SERVICES: &[Service] = &[Service {
    name: "postgresql",
    addr: "127.0.0.1:5432",
    env: &[("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")],
    installed: postgres::installed,
    install: postgres::install,
    start: postgres::start,
    stop: postgres::stop,
    prepare: postgres::prepare,
}];

/// State-file value: `up` started the service, so `down` stops it.
const STARTED: &str = "started";
/// State-file value: the service was running before `up`; `down` leaves it alone.
const WAS_RUNNING: &str = "was-running";

/// What `up` does for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// It answers: use it as it is.
    UseRunning,
    /// Installed but not answering: start it.
    Start,
    /// Not installed: install, then start.
    InstallAndStart,
}

/// The action for a service that does or does not answer and is or is not installed.
fn choose(answers: bool, installed: bool) -> Action {
    match (answers, installed) {
        (true, _) => Action::UseRunning,
        (false, true) => Action::Start,
        (false, false) => Action::InstallAndStart,
    }
}

/// The state to record after `action`, given the recorded `previous` one: a service an
/// earlier `up` started stays ours to stop even when it answers now.
fn next_state(previous: Option<&str>, action: Action) -> &'static str {
    match (previous, action) {
        (Some(STARTED), _) | (_, Action::Start | Action::InstallAndStart) => STARTED,
        (_, Action::UseRunning) => WAS_RUNNING,
    }
}

/// `KEY=value` lines (blank lines and `#` comments skipped; whitespace around both trimmed).
fn parse_kv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The inverse of [`parse_kv`].
fn render_kv<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}\n", k.as_ref(), v.as_ref())).collect()
}

/// The value of `key` in `pairs`.
fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Runs `cargo xtask services <action>` from the workspace `root`.
pub fn run(root: &Path, action: &str) -> Result<(), String> {
    let files = Files::new(root);
    match action {
        "up" => up(&files),
        "down" => down(&files),
        "status" => {
            status(&files);
            Ok(())
        }
        other => Err(format!("unknown `services` action `{other}` (expected up, down or status)")),
    }
}

/// Where `up` records what it did.
struct Files {
    target: PathBuf,
    env: PathBuf,
    state: PathBuf,
}

impl Files {
    fn new(root: &Path) -> Self {
        let target = root.canonicalize().unwrap_or_else(|_| root.to_path_buf()).join("target");
        Self { env: target.join("onex-services.env"), state: target.join("onex-services.state"), target }
    }

    fn read_state(&self) -> Vec<(String, String)> {
        parse_kv(&std::fs::read_to_string(&self.state).unwrap_or_default())
    }

    fn write(&self, path: &Path, text: &str) -> Result<(), String> {
        std::fs::create_dir_all(&self.target)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn up(files: &Files) -> Result<(), String> {
    let mut state = files.read_state();
    for service in SERVICES {
        let answered = answers(service.addr);
        let action = choose(answered, answered || (service.installed)());
        match action {
            Action::UseRunning => println!("services: {} already answers on {}; using it", service.name, service.addr),
            Action::Start => println!("services: starting {} (installed, not running)", service.name),
            Action::InstallAndStart => println!("services: installing {} (not installed)", service.name),
        }
        if action == Action::InstallAndStart {
            (service.install)()?;
        }
        if action != Action::UseRunning && !answers(service.addr) {
            (service.start)()?;
        }
        // Recorded before waiting, so `down` stops what was started even if it never got ready.
        let recorded = next_state(lookup(&state, service.name), action);
        state.retain(|(k, _)| k != service.name);
        state.push((service.name.to_owned(), recorded.to_owned()));
        files.write(&files.state, &render_kv(&state))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        wait_until_answers(service, deadline)?;
        (service.prepare)(deadline)?;
        println!("services: {} ready on {}", service.name, service.addr);
    }
    let env: Vec<_> = SERVICES.iter().flat_map(|s| s.env.iter().copied()).collect();
    files.write(&files.env, &render_kv(&env))?;
    println!("services: wrote {}", files.env.display());
    Ok(())
}

fn down(files: &Files) -> Result<(), String> {
    let state = files.read_state();
    if state.is_empty() {
        println!("services: `services up` started nothing; nothing to stop");
        return Ok(());
    }
    let mut failures = Vec::new();
    for service in SERVICES {
        match lookup(&state, service.name) {
            Some(STARTED) => match (service.stop)() {
                Ok(()) => println!("services: stopped {} (started by `services up`)", service.name),
                Err(e) => failures.push(format!("stopping {}: {e}", service.name)),
            },
            Some(_) => println!("services: left {} running (it was running before `services up`)", service.name),
            None => {}
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    std::fs::remove_file(&files.state).map_err(|e| format!("cannot remove {}: {e}", files.state.display()))
}

fn status(files: &Files) {
    let state = files.read_state();
    for service in SERVICES {
        let answer = if answers(service.addr) { "answers" } else { "does not answer" };
        let origin = match lookup(&state, service.name) {
            Some(STARTED) => "; started by `services up`",
            Some(_) => "; was running before `services up`",
            None => "",
        };
        println!("services: {} on {} {answer}{origin}", service.name, service.addr);
    }
}

/// Whether `addr` accepts a TCP connection within a second.
fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn wait_until_answers(service: &Service, deadline: Instant) -> Result<(), String> {
    while !answers(service.addr) {
        if Instant::now() >= deadline {
            return Err(format!("{} did not answer on {} within {READY_TIMEOUT:?}", service.name, service.addr));
        }
        sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Runs `program args` with `env` set, inheriting stdio; fails on a non-zero exit.
fn run_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let line = cmd::display(program, args);
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("failed to start `{line}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed ({status})")) }
}

/// PostgreSQL as Debian/Ubuntu package it: clusters managed by `pg_ctlcluster`.
mod postgres {
    use std::path::{Path, PathBuf};
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use super::run_with_env;
    use crate::cmd;

    const CONFIG_ROOT: &str = "/etc/postgresql";
    const CLUSTER: &str = "main";
    const PSQL: &[&str] = &["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc"];

    /// The installed major version to use: the highest numeric directory name.
    pub(super) fn pick_version<I: IntoIterator<Item = String>>(names: I) -> Option<String> {
        names
            .into_iter()
            .filter_map(|n| n.parse::<f64>().ok().map(|v| (v, n)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n)
    }

    fn version() -> Option<String> {
        let entries = std::fs::read_dir(CONFIG_ROOT).ok()?;
        pick_version(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()))
    }

    pub(super) fn installed() -> bool {
        version().is_some()
    }

    fn ctl(action: &str) -> Result<(), String> {
        let version = version().ok_or_else(|| format!("no PostgreSQL cluster under {CONFIG_ROOT}"))?;
        run_with_env("pg_ctlcluster", &["--skip-systemctl-redirect", &version, CLUSTER, action], &[])
    }

    pub(super) fn start() -> Result<(), String> {
        ctl("start")
    }

    pub(super) fn stop() -> Result<(), String> {
        ctl("stop")
    }

    /// `pg_hba.conf` with password-less access from localhost put first (a test machine's
    /// fresh install; unchanged if the lines are there).
    pub(super) fn trust_localhost(pg_hba: &str) -> String {
        const TRUST: &str = "# added by `cargo xtask services up` (test machine)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n";
        if pg_hba.contains(TRUST) { pg_hba.to_owned() } else { format!("{TRUST}{pg_hba}") }
    }

    pub(super) fn install() -> Result<(), String> {
        run_with_env("apt-get", &["update"], &[])?;
        run_with_env("apt-get", &["install", "-y", "postgresql"], &[("DEBIAN_FRONTEND", "noninteractive")])?;
        let version =
            version().ok_or_else(|| format!("installed PostgreSQL, but found no cluster under {CONFIG_ROOT}"))?;
        let hba: PathBuf = Path::new(CONFIG_ROOT).join(&version).join(CLUSTER).join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).map_err(|e| format!("cannot read {}: {e}", hba.display()))?;
        std::fs::write(&hba, trust_localhost(&text)).map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
        // The package may have started the cluster with the old rules.
        if super::answers("127.0.0.1:5432") { ctl("reload") } else { Ok(()) }
    }

    fn psql(sql: &str) -> Result<String, String> {
        let args: Vec<&str> = PSQL.iter().copied().chain([sql]).collect();
        let out = cmd::output(Path::new("."), "psql", &args)?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Waits until queries run (a starting server refuses them), then creates database `test`.
    pub(super) fn prepare(deadline: Instant) -> Result<(), String> {
        let exists = loop {
            match psql("SELECT 1 FROM pg_database WHERE datname = 'test'") {
                Ok(out) => break out == "1",
                Err(e) if Instant::now() >= deadline => return Err(format!("PostgreSQL does not run queries: {e}")),
                Err(_) => sleep(Duration::from_millis(250)),
            }
        };
        if !exists {
            psql("CREATE DATABASE test")?;
            println!("services: created database `test`");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_follows_from_answering_and_installed() {
        assert_eq!(choose(true, true), Action::UseRunning);
        assert_eq!(choose(true, false), Action::UseRunning);
        assert_eq!(choose(false, true), Action::Start);
        assert_eq!(choose(false, false), Action::InstallAndStart);
    }

    #[test]
    fn a_service_up_started_stays_ours_to_stop() {
        assert_eq!(next_state(None, Action::UseRunning), WAS_RUNNING);
        assert_eq!(next_state(None, Action::Start), STARTED);
        assert_eq!(next_state(None, Action::InstallAndStart), STARTED);
        assert_eq!(next_state(Some(STARTED), Action::UseRunning), STARTED);
        assert_eq!(next_state(Some(WAS_RUNNING), Action::UseRunning), WAS_RUNNING);
        assert_eq!(next_state(Some(WAS_RUNNING), Action::Start), STARTED);
    }

    #[test]
    fn key_value_files_round_trip_and_skip_noise() {
        let text = "# services\n\nONEX_POSTGRES_URL = postgres://postgres@127.0.0.1:5432/test?a=b\nno equals sign\npostgresql=started\n";
        let pairs = parse_kv(text);
        assert_eq!(
            pairs,
            [
                ("ONEX_POSTGRES_URL".to_owned(), "postgres://postgres@127.0.0.1:5432/test?a=b".to_owned()),
                ("postgresql".to_owned(), STARTED.to_owned()),
            ]
        );
        assert_eq!(parse_kv(&render_kv(&pairs)), pairs);
        assert_eq!(lookup(&pairs, "postgresql"), Some(STARTED));
        assert_eq!(lookup(&pairs, "vault"), None);
    }

    #[test]
    fn the_highest_installed_version_is_used() {
        let names = ["9.6", "15", "common", "13"].map(str::to_owned);
        assert_eq!(postgres::pick_version(names), Some("15".to_owned()));
        assert_eq!(postgres::pick_version(Vec::new()), None);
    }

    #[test]
    fn localhost_trust_is_added_once_and_first() {
        let hba = "local all postgres peer\n";
        let once = postgres::trust_localhost(hba);
        assert!(once.ends_with(hba));
        assert!(once.starts_with("# added by"));
        assert!(once.contains("host all all 127.0.0.1/32 trust\n"));
        assert_eq!(postgres::trust_localhost(&once), once);
    }

    #[test]
    fn every_service_says_where_it_is() {
        for service in SERVICES {
            assert!(service.addr.parse::<SocketAddr>().is_ok(), "{}: bad address", service.name);
            assert!(!service.env.is_empty(), "{}: no env lines", service.name);
        }
    }
}
