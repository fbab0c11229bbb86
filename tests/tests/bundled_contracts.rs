//! Every bundled contract loads, validates without warnings and fits together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use onex_core::contract::{ContractSet, NodeKind};
use onex_core::fsm::{FsmEngine, StepResult};
use onex_core::workflow::plan;
use onex_e2e::repo_root;
use onex_infra::contracts::load_contracts;
use onex_infra::registry::Registry;
use serde_json::json;

fn bundled() -> ContractSet {
    let report = load_contracts(&[repo_root().join("contracts")], &Registry::with_builtin_catalogue());
    let lines: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
    assert!(lines.is_empty(), "bundled contracts must load without errors or warnings:\n{}", lines.join("\n"));
    assert!(report.files.len() >= 15, "expected every bundled contract, read {:?}", report.files);
    report.set.expect("a valid set")
}

#[test]
fn every_bundled_node_is_present_with_its_kind() {
    let set = bundled();
    let kinds: BTreeMap<&str, NodeKind> = set.nodes.iter().map(|(name, (_, n))| (name.as_str(), n.node_type)).collect();
    let expected = [
        ("node_postgres_adapter_effect", NodeKind::Effect),
        ("node_vault_adapter_effect", NodeKind::Effect),
        ("node_consul_adapter_effect", NodeKind::Effect),
        ("node_http_effect", NodeKind::Effect),
        ("node_webhook_effect", NodeKind::Effect),
        ("node_stamping_effect", NodeKind::Effect),
        ("node_circuit_breaker_compute", NodeKind::Compute),
        ("infra_reducer_infrastructure_state", NodeKind::Reducer),
        ("infra_reducer_service_lifecycle", NodeKind::Reducer),
        ("infra_orchestrator_health_check", NodeKind::Orchestrator),
        ("infra_orchestrator_failover", NodeKind::Orchestrator),
        ("infra_orchestrator_initialization", NodeKind::Orchestrator),
        ("infra_orchestrator_intent_processing", NodeKind::Orchestrator),
        ("infra_orchestrator_deployment", NodeKind::Orchestrator),
    ];
    for (name, kind) in expected {
        assert_eq!(kinds.get(name), Some(&kind), "{name}");
    }
    assert!(set.runtime.is_some(), "runtime config is bundled");
}

#[test]
fn intent_routing_is_the_seed_table() {
    let set = bundled();
    let routes = set.intent_routes();
    let seed = [
        ("infrastructure_health_degraded", "health_check_workflow"),
        ("infrastructure_health_critical", "health_check_workflow"),
        ("circuit_breaker_opened", "failover_workflow"),
        ("failover_required", "failover_workflow"),
        ("connection_pool_exhausted", "health_check_workflow"),
        ("recovery_initiated", "failover_workflow"),
    ];
    for (intent, workflow) in seed {
        assert_eq!(routes.get(intent), Some(&workflow), "{intent}");
    }
    let workflows: Vec<&str> = set.workflow_names().collect();
    for target in routes.values() {
        assert!(workflows.contains(target), "{target} is defined");
    }
}

#[test]
fn bundled_workflows_plan_into_the_documented_waves() {
    let set = bundled();
    let waves = |node: &str| {
        let (_, contract) = &set.nodes[node];
        let def = &contract.workflow_coordination.as_ref().unwrap().workflow_definition;
        let plan = plan(def).unwrap();
        plan.waves.iter().map(|w| w.iter().map(|&i| plan.steps[i].name.clone()).collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    assert_eq!(
        waves("infra_orchestrator_health_check"),
        [
            vec!["query_adapter_states"],
            vec!["check_postgres", "check_consul", "check_vault"],
            vec!["emit_health_report"],
        ]
    );
    // Sequential workflows run one step per wave, in the seed's order.
    assert_eq!(
        waves("infra_orchestrator_initialization").concat(),
        ["initialize_postgres", "initialize_event_bus", "initialize_consul", "verify_adapters"]
    );
}

#[test]
fn reducer_machines_walk_the_documented_paths() {
    let set = bundled();
    let engine = |node: &str| FsmEngine::compile(set.nodes[node].1.state_machine.clone().unwrap());
    let infra = engine("infra_reducer_infrastructure_state");
    let mut state = infra.initial_state().to_owned();
    let mut intents = Vec::new();
    for event in [
        "initialization_complete",
        "service_degraded",
        "service_failed",
        "partial_recovery",
        "service_recovered",
        "shutdown_requested",
    ] {
        match infra.step(&state, event, &json!({})).unwrap() {
            StepResult::Moved { to, intents: i, .. } => {
                intents.extend(i.iter().map(|i| i.intent_type.clone()));
                state = to.to_owned();
            }
            blocked => panic!("{event} blocked: {blocked:?}"),
        }
    }
    assert_eq!(state, "shutdown");
    // Entering degraded/unhealthy emits the intents the routing table routes.
    assert!(intents.contains(&"infrastructure_health_degraded".to_owned()));
    assert!(intents.contains(&"infrastructure_health_critical".to_owned()));

    let lifecycle = engine("infra_reducer_service_lifecycle");
    let r = lifecycle.step("degraded", "health_check_failed", &json!({"consecutive_failures": 3})).unwrap();
    assert_eq!(r.state("degraded"), "failed");
    let r = lifecycle.step("degraded", "health_check_failed", &json!({"consecutive_failures": 1})).unwrap();
    assert_eq!(r.state("degraded"), "degraded");
}

#[tokio::test]
async fn the_bundled_runtime_config_starts_a_dispatcher_on_the_embedded_default() {
    use onex_core::envelope::Envelope;
    use onex_infra::host::Dispatcher;
    use onex_infra::ids::{new_uuid_v7, now_utc};
    use onex_infra::secrets::EnvSecretStore;

    let set = bundled();
    let (_, config) = set.runtime.clone().expect("bundled runtime config");
    let registry = Registry::with_builtin_handlers().unwrap();
    let data_dir = onex_e2e::scratch_dir("embedded-default");
    let dispatcher =
        Dispatcher::start(&set, &config, &registry, std::sync::Arc::new(EnvSecretStore), &data_dir).await.unwrap();
    let operations: Vec<&str> = dispatcher.operations().collect();
    assert!(operations.contains(&"stamp.create"), "{operations:?}");
    let request = Envelope::request(new_uuid_v7(), "stamp.create", json!({"content": "hello\n"}), now_utc());
    let reply = dispatcher.dispatch(&std::sync::Arc::new(request)).await;
    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
    // A bundled node whose handler this host does not run yet answers with the reason.
    let vault = Envelope::request(new_uuid_v7(), "vault.read_secret", json!({}), now_utc());
    let error = dispatcher.dispatch(&std::sync::Arc::new(vault)).await.error.unwrap();
    assert!(error.message.contains("handler `vault` is disabled in the runtime config"), "{}", error.message);
}
