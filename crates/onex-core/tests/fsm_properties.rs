//! Properties of the FSM engine over randomly generated valid machines, plus unit tests of
//! guards and priority fallbacks on the bundled service lifecycle reducer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use onex_core::contract::{
    ActionDef, ConditionDef, ContractDocument, FromState, FsmContract, StateDef, TransitionDef, load_document, load_fsm,
};
use onex_core::fsm::{Expression, FsmEngine, FsmError, Intent, IntentPhase, StepResult};
use onex_core::yaml::Pos;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// Triggers transitions may use.
const ALPHABET: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];
/// Triggers no generated transition uses.
const UNKNOWN: [&str; 3] = ["zz", "E0", ""];

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// The shape of one generated transition, before validity filtering.
#[derive(Debug, Clone)]
struct TransitionSpec {
    /// `None` is `*`.
    from: Option<usize>,
    to: usize,
    trigger: usize,
    priority: i64,
    /// `x > threshold`, and whether the condition is required.
    guard: Option<(i64, bool)>,
    actions: usize,
}

fn transition_spec(n: usize) -> impl Strategy<Value = TransitionSpec> {
    (
        prop_oneof![1 => Just(None), 3 => (0..n).prop_map(Some)],
        0..n,
        0..ALPHABET.len(),
        0i64..4,
        prop::option::weighted(0.5, (0i64..10, prop::bool::weighted(0.8))),
        0usize..3,
    )
        .prop_map(|(from, to, trigger, priority, guard, actions)| TransitionSpec {
            from,
            to,
            trigger,
            priority,
            guard,
            actions,
        })
}

fn state_name(i: usize) -> String {
    format!("s{i}")
}

/// A random machine that the loader would accept: declared states only, one initial state,
/// no exact transition out of a terminal state, distinct (from, trigger, priority).
fn machine() -> impl Strategy<Value = FsmContract> {
    (2usize..8)
        .prop_flat_map(|n| {
            (
                0..n,
                prop::collection::vec(prop::bool::weighted(0.3), n),
                prop::collection::vec(0usize..3, n),
                prop::collection::vec(0usize..3, n),
                prop::collection::vec(transition_spec(n), 0..24),
                any::<bool>(),
            )
        })
        .prop_map(|(initial, mut terminal, entry, exit, specs, persistence_enabled)| {
            terminal[initial] = false;
            let states: Vec<StateDef> = terminal
                .iter()
                .enumerate()
                .map(|(i, &is_terminal)| StateDef {
                    name: state_name(i),
                    is_terminal,
                    entry_actions: (0..entry[i]).map(|k| format!("enter_s{i}_{k}")).collect(),
                    exit_actions: (0..exit[i]).map(|k| format!("exit_s{i}_{k}")).collect(),
                    pos: Pos::default(),
                })
                .collect();
            let mut seen = HashSet::new();
            let mut transitions = Vec::new();
            for spec in specs {
                if spec.from.is_some_and(|f| terminal[f]) || !seen.insert((spec.from, spec.trigger, spec.priority)) {
                    continue;
                }
                let index = transitions.len();
                let conditions = spec
                    .guard
                    .map(|(threshold, required)| ConditionDef {
                        name: format!("guard_t{index}"),
                        expression: Expression::parse(&format!("x > {threshold}")).unwrap(),
                        required,
                        error_message: None,
                        pos: Pos::default(),
                    })
                    .into_iter()
                    .collect();
                transitions.push(TransitionDef {
                    name: format!("t{index}"),
                    from: spec.from.map_or(FromState::Any, |f| FromState::State(state_name(f))),
                    to: state_name(spec.to),
                    trigger: ALPHABET[spec.trigger].to_owned(),
                    priority: spec.priority,
                    conditions,
                    actions: (0..spec.actions)
                        .map(|k| ActionDef {
                            name: format!("act_t{index}_{k}"),
                            action_type: None,
                            config: json!({ "k": k }),
                            pos: Pos::default(),
                        })
                        .collect(),
                    pos: Pos::default(),
                });
            }
            FsmContract {
                name: "generated".to_owned(),
                initial_state: state_name(initial),
                states,
                transitions,
                error_states: Vec::new(),
                persistence_enabled,
                pos: Pos::default(),
            }
        })
}

