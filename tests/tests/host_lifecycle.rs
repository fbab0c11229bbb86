//! The host under stress from outside: SIGKILL in the middle of a workflow, SIGTERM with work
//! in flight, a failing handler tripping its breaker, and bad input of every kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use onex_e2e::host::{HostOptions, HostProcess, envelope, wait_for};
use onex_e2e::{contracts_with, repo_root, scratch_dir, slow_orchestrator};
use serde_json::json;

#[test]
fn a_workflow_killed_mid_run_resumes_after_restart_and_finishes_exactly_once() {
    let contracts = contracts_with("kill", &[("orchestrators/slow.yaml", &slow_orchestrator(3000))]);
    let options = HostOptions::new(&contracts, &scratch_dir("kill-data"));
    let mut host = HostProcess::start(&options);
    let trigger = envelope("intent.slow_requested", json!({}));
    let (status, reply) = host.post(&trigger);
    assert_eq!(status, 200, "{reply}");
    let run_path = format!("/v1/workflows/{}", reply["payload"]["run_id"].as_str().unwrap());
    wait_for("the first step to be journaled", Duration::from_secs(10), || {
        host.get_json(&run_path).1["journal"].as_array().is_some_and(|j| j.len() == 1).then_some(())
    });
    host.signal("KILL");
    host.wait_exit(Duration::from_secs(10)).expect("killed");

    let host = HostProcess::start(&options);
    assert!(host.logs().contains("resuming run"), "{}", host.logs());
    let run = wait_for("the resumed run to finish", Duration::from_secs(20), || {
        let run = host.get_json(&run_path).1;
        (run["status"] != "running").then_some(run)
    });
    assert_eq!(run["status"], "succeeded", "{run}");
    let steps: Vec<u64> = run["journal"].as_array().unwrap().iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2], "each step journaled once; `first` was not run again: {run}");

    // The trigger delivered again after the restart finds the finished run.
    let (_, again) = host.post(&trigger);
    assert_eq!(
        (again["payload"]["started"].as_bool(), again["payload"]["status"].as_str()),
        (Some(false), Some("succeeded"))
    );
}

#[test]
fn sigterm_drains_in_flight_work_and_exits_0() {
    let mut host = HostProcess::start(&HostOptions::new(&repo_root().join("contracts"), &scratch_dir("term")));
    let addr = host.addr.clone();
    let slow = std::thread::spawn(move || {
        let body = envelope("local.sleep", json!({"ms": 1500})).to_string();
        onex_e2e::host::http(&addr, "POST", "/v1/envelopes", Some(body.as_bytes()))
    });
    wait_for("the slow envelope to be in flight", Duration::from_secs(10), || {
        (host.metric("onex_in_flight") == Some(1.0)).then_some(())
    });
    host.signal("TERM");
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 200, "the in-flight envelope completes: {body}");
    let exit = host.wait_exit(Duration::from_secs(15)).expect("the host exits after draining");
    assert_eq!(exit.code(), Some(0), "{}", host.logs());
    assert!(host.logs().contains("\"stopped\""), "{}", host.logs());
}

