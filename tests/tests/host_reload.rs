//! Reloading contracts in a running `onex-runtime-host`: `POST /v1/admin/reload` and SIGHUP
//! serve a new set when it is valid, and answer (and log) a broken one with its file, line and
//! column while the old set keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use onex_e2e::host::{HostOptions, HostProcess, http, wait_for};
use onex_e2e::{contracts_with, scratch_dir};
use serde_json::{Value as Json, json};

/// A reducer the bundled contracts do not have.
const GATE_REDUCER: &str = "name: test_gate_reducer
contract_version: '1.0.0'
node_type: REDUCER
state_machine:
  name: gate
  states:
    - {name: shut, type: initial}
    - {name: raised}
  transitions:
    - {from: shut, to: raised, event: lift}
";

fn reload(host: &HostProcess) -> (u16, Json) {
    let (status, body) = http(&host.addr, "POST", "/v1/admin/reload", Some(b""));
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("reload reply not JSON ({e}): {body}")))
}

#[test]
fn reload_through_the_admin_api_and_sighup() {
    let contracts = contracts_with("reload", &[]);
    let host = HostProcess::start(&HostOptions::new(&contracts, &scratch_dir("reload-data")));
    let (status, reply) = host.send("gate.lift", json!({"entity_key": "north"}));
    assert_ne!(status, 200, "no reducer serves `gate` before the reload: {reply}");

    // Added, then reloaded over HTTP.
    let file = contracts.join("reducers/gate.yaml");
    std::fs::write(&file, GATE_REDUCER).unwrap();
    let (status, body) = reload(&host);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["added"], json!(["test_gate_reducer"]), "{body}");
    let (status, reply) = host.send("gate.lift", json!({"entity_key": "north"}));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["payload"]["to_state"], "raised");

    // Broken: refused with the place of the error; the old set keeps serving.
    std::fs::write(&file, GATE_REDUCER.replace("to: raised", "to: lowered")).unwrap();
    let (status, body) = reload(&host);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "ONEX_INFRA_120_RELOAD_INVALID", "{body}");
    let place = format!("{}:10:24:", file.display());
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e.as_str().unwrap().starts_with(&place)), "{body}");
    let (status, reply) = host.send("gate.lift", json!({"entity_key": "south"}));
    assert_eq!(status, 200, "the old set still serves: {reply}");
    assert!(host.logs().contains("contract reload refused"), "the refusal is logged");

    // Fixed, then reloaded by SIGHUP: the node is removed again.
    std::fs::remove_file(&file).unwrap();
    host.signal("HUP");
    wait_for("the SIGHUP reload", Duration::from_secs(20), || {
        (host.metric("onex_contract_reloads_total") == Some(2.0)).then_some(())
    });
    let (status, reply) = host.send("gate.lift", json!({"entity_key": "east"}));
    assert_ne!(status, 200, "the reducer is gone after the SIGHUP reload: {reply}");
    assert_eq!(host.metric("onex_contract_reload_failures_total"), Some(1.0));
    let (status, _) = host.send("local.echo", json!({"still": "served"}));
    assert_eq!(status, 200);
}
