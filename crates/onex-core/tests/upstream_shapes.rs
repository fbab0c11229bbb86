//! The shapes the Python runtime's contracts are written in, each read into the model the host
//! runs: what a migrating team's files mean here, checked field by field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onex_core::contract::{
    BusKind, ContractDocument, NodeKind, OperationBinding, Severity, StepType, check_document, load_document,
};
use onex_core::error::codes;
use onex_core::fsm::{FsmEngine, StepResult};
use serde_json::json;

fn document(text: &str) -> ContractDocument {
    load_document("upstream.yaml", text.as_bytes()).unwrap_or_else(|e| panic!("must load:\n{e}")).value
}

#[test]
fn an_upstream_effect_binds_its_operations_by_handler_name_and_by_prefix() {
    let ContractDocument::Node(node) = document(
        "\
node_name: node_reporter_effect
contract_version: {major: 1, minor: 2, patch: 0}
node_version: {major: 0, minor: 3, patch: 1, prerelease: rc.1}
node_type: EFFECT_GENERIC
event_bus:
  version: {major: 1, minor: 0, patch: 0}
  subscribe_topics: [onex.evt.omnibase-infra.db-error.v1]
  publish_topics:
    - topic: onex.evt.omnibase-infra.ticket-created.v1
      description: a mapping form
handler_routing:
  routing_strategy: operation_match
  handlers:
    - operation: report_error
      handler: {name: HandlerLinearDbErrorReporter, module: omnibase_infra.handlers.x}
      output_fields: [created]
io_operations:
  - operation: report_error
    input_fields: [error_code, {name: hint, type: str}]
  - operation: db.query
  - operation: free_text_op
",
    ) else {
        panic!("a node")
    };
    assert_eq!(node.name, "node_reporter_effect");
    assert_eq!((node.contract_version.as_str(), node.node_version.as_deref()), ("1.2.0", Some("0.3.1-rc.1")));
    assert_eq!(node.node_type, NodeKind::Effect);
    assert_eq!(node.subscribe_topics(), ["onex.evt.omnibase-infra.db-error.v1"]);
    assert_eq!(node.publish_topics(), ["onex.evt.omnibase-infra.ticket-created.v1"]);
    assert_eq!(node.binding("report_error"), OperationBinding::Named("HandlerLinearDbErrorReporter"));
    assert_eq!(node.binding("db.query"), OperationBinding::Prefix("db"));
    assert_eq!(node.binding("free_text_op"), OperationBinding::Unbound);
    assert_eq!(node.io_operations[0].input_fields, [json!("error_code"), json!({"name": "hint", "type": "str"})]);
}

#[test]
fn payload_type_match_binds_event_models_and_types_to_handlers_by_name() {
    let ContractDocument::Node(node) = document(
        "\
name: node_routing_orchestrator
contract_version: {major: 1, minor: 0, patch: 0}
node_type: ORCHESTRATOR_GENERIC
handler_routing:
  routing_strategy: payload_type_match
  handlers:
    - event_model: {name: ModelRoutingCommand, module: m.routing_command}
      event_type: router.route-request
      handler: {name: HandlerRoutingInitiate, module: m.initiate}
    - payload_type: postgres.upsert_contract
      handler: {name: HandlerPostgresContractUpsert}
",
    ) else {
        panic!("a node")
    };
    assert_eq!(node.routed_messages(), ["ModelRoutingCommand", "router.route-request", "postgres.upsert_contract"]);
    assert!(node.operations().is_empty(), "routed models are not operations");
    for (key, handler) in [
        ("ModelRoutingCommand", "HandlerRoutingInitiate"),
        ("router.route-request", "HandlerRoutingInitiate"),
        ("postgres.upsert_contract", "HandlerPostgresContractUpsert"),
    ] {
        assert_eq!(node.binding(key), OperationBinding::Named(handler), "{key}");
    }
}

#[test]
fn an_unbound_operation_and_an_unknown_key_are_warnings_naming_them() {
    let (doc, found) = check_document(
        "w.yaml",
        b"name: n\ncontract_version: '1'\nnode_type: EFFECT\nio_operations: [{operation: do_it}]\nhealth_check: {}\nfrobnicate: 1\n",
    );
    assert!(doc.is_some());
    assert!(found.iter().all(|d| d.severity == Severity::Warning), "{found:#?}");
    let codes_found: Vec<_> = found.iter().map(|d| (d.code, d.pos.line)).collect();
    assert!(codes_found.contains(&(codes::OPERATION_UNBOUND, 4)), "{found:#?}");
    assert!(codes_found.contains(&(codes::IGNORED_FIELD, 5)), "{found:#?}");
    assert!(codes_found.contains(&(codes::CONTRACT_UNKNOWN_FIELD, 6)), "{found:#?}");
}

