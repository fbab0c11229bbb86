//! Decoding both FSM forms into [`FsmContract`]; semantic checks follow in `validate`.

use serde_json::Value as Json;

use super::validate::validate;
use super::{ActionDef, ConditionDef, FromState, FsmContract, StateDef, TransitionDef};
use crate::contract::decode::{Cx, Decode, index, join};
use crate::contract::fields::Fields;
use crate::error::codes;
use crate::fsm::Expression;
use crate::yaml::Node;

const UPSTREAM_FSM_IGNORED: &[&str] = &[
    "operations",
    "checkpoint_interval_ms",
    "max_checkpoints",
    "recovery_enabled",
    "rollback_enabled",
    "conflict_resolution_strategy",
    "concurrent_transitions_allowed",
    "transition_timeout_ms",
    "strict_validation_enabled",
    "validation_hooks",
];
const STATE_IGNORED: &[&str] = &["is_recoverable", "required_data", "optional_data", "validation_rules", "timeout_ms"];
const TRANSITION_IGNORED: &[&str] =
    &["rollback_transitions", "is_atomic", "retry_enabled", "max_retries", "retry_delay_ms"];
impl Decode for ConditionDef {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let name: Option<String> = f.opt(cx, "condition_name");
        let source: Option<String> = f.req(cx, "expression");
        let required = f.or(cx, "required", true);
        let error_message = f.opt(cx, "error_message");
        f.descriptive(&["condition_type", "version", "description"]);
        f.ignored(cx, &["retry_count", "timeout_ms"]);
        let expression_pos = f.pos_of("expression");
        f.finish(cx);
        let source = source?;
        // The Python runtime loads an expression it cannot parse and fails when the guard is
        // reached: so does this one, with a warning now.
        let expression = Expression::parse(&source).unwrap_or_else(|why| {
            let message = format!("{why}; the transition fails when this condition is evaluated");
            cx.warn(codes::FSM_BAD_CONDITION, expression_pos, &join(path, "expression"), message);
            Expression::deferred(&source, why)
        });
        let name = name.unwrap_or_else(|| source.trim().to_owned());
        Some(Self { name, expression, required, error_message, pos: node.pos })
    }
}

impl Decode for ActionDef {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        // A bare string is an action with that name (the form entry/exit actions use).
        if let crate::yaml::Value::Scalar { .. } = node.value {
            let name = String::decode(cx, node, path)?;
            return Some(Self { name, action_type: None, config: Json::Null, pos: node.pos });
        }
        let mut f = Fields::new(cx, node, path)?;
        let name = f.req(cx, "action_name");
        let action_type = f.opt(cx, "action_type");
        let config = f.or(cx, "action_config", Json::Null);
        f.descriptive(&["version"]);
        f.ignored(cx, &["execution_order", "is_critical", "rollback_action", "timeout_ms"]);
        f.finish(cx);
        Some(Self { name: name?, action_type, config, pos: node.pos })
    }
}

fn from_state(text: String) -> FromState {
    if text == "*" { FromState::Any } else { FromState::State(text) }
}

fn decode_upstream_state(cx: &mut Cx, node: &Node, path: &str) -> Option<StateDef> {
    let mut f = Fields::new(cx, node, path)?;
    let name = f.req(cx, "state_name");
    let is_terminal = f.or(cx, "is_terminal", false);
    let entry_actions = f.or(cx, "entry_actions", Vec::new());
    let exit_actions = f.or(cx, "exit_actions", Vec::new());
    f.descriptive(&["description", "state_type", "version", "metadata"]);
    f.ignored(cx, STATE_IGNORED);
    f.finish(cx);
    Some(StateDef { name: name?, is_terminal, entry_actions, exit_actions, pos: node.pos })
}

fn decode_upstream_transition(cx: &mut Cx, node: &Node, path: &str) -> Option<TransitionDef> {
    let mut f = Fields::new(cx, node, path)?;
    let name: Option<String> = f.opt(cx, "transition_name");
    let from: Option<String> = f.req(cx, "from_state");
    let to: Option<String> = f.req(cx, "to_state");
    let trigger = f.req(cx, "trigger");
    let priority = f.or(cx, "priority", 1);
    let conditions = f.or(cx, "conditions", Vec::new());
    let actions = f.or(cx, "actions", Vec::new());
    f.descriptive(&["description", "version"]);
    f.ignored(cx, TRANSITION_IGNORED);
    f.finish(cx);
    let (from, to) = (from?, to?);
    Some(TransitionDef {
        name: name.unwrap_or_else(|| format!("{from}->{to}")),
        from: from_state(from),
        to,
        trigger: trigger?,
        priority,
        conditions,
        actions,
        pos: node.pos,
    })
}

fn decode_list<T>(
    cx: &mut Cx,
    f: &mut Fields<'_>,
    key: &'static str,
    item: fn(&mut Cx, &Node, &str) -> Option<T>,
) -> Option<Vec<T>> {
    let path = join(f.path(), key);
    let Some(node) = f.node(key) else {
        f.missing(key);
        return None;
    };
    let crate::yaml::Value::Seq(items) = &node.value else {
        cx.error(
            codes::CONTRACT_WRONG_TYPE,
            node.pos,
            &path,
            format!("expected a sequence, found {}", node.type_name()),
        );
        return None;
    };
    Some(items.iter().enumerate().filter_map(|(i, n)| item(cx, n, &index(&path, i))).collect())
}

