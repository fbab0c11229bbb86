//! `cargo xtask services up|down|status`: the external services the integration tests need
//! (PostgreSQL, RustyVault, a Kafka-protocol broker, an OpenID Connect provider: oidc-provider on
//! Node, ChromeDriver with Debian's Chromium), used if already running, else started or installed
//! on this machine.
//!
//! `up` also makes the Python venv the tests run outside clients with (aiokafka).
//!
//! `up` writes `target/onex-services.env` (`KEY=value` lines telling the tests where each
//! service is) and `target/onex-services.state` (what `up` started, with details such as a
//! pid as `<service>.<key>` lines); `down` stops only that.

mod chromedriver;
mod http;
mod oidc;
mod postgres;
mod process;
mod python;
mod rvault;
mod tansu;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd;

/// How long `up` waits for a started service to answer and to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `KEY=value` pairs (env lines, recorded details).
type Pairs = Vec<(String, String)>;

/// What `start` recorded for a service (`pid`, `dir`, …), as `(key, value)` pairs.
type Details = [(String, String)];

/// An external service the tests use. New services are new entries of [`SERVICES`].
struct Service {
    /// Short name, used in messages and as the key in the state file.
    name: &'static str,
    /// Where it answers TCP connections.
    addr: &'static str,
    /// Keys of the lines of `target/onex-services.env` that `prepare` returns.
    env_keys: &'static [&'static str],
    /// Whether it is installed on this machine.
    installed: fn() -> bool,
    /// Installs it (system packages, `cargo install`, test-only configuration).
    install: fn() -> Result<(), String>,
    /// Starts the installed service; returns details to record (pid, data dir).
    start: fn(&Files) -> Result<Pairs, String>,
    /// Stops the service `start` started, given the details it recorded.
    stop: fn(&Files, &Details) -> Result<(), String>,
    /// Once it answers: waits until it is ready, creates what the tests expect and returns the
    /// env lines telling the tests where it is (given the recorded details).
    prepare: fn(&Files, &Details, Instant) -> Result<Pairs, String>,
}

/// Every service, in start order.
const SERVICES: &[Service] = &[
    Service {
        name: "postgresql",
        addr: postgres::ADDR,
        env_keys: &["ONEX_POSTGRES_URL"],
        installed: postgres::installed,
        install: postgres::install,
        start: postgres::start,
        stop: postgres::stop,
        prepare: postgres::prepare,
    },
    Service {
        name: "rvault",
        addr: rvault::ADDR,
        env_keys: &["ONEX_VAULT_ADDR", "ONEX_VAULT_TOKEN", "ONEX_RVAULT_BIN"],
        installed: rvault::installed,
        install: rvault::install,
        start: rvault::start,
        stop: rvault::stop,
        prepare: rvault::prepare,
    },
    Service {
        name: "tansu",
        addr: tansu::ADDR,
        env_keys: &["ONEX_KAFKA_BOOTSTRAP", "ONEX_TANSU_BIN"],
        installed: tansu::installed,
        install: tansu::install,
        start: tansu::start,
        stop: tansu::stop,
        prepare: tansu::prepare,
    },
    Service {
        name: "oidc",
        addr: oidc::ADDR,
        env_keys: &["ONEX_OIDC_ISSUER", "ONEX_OIDC_KEYS", "ONEX_OIDC_SERVER", "ONEX_NODE"],
        installed: oidc::installed,
        install: oidc::install,
        start: oidc::start,
        stop: oidc::stop,
        prepare: oidc::prepare,
    },
    Service {
        name: "chromedriver",
        addr: chromedriver::ADDR,
        env_keys: &["ONEX_WEBDRIVER", "ONEX_CHROMIUM", "ONEX_CHROME_ARGS"],
        installed: chromedriver::installed,
        install: chromedriver::install,
        start: chromedriver::start,
        stop: chromedriver::stop,
        prepare: chromedriver::prepare,
    },
];

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

/// The details recorded for `service` (`<service>.<key>` lines, prefix removed).
fn details(state: &[(String, String)], service: &str) -> Pairs {
    state
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(service)?.strip_prefix('.')?;
            Some((key.to_owned(), v.clone()))
        })
        .collect()
}

/// The detail `key` among `details`.
fn detail<'a>(details: &'a Details, key: &str) -> Option<&'a str> {
    lookup(details, key)
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

/// Whether an earlier `services up` started something that is still recorded as its own.
pub fn held(root: &Path) -> bool {
    Files::new(root).read_state().iter().any(|(k, v)| !k.contains('.') && v == STARTED)
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
    rvault::ensure_openssl_headers()?;
    let mut state = files.read_state();
    let mut env = Pairs::new();
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
        let started =
            if action != Action::UseRunning && !answers(service.addr) { Some((service.start)(files)?) } else { None };
        // Recorded before waiting, so `down` stops what was started even if it never got ready.
        let recorded = next_state(lookup(&state, service.name), action);
        let prefix = format!("{}.", service.name);
        state.retain(|(k, _)| k != service.name && !(started.is_some() && k.starts_with(&prefix)));
        state.push((service.name.to_owned(), recorded.to_owned()));
        state.extend(started.unwrap_or_default().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        files.write(&files.state, &render_kv(&state))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        wait_until_answers(service, deadline)?;
        let lines = (service.prepare)(files, &details(&state, service.name), deadline)?;
        if let Some(missing) = service.env_keys.iter().find(|k| lookup(&lines, k).is_none()) {
            return Err(format!("{} did not say its `{missing}`", service.name));
        }
        env.extend(lines);
        // Written after each service, so the ones that came up are usable if a later one fails.
        files.write(&files.env, &render_kv(&env))?;
        println!("services: {} ready on {}", service.name, service.addr);
    }
    env.extend(python::ensure()?);
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
            Some(STARTED) => match (service.stop)(files, &details(&state, service.name)) {
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
        let pid = lookup(&details(&state, service.name), "pid").map(|p| format!(" (pid {p})")).unwrap_or_default();
        println!("services: {} on {} {answer}{origin}{pid}", service.name, service.addr);
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
    fn details_are_the_prefixed_lines_of_one_service() {
        let state =
            parse_kv("rvault=started\nrvault.pid=42\nrvault.dir=/tmp/x\nrvaultx.pid=7\npostgresql=was-running\n");
        let d = details(&state, "rvault");
        assert_eq!(d, [("pid".to_owned(), "42".to_owned()), ("dir".to_owned(), "/tmp/x".to_owned())]);
        assert_eq!(detail(&d, "pid"), Some("42"));
        assert!(details(&state, "postgresql").is_empty());
    }

    #[test]
    fn every_service_says_where_it_is() {
        for service in SERVICES {
            assert!(service.addr.parse::<SocketAddr>().is_ok(), "{}: bad address", service.name);
            assert!(!service.env_keys.is_empty(), "{}: no env lines", service.name);
        }
    }
}
