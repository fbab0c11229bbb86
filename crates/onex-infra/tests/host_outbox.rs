//! The outbox across a crash, on the in-memory bus: a message committed by a process that died
//! before its host consumed it is published and processed by the next start, and marked
//! published only then; a message for a topic nobody here consumes is marked once published.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::to_message;
use onex_infra::host::{HostSetup, RunningHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_infra::stores::SqliteStateStore;
use onex_spi::{StateStore, TransitionCommit};
use serde_json::json;

async fn start_host(data_dir: &Path) -> RunningHost {
    let registry = Registry::with_builtin_handlers().unwrap();
    let set = load_bundled_contracts(&registry).set.expect("bundled contracts load");
    let config = set.runtime.clone().unwrap().1;
    let setup = HostSetup {
        config,
        contracts: set,
        registry,
        data_dir: data_dir.to_path_buf(),
        secrets: Arc::new(EnvSecretStore),
        contracts_dir: None,
    };
    start(setup).await.unwrap()
}

/// Commits a transition whose outbox holds `messages`, as a process that then died would have.
async fn commit_and_die(data_dir: &Path, messages: Vec<onex_spi::OutboundMessage>) {
    let store = SqliteStateStore::open(&data_dir.join("onex-state.db")).await.unwrap();
    let commit = TransitionCommit {
        envelope_id: new_uuid_v7(),
        fsm: "infrastructure_state".into(),
        entity_key: "crashed".into(),
        expected_version: None,
        state: "degraded".into(),
        outbox: messages,
        reply: json!(null),
    };
    store.commit_transition(commit).await.unwrap();
    store.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_committed_before_a_crash_is_delivered_by_the_next_start() {
    let dir = std::env::temp_dir().join(format!("onex-outbox-crash-{}", new_uuid_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let intent =
        Envelope::request(new_uuid_v7(), "intent.deployment_requested", json!({"entity_key": "crashed"}), now_utc());
    let away = Envelope::request(new_uuid_v7(), "intent.elsewhere", json!({}), now_utc());
    commit_and_die(
        &dir,
        vec![
            to_message("onex.cmd.runtime.envelope.v1", Some("crashed".into()), &intent),
            to_message("onex.evt.somebody-else.thing.v1", None, &away),
        ],
    )
    .await;

    let running = start_host(&dir).await;
    let host = Arc::clone(running.host());
    let run_exists = || async { host.store().run(intent.envelope_id).await.unwrap().map(|_| ()) };
    host_support::eventually("the intent's workflow run to exist", Duration::from_secs(10), run_exists).await;
    let published = || async { (host.store().outbox_backlog().await.unwrap() == 0).then_some(()) };
    host_support::eventually("both outbox entries to be marked published", Duration::from_secs(10), published).await;
    running.shutdown(Duration::from_secs(5)).await;

    // A second start publishes nothing again: the run exists once, nothing is pending.
    let running = start_host(&dir).await;
    assert_eq!(running.host().store().outbox_backlog().await.unwrap(), 0);
    assert_eq!(running.host().store().run(intent.envelope_id).await.unwrap().unwrap().workflow, "deployment_workflow");
    running.shutdown(Duration::from_secs(5)).await;
}