fn decode_upstream(cx: &mut Cx, node: &Node, path: &str) -> Option<FsmContract> {
    let mut f = Fields::new(cx, node, path)?;
    let name = f.req(cx, "state_machine_name");
    let initial_state = f.req(cx, "initial_state");
    let states = decode_list(cx, &mut f, "states", decode_upstream_state);
    let transitions = decode_list(cx, &mut f, "transitions", decode_upstream_transition);
    let terminal_states: Vec<String> = f.or(cx, "terminal_states", Vec::new());
    let error_states = f.or(cx, "error_states", Vec::new());
    let persistence_enabled = f.or(cx, "persistence_enabled", true);
    f.descriptive(&["description", "version", "state_machine_version"]);
    let terminal_pos = f.node("terminal_states").map_or(f.pos, |n| n.pos);
    f.ignored(cx, UPSTREAM_FSM_IGNORED);
    let pos = f.pos;
    f.finish(cx);
    let mut states: Vec<StateDef> = states?;
    for t in &terminal_states {
        match states.iter_mut().find(|s| &s.name == t) {
            Some(s) => s.is_terminal = true,
            None => cx.error(
                codes::FSM_UNKNOWN_STATE,
                terminal_pos,
                &join(path, "terminal_states"),
                format!("`{t}` is not a declared state"),
            ),
        }
    }
    // Missing scalars were reported; go on with placeholders so the semantic checks still run.
    let (name, initial_state) = (name.unwrap_or_default(), initial_state.unwrap_or_default());
    Some(FsmContract { name, initial_state, states, transitions: transitions?, error_states, persistence_enabled, pos })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CompactType {
    Initial,
    Normal,
    Final,
}

crate::contract::decode::decode_enum!(CompactType, "state type", {
    "initial" => CompactType::Initial,
    "normal" => CompactType::Normal,
    "final" => CompactType::Final,
});

fn decode_compact(cx: &mut Cx, node: &Node, path: &str) -> Option<FsmContract> {
    let mut f = Fields::new(cx, node, path)?;
    let name = f.req(cx, "name");
    f.descriptive(&["description", "version"]);
    let errors_before_states = cx.error_count();
    let states = decode_list(cx, &mut f, "states", |cx, n, p| {
        let mut s = Fields::new(cx, n, p)?;
        let name = s.req(cx, "name");
        let kind: CompactType = s.or(cx, "type", CompactType::Normal);
        let entry_actions = s.or(cx, "entry_actions", Vec::new());
        let exit_actions = s.or(cx, "exit_actions", Vec::new());
        s.descriptive(&["description"]);
        s.finish(cx);
        Some((
            StateDef { name: name?, is_terminal: kind == CompactType::Final, entry_actions, exit_actions, pos: n.pos },
            kind,
        ))
    });
    let states_clean = cx.error_count() == errors_before_states;
    let transitions = decode_list(cx, &mut f, "transitions", |cx, n, p| {
        let mut t = Fields::new(cx, n, p)?;
        let from: Option<String> = t.req(cx, "from");
        let to: Option<String> = t.req(cx, "to");
        let trigger = t.req(cx, "event");
        let name: Option<String> = t.opt(cx, "name");
        let priority = t.or(cx, "priority", 1);
        let conditions = t.or(cx, "conditions", Vec::new());
        let actions = t.or(cx, "actions", Vec::new());
        t.finish(cx);
        let (from, to) = (from?, to?);
        let name = name.unwrap_or_else(|| format!("{from}->{to}"));
        Some(TransitionDef {
            name,
            from: from_state(from),
            to,
            trigger: trigger?,
            priority,
            conditions,
            actions,
            pos: n.pos,
        })
    });
    let pos = f.pos;
    let states_pos = f.pos_of("states");
    f.finish(cx);
    let typed: Vec<(StateDef, CompactType)> = states?;
    let initials: Vec<&StateDef> = typed.iter().filter(|(_, k)| *k == CompactType::Initial).map(|(s, _)| s).collect();
    let initial_state = match initials.as_slice() {
        [one] => one.name.clone(),
        // A state that failed to decode (a bad `type`, say) may have been the initial one.
        [] if !states_clean => return None,
        [] => {
            cx.error(codes::FSM_NO_INITIAL_STATE, states_pos, &join(path, "states"), "no state has `type: initial`");
            return None;
        }
        [_, second, ..] => {
            cx.error(
                codes::FSM_NO_INITIAL_STATE,
                second.pos,
                &join(path, "states"),
                "more than one state has `type: initial`",
            );
            return None;
        }
    };
    let states = typed.into_iter().map(|(s, _)| s).collect();
    let name = name.unwrap_or_default();
    Some(FsmContract {
        name,
        initial_state,
        states,
        transitions: transitions?,
        error_states: Vec::new(),
        persistence_enabled: true,
        pos,
    })
}

impl Decode for FsmContract {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let upstream = matches!(&node.value, crate::yaml::Value::Map(entries)
            if entries.iter().any(|(k, _)| matches!(&k.value, crate::yaml::Value::Scalar { text, .. } if text == "state_machine_name")));
        let fsm = if upstream { decode_upstream(cx, node, path)? } else { decode_compact(cx, node, path)? };
        validate(cx, &fsm, node, path);
        Some(fsm)
    }
}