/// The context conditions read: `x` set to a small number, or absent.
fn context() -> impl Strategy<Value = Json> {
    prop::option::of(-1i64..12).prop_map(|x| x.map_or_else(|| json!({}), |x| json!({ "x": x })))
}

/// An event: a trigger from the alphabet or an unknown one, with its context.
fn event() -> impl Strategy<Value = (String, Json)> {
    let trigger = prop_oneof![
        5 => prop::sample::select(ALPHABET.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(UNKNOWN.to_vec()).prop_map(str::to_owned),
    ];
    (trigger, context())
}

fn state_def<'c>(contract: &'c FsmContract, name: &str) -> &'c StateDef {
    contract.states.iter().find(|s| s.name == name).unwrap()
}

fn transition_def<'c>(contract: &'c FsmContract, name: &str) -> &'c TransitionDef {
    contract.transitions.iter().find(|t| t.name == name).unwrap()
}

/// Whether every required condition of `t` holds in `context`.
fn enabled(t: &TransitionDef, context: &Json) -> bool {
    t.conditions.iter().filter(|c| c.required).all(|c| c.expression.evaluate(context).is_ok())
}

/// Exact transitions from `state` on `trigger`.
fn exact_candidates<'c>(contract: &'c FsmContract, state: &str, trigger: &str) -> Vec<&'c TransitionDef> {
    contract
        .transitions
        .iter()
        .filter(|t| t.trigger == trigger && t.from == FromState::State(state.to_owned()))
        .collect()
}

/// Reference model of one step: candidates exact-first, then by descending priority; the first
/// enabled one moves, otherwise the first candidate blocks, otherwise there is no transition.
fn expected_step<'c>(
    contract: &'c FsmContract,
    state: &str,
    trigger: &str,
    context: &Json,
) -> Option<(&'c TransitionDef, bool)> {
    let terminal = state_def(contract, state).is_terminal;
    let mut candidates: Vec<(bool, &TransitionDef)> = contract
        .transitions
        .iter()
        .filter(|t| t.trigger == trigger)
        .filter_map(|t| match &t.from {
            FromState::State(f) if f == state => Some((true, t)),
            FromState::Any if !terminal => Some((false, t)),
            _ => None,
        })
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.priority.cmp(&a.1.priority)));
    if let Some((_, t)) = candidates.iter().find(|(_, t)| enabled(t, context)) {
        return Some((t, true));
    }
    candidates.first().map(|(_, t)| (*t, false))
}

/// Intents a move from `from` through `t` must produce, in order.
fn expected_intents(contract: &FsmContract, from: &str, t: &TransitionDef) -> Vec<Intent> {
    let (from_s, to_s) = (state_def(contract, from), state_def(contract, &t.to));
    let make = |name: &str, phase, config: Json| Intent {
        intent_type: name.to_owned(),
        phase,
        fsm: contract.name.clone(),
        from_state: from.to_owned(),
        to_state: t.to.clone(),
        config,
    };
    let mut intents: Vec<Intent> = from_s.exit_actions.iter().map(|a| make(a, IntentPhase::Exit, Json::Null)).collect();
    intents.extend(t.actions.iter().map(|a| make(&a.name, IntentPhase::Transition, a.config.clone())));
    intents.extend(to_s.entry_actions.iter().map(|a| make(a, IntentPhase::Entry, Json::Null)));
    if contract.persistence_enabled {
        intents.push(make("persist_state", IntentPhase::Persist, Json::Null));
    }
    intents
}

fn all_triggers() -> impl Iterator<Item = &'static str> {
    ALPHABET.into_iter().chain(UNKNOWN)
}

