//! Helpers for the workspace-level tests in `tests/tests/`: locating the built
//! `onex-runtime-host` binary, the repository root and scratch directories.
// Test support: failing loudly is the point.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/upstream` beside the checkout: the Python system's real contracts and envelopes
/// (CI has `../shared` beside the clone). Missing, the test fails: it never passes unchecked.
pub fn upstream_dir() -> PathBuf {
    let dir = repo_root().join("../shared/upstream");
    assert!(
        dir.join("README.md").is_file(),
        "{} is missing: the conformance material of the Python system must sit beside the checkout",
        dir.display()
    );
    dir
}

/// The `onex-runtime-host` binary, built fresh once per test process (`cargo build` of the
/// bin target, so `cargo test -p onex-e2e` never runs a stale binary). `ONEX_HOST_BIN` points
/// at a prebuilt one instead.
pub fn host_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_host).clone()
}

fn build_host() -> PathBuf {
    if let Some(bin) = std::env::var_os("ONEX_HOST_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "onex-infra", "--bin", "onex-runtime-host"])
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
    assert!(status.success(), "building onex-runtime-host failed");
    // Test executables live in <target>/<profile>/deps/; binaries in <target>/<profile>/.
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    profile_dir.join(format!("onex-runtime-host{}", std::env::consts::EXE_SUFFIX))
}

/// A fresh, empty scratch directory under the system temp dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("onex-e2e-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A copy of the repository's `contracts/` with `extra` files (path under the copy, content)
/// added, in a fresh scratch directory.
pub fn contracts_with(name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let dir = scratch_dir(name).join("contracts");
    copy_dir(&repo_root().join("contracts"), &dir);
    for (path, content) in extra {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(&file, content).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }
    dir
}

/// The repository's runtime config with its whole `admin:` section replaced by `admin` (lines
/// indented under `admin:`, e.g. `  auth: {static_token: "${env:T}"}`).
pub fn runtime_config_with_admin(admin: &str) -> String {
    let path = repo_root().join("contracts/runtime/runtime_config.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text.find("\nadmin:\n").unwrap_or_else(|| panic!("the runtime config has no `admin:` section")) + 1;
    // The section ends at the next line that is neither indented nor a comment.
    let body = start + "admin:\n".len();
    let end = text[body..]
        .match_indices('\n')
        .map(|(i, _)| body + i + 1)
        .find(|&line| text[line..].starts_with(|c: char| !c.is_whitespace() && c != '#'))
        .unwrap_or(text.len());
    format!("{}admin:\n{admin}\n{}", &text[..start], &text[end..])
}

/// A toggle reducer: two states, flip and flop alternate, so an event applied out of order or
/// twice is refused instead of passing unseen. Entering either state emits one `toggled` event
/// to [`TOGGLED_TOPIC`] (no host consumes it), so every transition leaves exactly one outbox row.
pub const TOGGLE_REDUCER: &str = r#"
name: test_toggle_reducer
contract_version: "1.0.0"
node_version: "1.0.0"
node_type: REDUCER
published_events:
  - topic: onex.evt.test.toggled.v1
    event_type: toggled
state_machine:
  name: "toggle"
  version: "1.0.0"
  states:
    - name: "off"
      type: "initial"
      entry_actions: ["toggled"]
    - name: "on"
      type: "normal"
      entry_actions: ["toggled"]
  transitions:
    - from: "off"
      to: "on"
      event: "flip"
    - from: "on"
      to: "off"
      event: "flop"
"#;

/// The topic [`TOGGLE_REDUCER`]'s outbox publishes to.
pub const TOGGLED_TOPIC: &str = "onex.evt.test.toggled.v1";

/// An orchestrator contract routing intent `slow_requested` to `slow_workflow`: three sequential
/// steps, the middle one `local.sleep` for `sleep_ms` (long enough to kill a host inside it).
pub fn slow_orchestrator(sleep_ms: u64) -> String {
    format!(
        r#"
name: test_orchestrator_slow
contract_version: "1.0.0"
node_version: "1.0.0"
node_type: ORCHESTRATOR
workflow_coordination:
  intent_routing:
    slow_requested: slow_workflow
  workflow_definition:
    workflow_metadata:
      workflow_name: slow_workflow
      workflow_version: "1.0.0"
      execution_mode: sequential
    steps:
      - step_name: first
        operation: local.echo
        payload: {{ step: first }}
      - step_name: wait
        operation: local.sleep
        payload: {{ ms: {sleep_ms} }}
        depends_on: [first]
      - step_name: last
        operation: local.echo
        payload: {{ step: last }}
        depends_on: [wait]
"#
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())).flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy: {e}"));
        }
    }
}

/// The value of `key`: from the environment, else from `target/onex-services.env` (written by
/// `cargo xtask services up`), else `default`.
pub fn service_setting(key: &str, default: &str) -> String {
    if let Ok(value) = std::env::var(key) {
        return value;
    }
    let text = std::fs::read_to_string(repo_root().join("target/onex-services.env")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map_or_else(|| default.to_owned(), |(_, v)| v.trim().to_owned())
}

/// Serves `router` on `listener` in a task of the current runtime until the returned sender
/// is used or dropped (the fixtures' servers).
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (shutdown, server)
}

pub mod consul_fixture;
pub mod host;
pub mod keycloak_fixture;
pub mod postgres;
