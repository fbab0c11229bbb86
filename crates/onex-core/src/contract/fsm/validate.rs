//! Semantic checks of a decoded state machine: states, initial state, transitions, terminal
//! states, ambiguity and reachability, each pointed at the offending value in the source.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{FromState, FsmContract, StateDef, TransitionDef};
use crate::contract::decode::{Cx, index, join};
use crate::contract::fields::value_of;
use crate::error::codes;
use crate::yaml::{Node, Pos};

/// The source node of the item of list `key` declared at `pos`, and its index in the source
/// (items that failed to decode are left out of the model, so model indices may differ).
fn source_item<'n>(node: &'n Node, key: &str, pos: Pos) -> Option<(usize, &'n Node)> {
    match &value_of(node, key)?.value {
        crate::yaml::Value::Seq(items) => items.iter().enumerate().find(|(_, n)| n.pos == pos),
        _ => None,
    }
}

/// Field path and position of the source or target state of a transition (either form).
fn endpoint_site(
    item: Option<(usize, &Node)>,
    fallback: (usize, Pos),
    tr_path: &str,
    field: &str,
    compact_key: &str,
) -> (String, Pos) {
    let (i, pos) = match item {
        Some((i, n)) => (i, value_of(n, field).or_else(|| value_of(n, compact_key)).map_or(n.pos, |v| v.pos)),
        None => fallback,
    };
    (join(&index(tr_path, i), field), pos)
}

/// Semantic checks: states, initial state, transitions, terminal states, ambiguity, reachability.
/// `node` is the machine's source, used to point each diagnostic at the offending value.
pub(super) fn validate(cx: &mut Cx, fsm: &FsmContract, node: &Node, path: &str) {
    let states_path = join(path, "states");
    let mut names: HashMap<&str, &StateDef> = HashMap::new();
    for (i, s) in fsm.states.iter().enumerate() {
        if let Some(first) = names.insert(&s.name, s) {
            let i = source_item(node, "states", s.pos).map_or(i, |(i, _)| i);
            cx.error(
                codes::FSM_DUPLICATE_STATE,
                s.pos,
                &index(&states_path, i),
                format!("state `{}` is declared twice (first at line {})", s.name, first.pos.line),
            );
        }
    }
    // The compact form derives `initial_state` from a declared state; in the upstream form an
    // absent, empty or non-string `initial_state` was already reported by the decoder.
    let initial_declared = names.contains_key(fsm.initial_state.as_str());
    let initial_node = value_of(node, "initial_state")
        .filter(|n| !initial_declared && !n.is_null() && matches!(n.value, crate::yaml::Value::Scalar { .. }));
    if let Some(initial) = initial_node {
        cx.error(
            codes::FSM_NO_INITIAL_STATE,
            initial.pos,
            &join(path, "initial_state"),
            format!("initial state `{}` is not a declared state", fsm.initial_state),
        );
    }
    let error_states_pos = value_of(node, "error_states").map_or(fsm.pos, |n| n.pos);
    for e in &fsm.error_states {
        if !names.contains_key(e.as_str()) {
            cx.error(
                codes::FSM_UNKNOWN_STATE,
                error_states_pos,
                &join(path, "error_states"),
                format!("`{e}` is not a declared state"),
            );
        }
    }
    let tr_path = join(path, "transitions");
    let mut seen: HashMap<(&FromState, &str, i64), &TransitionDef> = HashMap::new();
    for (i, t) in fsm.transitions.iter().enumerate() {
        let item = source_item(node, "transitions", t.pos);
        if let FromState::State(from) = &t.from {
            let (field, pos) = endpoint_site(item, (i, t.pos), &tr_path, "from_state", "from");
            match names.get(from.as_str()) {
                None => cx.error(
                    codes::FSM_UNKNOWN_STATE,
                    pos,
                    &field,
                    format!("`{from}` is not a declared state (use `*` for any state)"),
                ),
                Some(s) if s.is_terminal => cx.error(
                    codes::FSM_TRANSITION_FROM_TERMINAL,
                    pos,
                    &field,
                    format!("`{from}` is terminal; terminal states absorb every event"),
                ),
                Some(_) => {}
            }
        }
        if !names.contains_key(t.to.as_str()) {
            let (field, pos) = endpoint_site(item, (i, t.pos), &tr_path, "to_state", "to");
            cx.error(codes::FSM_UNKNOWN_STATE, pos, &field, format!("`{}` is not a declared state", t.to));
        }
        if let Some(first) = seen.insert((&t.from, &t.trigger, t.priority), t) {
            cx.error(
                codes::FSM_AMBIGUOUS_TRANSITION,
                t.pos,
                &index(&tr_path, item.map_or(i, |(i, _)| i)),
                format!(
                    "same from state, trigger `{}` and priority {} as `{}` (line {}); give one a different priority",
                    t.trigger, t.priority, first.name, first.pos.line
                ),
            );
        }
    }
    if !initial_declared {
        return; // reachability means nothing without a start
    }
    for s in unreachable(fsm) {
        cx.warn(
            codes::FSM_UNREACHABLE_STATE,
            s.pos,
            &states_path,
            format!("state `{}` cannot be reached from `{}`", s.name, fsm.initial_state),
        );
    }
}

fn unreachable(fsm: &FsmContract) -> Vec<&StateDef> {
    let terminal: HashSet<&str> = fsm.states.iter().filter(|s| s.is_terminal).map(|s| s.name.as_str()).collect();
    let mut reached: HashSet<&str> = HashSet::from([fsm.initial_state.as_str()]);
    let mut queue = VecDeque::from([fsm.initial_state.as_str()]);
    while let Some(state) = queue.pop_front() {
        for t in &fsm.transitions {
            let applies = match &t.from {
                FromState::Any => !terminal.contains(state),
                FromState::State(f) => f == state,
            };
            if applies && reached.insert(t.to.as_str()) {
                queue.push_back(t.to.as_str());
            }
        }
    }
    fsm.states.iter().filter(|s| !reached.contains(s.name.as_str())).collect()
}