proptest! {
    #![proptest_config(config())]

    /// (a) Any event sequence keeps the machine in declared states; blocked and refused steps
    /// leave the state unchanged.
    #[test]
    fn walks_stay_in_declared_states(contract in machine(), events in prop::collection::vec(event(), 0..40)) {
        let declared: HashSet<String> = contract.states.iter().map(|s| s.name.clone()).collect();
        let engine = FsmEngine::compile(contract.clone());
        let mut state = engine.initial_state().to_owned();
        prop_assert!(declared.contains(&state));
        for (trigger, ctx) in &events {
            match engine.step(&state, trigger, ctx) {
                Ok(result) => {
                    let after = result.state(&state).to_owned();
                    match result {
                        StepResult::Moved { to, .. } => prop_assert!(declared.contains(to), "moved to undeclared `{to}`"),
                        StepResult::Blocked { .. } => prop_assert_eq!(&after, &state),
                    }
                    state = after;
                }
                Err(FsmError::NoTransition { state: s, trigger: t, terminal, .. }) => {
                    prop_assert_eq!(&s, &state);
                    prop_assert_eq!(&t, trigger);
                    prop_assert_eq!(terminal, engine.is_terminal(&state));
                }
                Err(e) => prop_assert!(false, "unexpected error from a declared state: {e}"),
            }
            prop_assert!(declared.contains(&state));
        }
    }

    /// (b) Terminal states absorb every trigger, whatever the context.
    #[test]
    fn terminal_states_absorb_everything(contract in machine(), ctx in context()) {
        let engine = FsmEngine::compile(contract.clone());
        for s in contract.states.iter().filter(|s| s.is_terminal) {
            prop_assert!(engine.is_terminal(&s.name));
            for trigger in all_triggers() {
                match engine.step(&s.name, trigger, &ctx) {
                    Err(FsmError::NoTransition { terminal: true, .. }) => {}
                    other => prop_assert!(false, "{} on {trigger:?}: {other:?}", s.name),
                }
            }
        }
    }

    /// (c) An enabled exact transition always beats `*`, and (d) among enabled exact
    /// candidates the highest priority wins.
    #[test]
    fn exact_beats_any_and_priority_wins(contract in machine(), ctx in context()) {
        let engine = FsmEngine::compile(contract.clone());
        for s in contract.states.iter().filter(|s| !s.is_terminal) {
            for trigger in ALPHABET {
                let exact = exact_candidates(&contract, &s.name, trigger);
                let best = exact.iter().filter(|t| enabled(t, &ctx)).max_by_key(|t| t.priority);
                let Some(best) = best else { continue };
                match engine.step(&s.name, trigger, &ctx) {
                    Ok(StepResult::Moved { transition, to, .. }) => {
                        prop_assert!(exact.iter().any(|t| t.name == transition), "`*` transition {transition} beat an enabled exact one");
                        prop_assert_eq!(transition, best.name.as_str(), "not the highest-priority enabled exact candidate");
                        prop_assert_eq!(to, best.to.as_str());
                    }
                    other => prop_assert!(false, "{} on {trigger}: expected a move, got {other:?}", s.name),
                }
            }
        }
    }

    /// The engine agrees with a reference model on every (state, trigger) pair.
    #[test]
    fn engine_matches_reference_model(contract in machine(), ctx in context()) {
        let engine = FsmEngine::compile(contract.clone());
        for s in &contract.states {
            for trigger in all_triggers() {
                let got = engine.step(&s.name, trigger, &ctx);
                match (expected_step(&contract, &s.name, trigger, &ctx), got) {
                    (Some((t, true)), Ok(StepResult::Moved { transition, to, .. })) => {
                        prop_assert_eq!(transition, t.name.as_str());
                        prop_assert_eq!(to, t.to.as_str());
                    }
                    (Some((t, false)), Ok(StepResult::Blocked { transition, condition, reason })) => {
                        prop_assert_eq!(transition, t.name.as_str());
                        let failed = t.conditions.iter().find(|c| c.required && c.expression.evaluate(&ctx).is_err()).unwrap();
                        prop_assert_eq!(condition, failed.name.as_str());
                        prop_assert!(reason.contains('x'), "{reason}");
                    }
                    (None, Err(FsmError::NoTransition { terminal, .. })) => prop_assert_eq!(terminal, s.is_terminal),
                    (expected, got) => prop_assert!(false, "{} on {trigger:?}: expected {expected:?}, got {got:?}", s.name),
                }
            }
        }
    }

    /// (e) Intents are: exit actions of the state left, the transition's actions, entry actions
    /// of the state entered, then `persist_state` when persistence is enabled.
    #[test]
    fn intents_are_ordered(contract in machine(), ctx in context()) {
        let engine = FsmEngine::compile(contract.clone());
        for s in &contract.states {
            for trigger in ALPHABET {
                if let Ok(StepResult::Moved { transition, intents, .. }) = engine.step(&s.name, trigger, &ctx) {
                    let t = transition_def(&contract, transition);
                    let expected = expected_intents(&contract, &s.name, t);
                    prop_assert_eq!(intents, expected.as_slice());
                    let phases: Vec<IntentPhase> = intents.iter().map(|i| i.phase).collect();
                    let rank = |p: &IntentPhase| match p {
                        IntentPhase::Exit => 0,
                        IntentPhase::Transition => 1,
                        IntentPhase::Entry => 2,
                        IntentPhase::Persist => 3,
                    };
                    prop_assert!(phases.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "{phases:?}");
                    prop_assert_eq!(phases.last() == Some(&IntentPhase::Persist), contract.persistence_enabled);
                }
            }
        }
    }

    /// Stepping from a state the machine does not declare is refused, never guessed.
    #[test]
    fn unknown_states_are_refused(contract in machine(), (trigger, ctx) in event()) {
        let engine = FsmEngine::compile(contract);
        let refused = matches!(engine.step("nope", &trigger, &ctx), Err(FsmError::UnknownState { ref state, .. }) if state == "nope");
        prop_assert!(refused);
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests.

fn lifecycle() -> FsmEngine {
    // Embedded at compile time: onex-core's clippy.toml refuses `std::fs::read`.
    let bytes = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/reducers/service_lifecycle.yaml"));
    let loaded = load_document("contracts/reducers/service_lifecycle.yaml", bytes).unwrap();
    let ContractDocument::Node(node) = loaded.value else { panic!("service_lifecycle.yaml is not a node contract") };
    FsmEngine::compile(node.state_machine.clone().expect("the reducer declares a state machine"))
}

fn moved(result: Result<StepResult<'_>, FsmError>) -> (String, String, Vec<Intent>) {
    match result {
        Ok(StepResult::Moved { transition, to, intents }) => (transition.to_owned(), to.to_owned(), intents.to_vec()),
        other => panic!("expected a move, got {other:?}"),
    }
}

fn intent_types(intents: &[Intent]) -> Vec<(&str, IntentPhase)> {
    intents.iter().map(|i| (i.intent_type.as_str(), i.phase)).collect()
}

#[test]
fn degraded_fails_over_once_the_threshold_is_reached() {
    let engine = lifecycle();
    for ctx in
        [json!({"consecutive_failures": 3}), json!({"consecutive_failures": 7}), json!({"consecutive_failures": 3.5})]
    {
        let (transition, to, intents) = moved(engine.step("degraded", "health_check_failed", &ctx));
        assert_eq!((transition.as_str(), to.as_str()), ("fail_after_repeated_checks", "failed"), "{ctx}");
        assert_eq!(
            intent_types(&intents),
            [("failover_required", IntentPhase::Entry), ("persist_state", IntentPhase::Persist)]
        );
        assert!(
            intents
                .iter()
                .all(|i| i.from_state == "degraded" && i.to_state == "failed" && i.fsm == "service_lifecycle")
        );
    }
}

#[test]
fn degraded_stays_degraded_below_the_threshold() {
    let engine = lifecycle();
    for ctx in [
        json!({"consecutive_failures": 2}),
        json!({"consecutive_failures": 0}),
        json!({}),
        json!({"consecutive_failures": null}),
    ] {
        let (transition, to, intents) = moved(engine.step("degraded", "health_check_failed", &ctx));
        assert_eq!((transition.as_str(), to.as_str()), ("stay_degraded", "degraded"), "{ctx}");
        assert_eq!(
            intent_types(&intents),
            [("infrastructure_health_degraded", IntentPhase::Entry), ("persist_state", IntentPhase::Persist)]
        );
    }
}

#[test]
fn numeric_strings_compare_as_numbers() {
    let engine = lifecycle();
    // As strings, "10" < "3"; as numbers 10 >= 3.
    let (transition, to, _) =
        moved(engine.step("degraded", "health_check_failed", &json!({"consecutive_failures": "10"})));
    assert_eq!((transition.as_str(), to.as_str()), ("fail_after_repeated_checks", "failed"));
    let (transition, _, _) =
        moved(engine.step("degraded", "health_check_failed", &json!({"consecutive_failures": "2"})));
    assert_eq!(transition, "stay_degraded");
    // Not a number at all: the guard fails and the fallback is taken.
    let (transition, _, _) =
        moved(engine.step("degraded", "health_check_failed", &json!({"consecutive_failures": "many"})));
    assert_eq!(transition, "stay_degraded");
}

#[test]
fn lifecycle_walk_and_wildcard_stop() {
    let engine = lifecycle();
    let ctx = json!({});
    let mut state = engine.initial_state().to_owned();
    assert_eq!(state, "registered");
    for (trigger, expected) in [
        ("start_requested", "starting"),
        ("service_started", "running"),
        ("health_check_failed", "degraded"),
        ("health_check_passed", "running"),
        ("stop_requested", "stopping"),
        ("service_stopped", "stopped"),
    ] {
        let (_, to, _) = moved(engine.step(&state, trigger, &ctx));
        assert_eq!(to, expected, "{state} on {trigger}");
        state = to;
    }
    assert!(engine.is_terminal(&state));
    // `*` does not apply to the terminal state.
    assert!(matches!(
        engine.step("stopped", "stop_requested", &ctx),
        Err(FsmError::NoTransition { terminal: true, .. })
    ));
    // Leaving `stopping` runs its exit action first.
    let (_, _, intents) = moved(engine.step("stopping", "service_stopped", &ctx));
    assert_eq!(
        intent_types(&intents),
        [("deregister_service", IntentPhase::Exit), ("persist_state", IntentPhase::Persist)]
    );
    // A transition action carries its configuration.
    let (_, _, intents) = moved(engine.step("failed", "restart_requested", &ctx));
    assert_eq!(
        intent_types(&intents),
        [
            ("recovery_initiated", IntentPhase::Transition),
            ("register_service", IntentPhase::Entry),
            ("persist_state", IntentPhase::Persist)
        ]
    );
    assert_eq!(intents[0].config, json!({"reason": "restart requested"}));
    // Unknown trigger from a non-terminal state.
    assert!(matches!(engine.step("running", "nonsense", &ctx), Err(FsmError::NoTransition { terminal: false, .. })));
}

const DOOR: &str = r#"
name: door
states:
  - {name: closed, type: initial}
  - {name: open}
  - {name: jammed}
transitions:
  - from: closed
    to: open
    event: push
    name: open_door
    conditions:
      - condition_name: strong_enough
        expression: "force > 5"
      - condition_name: advisory
        expression: "mood == calm"
        required: false
  - from: closed
    to: jammed
    event: kick
    name: kick_door
    conditions:
      - condition_name: hard_kick
        expression: "force >= 100"
        error_message: "kick harder"
"#;

fn door() -> FsmEngine {
    FsmEngine::compile(load_fsm("door.yaml", DOOR.as_bytes()).unwrap().value)
}

#[test]
fn a_failed_guard_blocks_with_the_condition_and_the_field() {
    let engine = door();
    for ctx in [json!({"force": 3}), json!({"force": "5"}), json!({}), json!({"force": null})] {
        match engine.step("closed", "push", &ctx) {
            Ok(StepResult::Blocked { transition, condition, reason }) => {
                assert_eq!(transition, "open_door");
                assert_eq!(condition, "strong_enough");
                assert!(reason.contains("force"), "{ctx}: {reason}");
            }
            other => panic!("{ctx}: expected blocked, got {other:?}"),
        }
    }
    let missing = engine.step("closed", "push", &json!({})).unwrap();
    let StepResult::Blocked { reason, .. } = &missing else { panic!("not blocked") };
    assert!(reason.contains("missing"), "{reason}");
    assert_eq!(missing.state("closed"), "closed");
}

#[test]
fn optional_conditions_do_not_block_and_error_messages_override() {
    let engine = door();
    // `mood == calm` is optional: it fails here but the transition is taken.
    let (transition, to, _) = moved(engine.step("closed", "push", &json!({"force": 6, "mood": "angry"})));
    assert_eq!((transition.as_str(), to.as_str()), ("open_door", "open"));
    match engine.step("closed", "kick", &json!({"force": 10})) {
        Ok(StepResult::Blocked { condition, reason, .. }) => {
            assert_eq!(condition, "hard_kick");
            assert_eq!(reason, "kick harder");
        }
        other => panic!("expected blocked, got {other:?}"),
    }
}
