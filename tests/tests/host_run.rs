//! `onex-runtime-host run` end to end: envelopes over HTTP, a reducer walked through its states,
//! idempotent redelivery, workflows triggered by intents, and `send`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use onex_e2e::host::{HostOptions, HostProcess, envelope, wait_for};
use onex_e2e::{contracts_with, host_binary, repo_root, scratch_dir};
use serde_json::{Value as Json, json};

/// A workflow of local steps, routed from intent `demo_requested`.
const DEMO_ORCHESTRATOR: &str = r#"
name: test_orchestrator_demo
contract_version: "1.0.0"
node_version: "1.0.0"
node_type: ORCHESTRATOR
workflow_coordination:
  intent_routing:
    demo_requested: demo_workflow
  workflow_definition:
    workflow_metadata:
      workflow_name: demo_workflow
      workflow_version: "1.0.0"
      execution_mode: parallel
    steps:
      - step_name: fetch
        operation: local.echo
        payload: { what: fetch }
      - step_name: check_a
        operation: local.echo
        payload: { what: a }
        depends_on: [fetch]
      - step_name: check_b
        operation: local.fail
        payload: { code: ONEX_CORE_081_OPERATION_FAILED, message: "b is down" }
        depends_on: [fetch]
        error_action: continue
      - step_name: report
        operation: local.echo
        payload: { what: report }
        depends_on: [check_a, check_b]
"#;

fn bundled_host(name: &str) -> HostProcess {
    let contracts = repo_root().join("contracts");
    HostProcess::start(&HostOptions::new(&contracts, &scratch_dir(name)))
}

#[test]
fn health_and_an_echo_envelope_round_trip() {
    let host = bundled_host("echo");
    assert_eq!(host.get("/health/live").0, 200);
    let (status, ready) = host.get_json("/health/ready");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["handlers"]["local"], "Healthy");

    let mut request = envelope("local.echo", json!({"hello": "world"}));
    request["metadata"] = json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
    let (status, reply) = host.post(&request);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["success"], true);
    assert_eq!(reply["is_response"], true);
    assert_eq!(reply["payload"], json!({"hello": "world"}));
    assert_eq!(reply["correlation_id"], request["correlation_id"]);
    assert_eq!(reply["causation_id"], request["envelope_id"]);
    assert_eq!(reply["metadata"]["traceparent"], request["metadata"]["traceparent"], "trace context is carried");
    let series = r#"onex_envelopes_total{node="node_local_effect",operation="local.echo",outcome="success"}"#;
    assert_eq!(host.metric(series), Some(1.0));

    // Without a trace context, the host starts one whose trace id is the correlation id.
    let request = envelope("local.echo", json!({}));
    let (_, reply) = host.post(&request);
    let trace = reply["metadata"]["traceparent"].as_str().unwrap();
    let correlation = request["correlation_id"].as_str().unwrap().replace('-', "");
    assert!(trace.starts_with(&format!("00-{correlation}-")) && trace.len() == 55, "{trace}");
}

