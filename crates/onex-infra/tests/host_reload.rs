//! Reloading contracts while serving: a reload that adds a node, one that changes a state
//! machine, one with a broken file (the old set keeps serving, the error names file, line and
//! column), one under load with no failed envelope; an envelope in flight finishes on the set it
//! started with, and a workflow run on the definition it started with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use onex_core::envelope::Envelope;
use onex_core::error::Classified;
use onex_infra::host::{ReloadError, RunningHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, HandlerRegistry, Health, OperationDescriptor, SpiResult,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

const RUNTIME: &str = "runtime_name: reload-test
handlers:
  local: {enabled: true}
  gate: {enabled: true}
";

const LOCAL: &str = "name: test_local
contract_version: '1.0.0'
node_type: EFFECT
io_operations:
  - operation: local.echo
";

const GATE: &str = "name: test_gate
contract_version: '1.0.0'
node_type: EFFECT
io_operations:
  - operation: gate.wait
";

const DOOR: &str = "name: door_reducer
contract_version: '1.0.0'
node_type: REDUCER
state_machine:
  name: door
  states:
    - {name: closed, type: initial}
    - {name: open}
  transitions:
    - {from: closed, to: open, event: push}
";

/// The door with a way back (its last transition added to [`DOOR`]).
fn door_back() -> String {
    format!("{DOOR}    - {{from: open, to: closed, event: pull}}\n")
}

/// The orchestrator routing intent `go` to workflow `flow` of `steps` (YAML list items).
fn flow(steps: &str) -> String {
    format!(
        "name: flow_orchestrator
contract_version: '1.0.0'
node_type: ORCHESTRATOR
workflow_coordination:
  intent_routing:
    go: flow
  workflow_definition:
    workflow_metadata: {{workflow_name: flow, execution_mode: sequential}}
    steps:
{steps}"
    )
}

/// Two steps, the first waiting at the gate.
const TWO_STEPS: &str = "      - {step_name: first, operation: gate.wait}
      - {step_name: second, operation: local.echo, depends_on: [first]}
";

/// The same workflow changed to one other step.
const ONE_STEP: &str = "      - {step_name: only, operation: local.echo}
";

/// `gate.wait`: waits until the test opens the gate; tells how many calls are waiting.
#[derive(Default)]
struct Gate {
    open: Notify,
    waiting: watch::Sender<usize>,
}

impl Gate {
    /// Waits until `n` calls are at the gate.
    async fn wait_for(&self, n: usize) {
        let mut waiting = self.waiting.subscribe();
        let reached = waiting.wait_for(|w| *w >= n);
        tokio::time::timeout(Duration::from_secs(20), reached).await.expect("calls at the gate").unwrap();
    }
}

#[async_trait]
impl Handler for Gate {
    fn describe(&self) -> HandlerDescriptor {
        GateFactory(Arc::default()).descriptor()
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, _request: &Envelope) -> SpiResult<Value> {
        let opened = self.open.notified();
        self.waiting.send_modify(|w| *w += 1);
        opened.await;
        Ok(json!({ "passed": true }))
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

struct GateFactory(Arc<Gate>);

impl HandlerFactory for GateFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        let operation =
            OperationDescriptor { operation: "gate.wait".into(), description: "waits".into(), idempotent: true };
        HandlerDescriptor { handler_type: "gate".into(), operations: vec![operation] }
    }
    fn create(&self, _init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::clone(&self.0) as Arc<dyn Handler>)
    }
}

struct Harness {
    running: RunningHost,
    dir: PathBuf,
    gate: Arc<Gate>,
}

async fn harness(name: &str, files: &[(&str, &str)]) -> Harness {
    let gate = Arc::new(Gate::default());
    let mut registry = Registry::with_builtin_handlers().unwrap();
    registry.register(Arc::new(GateFactory(Arc::clone(&gate)))).unwrap();
    let mut all = vec![("runtime.yaml", RUNTIME)];
    all.extend_from_slice(files);
    let setup = host_support::setup(name, &all, registry);
    let dir = setup.contracts_dir.clone().unwrap();
    Harness { running: start(setup).await.unwrap(), dir, gate }
}

impl Harness {
    async fn send(&self, operation: &str, payload: Value) -> Envelope {
        let request = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
        self.running.host().handle(request).await
    }

    fn write(&self, name: &str, text: &str) {
        write_atomically(&self.dir, name, text);
    }

    async fn metrics(&self) -> String {
        self.running.host().render_metrics().await
    }
}

