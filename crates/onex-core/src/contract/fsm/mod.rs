//! FSM subcontracts: the upstream form (`state_name`, `from_state`, `trigger`, ...) and the
//! seed's compact form (`states[{name, type}]`, `transitions[{from, to, event}]`), decoded into
//! one model and checked semantically.

mod decode;
mod validate;

use serde_json::Value as Json;

use crate::fsm::Expression;
use crate::yaml::Pos;

/// The source state of a transition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FromState {
    /// `*`: any non-terminal state.
    Any,
    /// One named state.
    State(String),
}

/// One declared state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDef {
    /// Unique name.
    pub name: String,
    /// Whether the state absorbs every event.
    pub is_terminal: bool,
    /// Actions run (as intents) when entering the state.
    pub entry_actions: Vec<String>,
    /// Actions run (as intents) when leaving the state.
    pub exit_actions: Vec<String>,
    /// Where declared.
    pub pos: Pos,
}

/// A guard on a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDef {
    /// Name for messages.
    pub name: String,
    /// Parsed `field op value`.
    pub expression: Expression,
    /// A failed required condition blocks the transition; an optional one is only reported.
    pub required: bool,
    /// Message to use instead of the generated one.
    pub error_message: Option<String>,
    /// Where declared.
    pub pos: Pos,
}

/// An action run by a transition (becomes an intent).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDef {
    /// Intent type.
    pub name: String,
    /// Free-form action type.
    pub action_type: Option<String>,
    /// Configuration passed along in the intent.
    pub config: Json,
    /// Where declared.
    pub pos: Pos,
}

/// One declared transition.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionDef {
    /// Name (generated as `from->to` when the compact form omits it).
    pub name: String,
    /// Source state.
    pub from: FromState,
    /// Target state.
    pub to: String,
    /// Event type that fires it.
    pub trigger: String,
    /// Higher wins among candidates with the same source kind.
    pub priority: i64,
    /// Guards.
    pub conditions: Vec<ConditionDef>,
    /// Actions (intents) of the transition itself.
    pub actions: Vec<ActionDef>,
    /// Where declared.
    pub pos: Pos,
}

/// A state machine, in either source form.
#[derive(Debug, Clone, PartialEq)]
pub struct FsmContract {
    /// Machine name.
    pub name: String,
    /// Start state.
    pub initial_state: String,
    /// States in declaration order.
    pub states: Vec<StateDef>,
    /// Transitions in declaration order.
    pub transitions: Vec<TransitionDef>,
    /// States that are errors (informational; they may have transitions out).
    pub error_states: Vec<String>,
    /// Whether each step also emits a `persist_state` intent.
    pub persistence_enabled: bool,
    /// Where the machine is declared.
    pub pos: Pos,
}