#[test]
fn state_transitions_is_state_machine_and_word_operators_guard_transitions() {
    let ContractDocument::Node(node) = document(
        "\
name: registration_reducer
contract_version: '1.0.0'
node_type: REDUCER_GENERIC
state_transitions:
  state_machine_name: registration
  initial_state: idle
  states:
    - {state_name: idle, metadata: {x: 1}}
    - {state_name: pending}
    - {state_name: broken}
  transitions:
    - from_state: idle
      to_state: pending
      trigger: introspected
      conditions:
        - {expression: 'attempts less_than 3', description: words}
    - from_state: idle
      to_state: broken
      trigger: odd
      conditions:
        - expression: node_id is_present
",
    ) else {
        panic!("a node")
    };
    let fsm = node.state_machine.clone().unwrap();
    assert_eq!(fsm.transitions[0].name, "idle->pending", "an unnamed transition is named after its states");
    let engine = FsmEngine::compile(fsm);
    assert!(matches!(
        engine.step("idle", "introspected", &json!({"attempts": 1})).unwrap(),
        StepResult::Moved { to: "pending", .. }
    ));
    assert!(matches!(
        engine.step("idle", "introspected", &json!({"attempts": 5})).unwrap(),
        StepResult::Blocked { .. }
    ));
    // An operator upstream does not know either loads, and fails when the guard is reached.
    match engine.step("idle", "odd", &json!({"node_id": "x"})).unwrap() {
        StepResult::Blocked { reason, .. } => assert!(reason.contains("is_present"), "{reason}"),
        other => panic!("the unparseable guard must refuse the transition: {other:?}"),
    }
}

#[test]
fn an_execution_graph_is_a_workflow_of_steps() {
    let ContractDocument::Node(node) = document(
        "\
name: validation_orchestrator
contract_version: {major: 1, minor: 0, patch: 0}
node_type: ORCHESTRATOR_GENERIC
workflow_coordination:
  workflow_definition:
    workflow_metadata:
      workflow_name: validation_pipeline
      workflow_version: {major: 0, minor: 1, patch: 0}
      execution_mode: sequential
    execution_graph:
      nodes:
        - {node_id: build_plan, node_type: COMPUTE_GENERIC}
        - node_id: execute_checks
          node_type: EFFECT_GENERIC
          depends_on: [build_plan]
          step_config: {operation: http.post, parallel_checks: true}
    coordination_rules: {execution_mode: sequential}
",
    ) else {
        panic!("a node")
    };
    let wf = &node.workflow_coordination.unwrap().workflow_definition;
    assert_eq!(wf.metadata.workflow_version, "0.1.0");
    let steps: Vec<_> = wf.steps.iter().map(|s| (s.name.as_str(), s.step_type, s.operation.as_str())).collect();
    assert_eq!(
        steps,
        [("build_plan", StepType::Compute, "build_plan"), ("execute_checks", StepType::Effect, "http.post")]
    );
    assert_eq!(wf.steps[1].depends_on, ["build_plan"]);
}

#[test]
fn handler_contracts_name_the_jobs_of_handler_types() {
    let ContractDocument::Handler(h) = document(
        "\
handler_id: effect.db.handler
name: handler_db
contract_version: {major: 1, minor: 0, patch: 0}
descriptor: {node_archetype: effect, idempotent: false}
handler_routing:
  routing_strategy: operation_match
  handlers:
    - handler_type: db
      handler: {name: HandlerDb, module: omnibase_infra.handlers.handler_db}
      supported_operations: [db.query, db.execute]
",
    ) else {
        panic!("a handler contract")
    };
    assert_eq!(h.handler_id, "effect.db.handler");
    assert_eq!(h.aliases(), [("HandlerDb", "db")]);
}

#[test]
fn the_python_runtime_config_becomes_this_hosts_settings() {
    let ContractDocument::Runtime(config) = document(
        "\
contract_version: '1.0.0'
name: runtime_config
input_topic: onex.evt.platform.node-introspection.v1
output_topic: onex.evt.platform.registration-completed.v1
group_id: onex-runtime
event_bus: {type: kafka, environment: local}
handlers: {enabled: [http, db]}
shutdown: {grace_period_seconds: 30}
logging: {level: INFO}
",
    ) else {
        panic!("a runtime config")
    };
    assert_eq!(config.bus.request_topic, "onex.evt.platform.node-introspection.v1");
    assert_eq!(config.bus.reply_topic, "onex.evt.platform.registration-completed.v1");
    assert_eq!((config.bus.group_id.as_str(), config.bus.kind), ("onex-runtime", BusKind::Kafka));
    assert_eq!(config.handlers.keys().collect::<Vec<_>>(), ["db", "http"]);
    assert!(config.handlers.values().all(|h| h.enabled));
    assert_eq!(config.drain_timeout_ms, 30_000);
}

#[test]
fn workflow_documents_load_and_say_they_are_not_run() {
    let (doc, found) = check_document(
        "chain.yaml",
        b"workflow_id: chain\ncontract_version: {major: 1, minor: 0, patch: 0}\nnode_type: workflow\n\
initial_command: cmd.start.v1\nterminal_event: evt.done.v1\nevent_bus: {subscribe_topics: [cmd.start.v1]}\n",
    );
    let Some(ContractDocument::WorkflowContract(w)) = doc else { panic!("a workflow contract: {found:#?}") };
    assert_eq!((w.workflow_id.as_str(), w.initial_command.as_deref()), ("chain", Some("cmd.start.v1")));
    assert_eq!(found.iter().map(|d| d.code).collect::<Vec<_>>(), [codes::NOT_RUN]);
}
