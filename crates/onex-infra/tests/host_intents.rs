//! Dropped intents said aloud: an FSM action no orchestrator routes and no `published_events`
//! entry declares is a `validate` warning naming the state and action, and when a step emits
//! it the reply lists it under `dropped_intents` and `/metrics` counts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::time::Duration;

use onex_core::contract::Severity;
use onex_core::envelope::Envelope;
use onex_infra::contracts::load_contracts;
use onex_infra::host::start;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use serde_json::json;

const RUNTIME: &str = "runtime_name: intents-test\n";
const REDUCER: &str = "name: door_reducer
contract_version: '1.0.0'
node_type: REDUCER
published_events:
  - topic: onex.intent.door.opened.v1
    event_type: announce_open
state_machine:
  name: door
  states:
    - {name: closed, type: initial}
    - {name: open, entry_actions: [announce_open, ring_bell]}
  transitions:
    - {from: closed, to: open, event: push}
    - {from: open, to: closed, event: pull}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_nothing_takes_is_warned_of_reported_and_counted() {
    let files = [("runtime.yaml", RUNTIME), ("door.yaml", REDUCER)];
    let setup = host_support::setup("intents", &files, Registry::with_builtin_handlers().unwrap());
    let dir = setup.data_dir.parent().unwrap().to_path_buf();
    let report = load_contracts(&[dir], &Registry::with_builtin_handlers().unwrap());
    let warnings: Vec<_> = report.diagnostics.iter().filter(|d| d.severity == Severity::Warning).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].code.as_str(), "ONEX_CORE_028_INTENT_DROPPED");
    assert!(warnings[0].message.contains("state `open`: action `ring_bell`"), "{}", warnings[0]);

    let running = start(setup).await.unwrap();
    let push = Envelope::request(new_uuid_v7(), "door.push", json!({"entity_key": "front"}), now_utc());
    let reply = running.host().handle(push).await;
    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
    assert_eq!(reply.payload["intents"], json!(["announce_open"]));
    assert_eq!(reply.payload["dropped_intents"], json!(["ring_bell"]));
    assert!(running.host().render_metrics().await.contains("onex_intents_dropped_total 1"));
    running.shutdown(Duration::from_secs(5)).await;
}
