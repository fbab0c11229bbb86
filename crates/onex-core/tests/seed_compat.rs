//! Compatibility with the Python runtime's contracts: the seed FSM loads unchanged and behaves
//! the same, and upstream fields we accept but do not act on are warnings, not errors.

// Tests read their fixtures from disk, which `clippy.toml` forbids in the library itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use onex_core::contract::{ContractDocument, FromState, FsmContract, Severity, load_document, load_fsm};
use onex_core::error::{ErrorCode, codes};
use onex_core::fsm::{FsmEngine, FsmError, StepResult};
use serde_json::json;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed/fsm_infrastructure_state.yaml");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/reducers/infrastructure_state.yaml");

fn seed() -> FsmContract {
    let bytes = std::fs::read(SEED).unwrap();
    let loaded =
        load_fsm("fsm_infrastructure_state.yaml", &bytes).unwrap_or_else(|e| panic!("the seed must load:\n{e}"));
    assert!(loaded.warnings.is_empty(), "the seed must load without warnings: {:#?}", loaded.warnings);
    loaded.value
}

#[test]
fn the_seed_fsm_loads_unchanged() {
    let fsm = seed();
    assert_eq!(fsm.name, "infrastructure_state");
    assert_eq!(fsm.initial_state, "initializing");
    let states: Vec<(&str, bool)> = fsm.states.iter().map(|s| (s.name.as_str(), s.is_terminal)).collect();
    assert_eq!(
        states,
        [("initializing", false), ("healthy", false), ("degraded", false), ("unhealthy", false), ("shutdown", true)]
    );
    assert_eq!(fsm.transitions.len(), 6);
    let last = &fsm.transitions[5];
    assert_eq!(
        (&last.from, last.to.as_str(), last.trigger.as_str()),
        (&FromState::Any, "shutdown", "shutdown_requested")
    );

    // Kind detection finds it too.
    let bytes = std::fs::read(SEED).unwrap();
    let doc = load_document("fsm_infrastructure_state.yaml", &bytes).unwrap();
    assert!(matches!(doc.value, ContractDocument::Fsm(_)), "{:?}", doc.value);
}

#[test]
fn the_bundled_reducer_embeds_the_seed_machine() {
    let bytes = std::fs::read(BUNDLED).unwrap();
    let ContractDocument::Node(node) = load_document("infrastructure_state.yaml", &bytes).unwrap().value else {
        panic!("the bundled reducer is a node contract");
    };
    let bundled = node.state_machine.expect("a reducer has a state machine");
    let seed = seed();
    let shape = |f: &FsmContract| {
        let states: Vec<(String, bool)> = f.states.iter().map(|s| (s.name.clone(), s.is_terminal)).collect();
        let transitions: Vec<(FromState, String, String)> =
            f.transitions.iter().map(|t| (t.from.clone(), t.to.clone(), t.trigger.clone())).collect();
        (f.name.clone(), f.initial_state.clone(), states, transitions)
    };
    assert_eq!(shape(&bundled), shape(&seed));
}

#[test]
fn the_seed_fsm_runs_its_lifecycle_and_shutdown_absorbs_everything() {
    let engine = FsmEngine::compile(seed());
    let context = json!({});
    let path = [
        ("initialization_complete", "healthy"),
        ("service_degraded", "degraded"),
        ("service_failed", "unhealthy"),
        ("partial_recovery", "degraded"),
        ("service_recovered", "healthy"),
        ("shutdown_requested", "shutdown"),
    ];
    let mut state = engine.initial_state().to_owned();
    assert_eq!(state, "initializing");
    for (trigger, expected) in path {
        match engine.step(&state, trigger, &context) {
            Ok(StepResult::Moved { to, .. }) => assert_eq!(to, expected, "{state} --{trigger}-->"),
            other => panic!("{state} --{trigger}--> expected a move to {expected}, got {other:?}"),
        }
        state = expected.to_owned();
    }
    assert!(engine.is_terminal("shutdown"));

    let triggers = engine.contract().transitions.iter().map(|t| t.trigger.clone()).chain(["never_declared".to_owned()]);
    for trigger in triggers {
        match engine.step("shutdown", &trigger, &context) {
            Err(FsmError::NoTransition { state, terminal: true, .. }) => assert_eq!(state, "shutdown"),
            other => panic!("shutdown must absorb `{trigger}`, got {other:?}"),
        }
    }

    // `*` reaches shutdown from every other state.
    for from in ["initializing", "healthy", "degraded", "unhealthy"] {
        let moved = engine.step(from, "shutdown_requested", &context).unwrap();
        assert_eq!(moved.state(from), "shutdown", "from {from}");
    }
}

const UPSTREAM: &str = "\
state_machine_name: order
initial_state: pending
checkpoint_interval_ms: 5000
rollback_enabled: true
states:
  - state_name: pending
    is_recoverable: true
  - state_name: paid
    is_terminal: true
transitions:
  - transition_name: pay
    from_state: pending
    to_state: paid
    trigger: payment_received
    retry_enabled: true
";

#[test]
fn upstream_fields_we_do_not_act_on_are_warnings() {
    let loaded = load_fsm("order.yaml", UPSTREAM.as_bytes()).unwrap_or_else(|e| panic!("must load:\n{e}"));
    let warnings: Vec<(Severity, ErrorCode, usize, &str)> =
        loaded.warnings.iter().map(|w| (w.severity, w.code, w.pos.line, w.field.as_str())).collect();
    assert_eq!(
        warnings,
        [
            (Severity::Warning, codes::IGNORED_FIELD, 3, "checkpoint_interval_ms"),
            (Severity::Warning, codes::IGNORED_FIELD, 4, "rollback_enabled"),
            (Severity::Warning, codes::IGNORED_FIELD, 7, "states[0].is_recoverable"),
            (Severity::Warning, codes::IGNORED_FIELD, 15, "transitions[0].retry_enabled"),
        ],
        "{:#?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[0]
            .to_string()
            .starts_with("order.yaml:3:25: warning[ONEX_CORE_042_IGNORED_FIELD] checkpoint_interval_ms:")
    );
    let fsm = loaded.value;
    assert_eq!((fsm.initial_state.as_str(), fsm.transitions.len()), ("pending", 1));
}

#[test]
fn a_misspelt_upstream_key_is_an_unknown_field_error() {
    let misspelt = UPSTREAM.replace("transitions:", "transitons:");
    let e = load_fsm("order.yaml", misspelt.as_bytes()).unwrap_err();
    let errors: Vec<_> = e.errors().collect();
    assert_eq!(errors.len(), 1, "the typo is reported once, not also as a missing `transitions`:\n{e}");
    let d = errors[0];
    assert_eq!((d.code, d.pos.line, d.field.as_str()), (codes::CONTRACT_UNKNOWN_FIELD, 10, "transitons"), "{d}");
    assert!(d.message.contains("did you mean `transitions`?"), "{d}");
    // The compatibility warnings are still there, alongside the error.
    let ignored = e.diagnostics.iter().filter(|d| d.code == codes::IGNORED_FIELD).count();
    assert_eq!(ignored, 3, "{:#?}", e.diagnostics);
}