/// Writes a contract file the way an editor or a deploy should: a temp file renamed over it.
fn write_atomically(dir: &Path, name: &str, text: &str) {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

fn ok(reply: &Envelope) -> bool {
    reply.success == Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_node_and_counts_it() {
    let h = harness("reload-add", &[("local.yaml", LOCAL)]).await;
    let before = h.send("door.push", json!({"entity_key": "front"})).await;
    assert!(!ok(&before), "no reducer serves `door` yet");

    let publishing = "node_type: REDUCER\npublished_events:\n  - {topic: onex.evt.test.door.v1, event_type: opened}\n";
    h.write("door.yaml", &DOOR.replace("node_type: REDUCER\n", publishing));
    let report = h.running.host().reload().await.unwrap();
    assert_eq!(report.generation, 2);
    assert_eq!(report.added, ["door_reducer"]);
    assert!(report.removed.is_empty() && report.changed.is_empty(), "{report:?}");
    let new_topic = report.warnings.iter().find(|w| w.contains("`onex.evt.test.door.v1`, new since the host started"));
    assert!(new_topic.is_some(), "{:?}", report.warnings);

    let pushed = h.send("door.push", json!({"entity_key": "front"})).await;
    assert!(ok(&pushed), "{:?}", pushed.error);
    assert_eq!(pushed.payload["to_state"], "open");
    assert!(ok(&h.send("local.echo", json!({"still": "served"})).await));
    let metrics = h.metrics().await;
    assert!(metrics.contains("onex_contract_reloads_total 1"), "{metrics}");
    assert!(
        metrics.contains(r#"onex_envelopes_total{node="door_reducer",operation="door.push",outcome="success"} 1"#),
        "{metrics}"
    );
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_a_state_machine_and_keeps_its_entities() {
    let h = harness("reload-fsm", &[("door.yaml", DOOR)]).await;
    assert!(ok(&h.send("door.push", json!({"entity_key": "front"})).await));
    let refused = h.send("door.pull", json!({"entity_key": "front"})).await;
    assert!(!ok(&refused), "the first machine has no way back");

    h.write("door.yaml", &door_back());
    h.write("runtime.yaml", &RUNTIME.replace("reload-test", "renamed"));
    let report = h.running.host().reload().await.unwrap();
    assert_eq!(report.changed, ["door_reducer"]);
    let restart = report.warnings.iter().find(|w| w.contains("runtime config changed"));
    assert!(restart.is_some_and(|w| w.contains("runtime.yaml")), "{:?}", report.warnings);

    let pulled = h.send("door.pull", json!({"entity_key": "front"})).await;
    assert!(ok(&pulled), "{:?}", pulled.error);
    assert_eq!(pulled.payload["to_state"], "closed");
    let (state, version) = h.running.host().entity_state("door", "front").await.unwrap().unwrap();
    assert_eq!((state.as_str(), version), ("closed", 2), "the entity moved on from the state it had");
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_refused_and_the_old_set_keeps_serving() {
    let h = harness("reload-broken", &[("door.yaml", DOOR)]).await;
    // Line 11, column 24: a transition to a state the machine does not have.
    h.write("door.yaml", &door_back().replace("to: closed, event: pull", "to: ajar, event: pull"));
    let error = h.running.host().reload().await.unwrap_err();
    let ReloadError::Invalid { errors, .. } = &error else { panic!("{error}") };
    let located = format!("{}:11:24:", h.dir.join("door.yaml").display());
    assert!(errors.iter().any(|e| e.starts_with(&located) && e.contains("ajar")), "{errors:#?}");
    assert_eq!(error.error_code().as_str(), "ONEX_INFRA_120_RELOAD_INVALID");

    // The old machine still serves, unchanged.
    assert!(ok(&h.send("door.push", json!({"entity_key": "front"})).await));
    assert!(!ok(&h.send("door.pull", json!({"entity_key": "front"})).await));
    assert_eq!(h.running.host().served().generation(), 1);
    let metrics = h.metrics().await;
    assert!(metrics.contains("onex_contract_reload_failures_total 1"), "{metrics}");
    assert!(metrics.contains("onex_contract_reloads_total 0"), "{metrics}");

    // A YAML syntax error is refused the same way.
    h.write("door.yaml", "name: door_reducer\nnode_type: [REDUCER\n");
    assert!(matches!(h.running.host().reload().await, Err(ReloadError::Invalid { .. })));
    // Fixed, it goes through.
    h.write("door.yaml", &door_back());
    assert_eq!(h.running.host().reload().await.unwrap().generation, 2);
    assert!(ok(&h.send("door.pull", json!({"entity_key": "front"})).await));
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_envelope() {
    const SENDERS: usize = 4;
    const EACH: usize = 250;
    const RELOADS: u64 = 10;
    let h = Arc::new(harness("reload-load", &[("local.yaml", LOCAL), ("door.yaml", DOOR)]).await);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        let h = Arc::clone(&h);
        senders.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..EACH {
                let echo = h.send("local.echo", json!({"sender": sender, "i": i})).await;
                let key = format!("door-{sender}-{i}");
                let push = h.send("door.push", json!({"entity_key": key})).await;
                failed.extend([echo, push].into_iter().filter(|r| !ok(r)).map(|r| format!("{:?}", r.error)));
            }
            failed
        });
    }
    for round in 0..RELOADS {
        h.write("door.yaml", &if round % 2 == 0 { door_back() } else { DOOR.to_owned() });
        h.running.host().reload().await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut failed = Vec::new();
    while let Some(joined) = senders.join_next().await {
        failed.extend(joined.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} envelopes failed during reloads: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let metrics = h.metrics().await;
    assert!(metrics.contains(&format!("onex_contract_reloads_total {RELOADS}")), "{metrics}");
    let echoes = format!(r#"operation="local.echo",outcome="success"}} {}"#, SENDERS * EACH);
    assert!(metrics.contains(&echoes), "counts kept across reloads: {metrics}");
    let Ok(h) = Arc::try_unwrap(h) else { panic!("senders still hold the harness") };
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_in_flight_finishes_on_the_set_it_started_with() {
    let h = Arc::new(harness("reload-in-flight", &[("local.yaml", LOCAL), ("gate.yaml", GATE)]).await);
    let in_flight = tokio::spawn({
        let h = Arc::clone(&h);
        async move { h.send("gate.wait", json!({})).await }
    });
    h.gate.wait_for(1).await;
    std::fs::remove_file(h.dir.join("gate.yaml")).unwrap();
    let report = h.running.host().reload().await.unwrap();
    assert_eq!(report.removed, ["test_gate"]);
    let refused = h.send("gate.wait", json!({})).await;
    let code = &refused.error.as_ref().unwrap().code;
    assert_eq!(code, onex_core::error::codes::OPERATION_NOT_FOUND.as_str(), "{refused:?}");

    h.gate.open.notify_waiters();
    let reply = tokio::time::timeout(Duration::from_secs(20), in_flight).await.unwrap().unwrap();
    assert!(ok(&reply), "{:?}", reply.error);
    assert_eq!(reply.payload["passed"], true);
    let Ok(h) = Arc::try_unwrap(h) else { panic!("the sender still holds the harness") };
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_run_keeps_the_definition_it_started_with() {
    let files = [("local.yaml", LOCAL), ("gate.yaml", GATE), ("flow.yaml", &flow(TWO_STEPS))];
    let h = harness("reload-workflow", &files).await;
    let started = h.send("intent.go", json!({})).await;
    assert!(ok(&started), "{:?}", started.error);
    let old_run: uuid::Uuid = serde_json::from_value(started.payload["run_id"].clone()).unwrap();
    h.gate.wait_for(1).await;

    h.write("flow.yaml", &flow(ONE_STEP));
    assert_eq!(h.running.host().reload().await.unwrap().changed, ["flow_orchestrator"]);
    h.gate.open.notify_waiters();

    // The old run's journal: both steps of its own definition ran, in order.
    let finished = |run_id: uuid::Uuid| {
        let host = h.running.host();
        async move {
            let run = host.workflow_run(run_id).await.unwrap()?;
            (run["status"] == "succeeded").then_some(run)
        }
    };
    let old = host_support::eventually("the old run finishing", Duration::from_secs(20), || finished(old_run)).await;
    let ran: Vec<u64> = old["journal"].as_array().unwrap().iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(ran, [0, 1], "the run went on with its own two steps: {old:#}");

    let again = h.send("intent.go", json!({})).await;
    let new_run: uuid::Uuid = serde_json::from_value(again.payload["run_id"].clone()).unwrap();
    let new = host_support::eventually("the new run finishing", Duration::from_secs(20), || finished(new_run)).await;
    let steps: Vec<&str> = new["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["only"], "a run started after the reload takes the new definition: {new:#}");
    h.running.shutdown(Duration::from_secs(5)).await;
}