#[test]
fn infrastructure_state_walks_its_lifecycle_and_redelivery_changes_nothing() {
    let host = bundled_host("walk");
    let walk = [
        ("initialization_complete", "healthy"),
        ("service_degraded", "degraded"),
        ("service_failed", "unhealthy"),
        ("partial_recovery", "degraded"),
        ("service_recovered", "healthy"),
        ("shutdown_requested", "shutdown"),
    ];
    let mut first = None;
    for (version, (event, state)) in walk.iter().enumerate() {
        let request = envelope(&format!("infrastructure_state.{event}"), json!({"entity_key": "cluster-a"}));
        let (status, reply) = host.post(&request);
        assert_eq!(status, 200, "{event}: {reply}");
        assert_eq!(reply["payload"]["to_state"], *state, "{event}: {reply}");
        assert_eq!(reply["payload"]["version"], version as u64 + 1);
        first.get_or_insert((request, reply));
    }
    let (_, read) = host.get_json("/v1/state/infrastructure_state/cluster-a");
    assert_eq!(read["state"], "shutdown");
    assert_eq!(read["version"], 6);

    // The same envelope again: the stored reply comes back and the state does not move.
    let (request, reply) = first.unwrap();
    let (status, again) = host.post(&request);
    assert_eq!(status, 200);
    assert_eq!(again, reply, "a redelivered envelope gets its original reply");
    assert_eq!(host.get_json("/v1/state/infrastructure_state/cluster-a").1["version"], 6);

    // Entering `degraded` emitted an intent that went through the outbox to the orchestrator.
    let routed = r#"onex_envelopes_total{node="infra_orchestrator_intent_processing",operation="intent.infrastructure_health_degraded",outcome="success"}"#;
    wait_for("the degraded intent to reach the orchestrator", Duration::from_secs(10), || {
        (host.metric(routed) >= Some(2.0)).then_some(())
    });
    // On the in-memory bus an outbox entry is marked published once its consumer has processed
    // it, just after the orchestrator counted it: the backlog drains right behind the metric.
    wait_for("the outbox to drain", Duration::from_secs(10), || {
        (host.metric("onex_outbox_backlog") == Some(0.0)).then_some(())
    });

    // An entity never seen reads as the initial state.
    let (_, fresh) = host.get_json("/v1/state/infrastructure_state/never-seen");
    assert_eq!((fresh["state"].as_str(), fresh["version"].as_u64()), (Some("initializing"), Some(0)));
}

#[test]
fn an_intent_runs_its_workflow_and_the_journal_shows_every_step() {
    let contracts = contracts_with("workflow", &[("orchestrators/demo.yaml", DEMO_ORCHESTRATOR)]);
    let host = HostProcess::start(&HostOptions::new(&contracts, &scratch_dir("workflow-data")));
    let trigger = envelope("intent.demo_requested", json!({"entity_key": "svc-1"}));
    let (status, reply) = host.post(&trigger);
    assert_eq!(status, 200, "{reply}");
    let run_id = reply["payload"]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run_id, trigger["envelope_id"].as_str().unwrap(), "the run is named by its trigger");
    assert_eq!(reply["payload"]["workflow"], "demo_workflow");

    let run = wait_for("the run to finish", Duration::from_secs(10), || {
        let (_, run) = host.get_json(&format!("/v1/workflows/{run_id}"));
        (run["status"] != "running").then_some(run)
    });
    assert_eq!(run["status"], "succeeded", "{run}");
    let states: Vec<(&str, &str)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("fetch", "succeeded"), ("check_a", "succeeded"), ("check_b", "failed"), ("report", "succeeded")]
    );
    let journal = run["journal"].as_array().unwrap();
    assert_eq!(journal.len(), 4, "{run}");
    assert_eq!(journal[0]["step"], 0, "the first wave is journaled first");
    assert_eq!(journal[3]["step"], 3, "the last step is journaled last");
    let failed = journal.iter().find(|e| e["step"] == 2).unwrap();
    assert_eq!(failed["outcome"]["error"]["message"], "b is down");

    // The same intent again finds the run instead of starting another.
    let (_, again) = host.post(&trigger);
    assert_eq!(again["payload"]["started"], false);
    assert_eq!(again["payload"]["status"], "succeeded");
    assert_eq!(host.metric(r#"onex_workflow_runs_total{workflow="demo_workflow",status="succeeded"}"#), Some(1.0));

    let (status, missing) = host.get_json("/v1/workflows/0190a0b0-0000-7000-8000-000000000000");
    assert_eq!(status, 404, "{missing}");
}

#[test]
fn send_posts_an_envelope_and_prints_the_reply() {
    let host = bundled_host("send");
    let out = Command::new(host_binary())
        .args(["send", "--addr", &host.addr, "--operation", "local.echo", "--payload", r#"{"n": 7}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let reply: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reply["payload"], json!({"n": 7}));

    let out = Command::new(host_binary())
        .args(["send", "--addr", &host.addr, "--operation", "local.fail", "--payload", r#"{"code": "X_1"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed reply exits 1");
    let reply: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["error"]["code"], "X_1");
}