#[test]
fn a_failing_handler_opens_its_breaker_and_it_closes_after_recovery() {
    let host = HostProcess::start(&HostOptions::new(&repo_root().join("contracts"), &scratch_dir("breaker")));
    let breaker = r#"onex_breaker_state{node="node_local_effect"}"#;
    assert_eq!(host.metric(breaker), Some(0.0));
    for _ in 0..5 {
        let (status, _) = host.send("local.fail", json!({"code": "ONEX_CORE_081_OPERATION_FAILED"}));
        assert_eq!(status, 500);
    }
    assert_eq!(host.metric(breaker), Some(2.0), "open after 5 failures");
    let (status, reply) = host.send("local.echo", json!({}));
    assert_eq!((status, reply["error"]["code"].as_str()), (503, Some("ONEX_CORE_080_CIRCUIT_OPEN")), "{reply}");
    assert!(host.metric(r#"onex_breaker_rejections_total{node="node_local_effect"}"#) >= Some(1.0));

    std::thread::sleep(Duration::from_millis(2100)); // recovery_timeout_ms in contracts/effects/local.yaml
    let (status, reply) = host.send("local.echo", json!({"back": true}));
    assert_eq!(status, 200, "the half-open trial succeeds: {reply}");
    assert_eq!(host.metric(breaker), Some(0.0), "closed again");
}

#[test]
fn bad_input_gets_a_clear_error_is_counted_and_the_host_stays_up() {
    let options =
        HostOptions::new(&repo_root().join("contracts"), &scratch_dir("bad")).env("ONEX_MAX_ENVELOPE_BYTES", "4096");
    let host = HostProcess::start(&options);
    let id = "0190a0b0-0000-7000-8000-0000000000aa";
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        ("malformed JSON", b"{\"envelope_id\": ".to_vec(), 400, "ONEX_CORE_050_ENVELOPE_INVALID", "line 1"),
        (
            "missing operation",
            json!({"envelope_id": id, "correlation_id": id, "timestamp": "2026-11-22T00:00:00Z"}).to_string().into_bytes(),
            400,
            "ONEX_CORE_050_ENVELOPE_INVALID",
            "missing field `operation`",
        ),
        (
            "bad UUID",
            json!({"envelope_id": "not-a-uuid", "correlation_id": id, "operation": "local.echo", "timestamp": "2026-11-22T00:00:00Z"})
                .to_string()
                .into_bytes(),
            400,
            "ONEX_CORE_050_ENVELOPE_INVALID",
            "UUID",
        ),
        (
            "unknown operation",
            envelope("nosuch.thing", json!({})).to_string().into_bytes(),
            404,
            "ONEX_CORE_052_OPERATION_NOT_FOUND",
            "nosuch.thing",
        ),
        (
            "oversized payload",
            envelope("local.echo", json!({"blob": "x".repeat(8192)})).to_string().into_bytes(),
            413,
            "ONEX_CORE_051_ENVELOPE_TOO_LARGE",
            "4096-byte cap",
        ),
        (
            "an event no transition accepts",
            envelope("infrastructure_state.service_recovered", json!({"entity_key": "e1"})).to_string().into_bytes(),
            400,
            "ONEX_CORE_060_FSM_NO_TRANSITION",
            "no transition from `initializing` on `service_recovered`",
        ),
        (
            "an event without its entity",
            envelope("infrastructure_state.initialization_complete", json!({})).to_string().into_bytes(),
            400,
            "ONEX_CORE_063_FSM_ENTITY_KEY_MISSING",
            "payload.entity_key",
        ),
    ];
    for (what, body, status, code, says) in &cases {
        let (got, reply) = host.post_raw(body);
        assert_eq!(got, *status, "{what}: {reply}");
        assert_eq!(reply["success"], false, "{what}");
        assert_eq!(reply["error"]["code"], *code, "{what}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: `{message}` should say `{says}`");
    }
    for code in
        ["ONEX_CORE_050_ENVELOPE_INVALID", "ONEX_CORE_051_ENVELOPE_TOO_LARGE", "ONEX_CORE_052_OPERATION_NOT_FOUND"]
    {
        let counted = host.metric(&format!("onex_envelopes_refused_total{{code=\"{code}\"}}"));
        assert!(counted >= Some(1.0), "{code} counted: {counted:?}");
    }
    let rejected = r#"onex_envelopes_total{node="infra_reducer_infrastructure_state",operation="infrastructure_state.service_recovered",outcome="failure"}"#;
    assert_eq!(host.metric(rejected), Some(1.0));
    // Still serving, and nothing was lost: the entity is where it was.
    assert_eq!(host.send("local.echo", json!({})).0, 200);
    assert_eq!(host.get_json("/v1/state/infrastructure_state/e1").1["version"], 0);
}

#[test]
fn a_broken_contract_stops_the_start_and_names_the_file_and_line() {
    let broken = "name: broken\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: local.nope\n";
    let contracts = contracts_with("broken", &[("effects/broken.yaml", broken)]);
    let failure = HostProcess::try_start(&HostOptions::new(&contracts, &scratch_dir("broken-data"))).unwrap_err();
    assert_eq!(failure.status.and_then(|s| s.code()), Some(1), "{}", failure.logs);
    let file = contracts.join("effects/broken.yaml").display().to_string();
    assert!(failure.logs.contains(&format!("{file}:6:5")), "names file and line: {}", failure.logs);
    assert!(failure.logs.contains("refusing to start"), "{}", failure.logs);
}

#[test]
fn envelopes_beyond_max_in_flight_are_refused_with_503_not_queued() {
    let options = HostOptions::new(&repo_root().join("contracts"), &scratch_dir("busy")).env("ONEX_MAX_IN_FLIGHT", "1");
    let host = HostProcess::start(&options);
    let addr = host.addr.clone();
    let slow = std::thread::spawn(move || {
        let body = envelope("local.sleep", json!({"ms": 1000})).to_string();
        onex_e2e::host::http(&addr, "POST", "/v1/envelopes", Some(body.as_bytes()))
    });
    wait_for("the slow envelope to be in flight", Duration::from_secs(10), || {
        (host.metric("onex_in_flight") == Some(1.0)).then_some(())
    });
    let (status, reply) = host.send("local.echo", json!({}));
    assert_eq!((status, reply["error"]["code"].as_str()), (503, Some("ONEX_INFRA_042_OVERLOADED")), "{reply}");
    assert_eq!(slow.join().unwrap().0, 200);
    assert_eq!(host.send("local.echo", json!({})).0, 200, "a slot is free again");
}

#[test]
fn a_run_beyond_max_workflow_runs_waits_for_a_place_and_then_finishes() {
    let contracts = contracts_with("cap", &[("orchestrators/slow.yaml", &slow_orchestrator(1500))]);
    let options = HostOptions::new(&contracts, &scratch_dir("cap-data")).env("ONEX_MAX_WORKFLOW_RUNS", "1");
    let host = HostProcess::start(&options);
    let run_path =
        |reply: &serde_json::Value| format!("/v1/workflows/{}", reply["payload"]["run_id"].as_str().unwrap());
    let (_, first) = host.post(&envelope("intent.slow_requested", json!({})));
    let (status, second) = host.post(&envelope("intent.slow_requested", json!({})));
    assert_eq!(status, 200, "the second run is accepted, not refused: {second}");
    let (first, second) = (run_path(&first), run_path(&second));
    let journal_len = |run: &serde_json::Value| run["journal"].as_array().map_or(0, Vec::len);
    // Until the first run has journaled its last step, the second has not started any.
    let mut observed_waiting = false;
    wait_for("the first run to finish its steps", Duration::from_secs(20), || {
        let (a, b) = (host.get_json(&first).1, host.get_json(&second).1);
        if journal_len(&a) < 3 {
            assert_eq!(journal_len(&b), 0, "the second run started while the first held the only place: {b}");
            observed_waiting |= journal_len(&a) >= 1;
            return None;
        }
        Some(())
    });
    assert!(observed_waiting, "the second run was seen waiting while the first ran");
    let done = wait_for("the second run to finish", Duration::from_secs(20), || {
        let run = host.get_json(&second).1;
        (run["status"] != "running").then_some(run)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
}
