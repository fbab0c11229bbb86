//! Finite state machines: guard expressions, the compiled engine and diagrams.

mod condition;
mod engine;
mod render;
mod svg;

pub use condition::{Expression, OPERATORS, Operator};
pub use engine::{FsmEngine, Intent, IntentPhase, StepResult};
pub use render::{to_dot, to_mermaid};
pub use svg::{escape_xml, to_svg};

use crate::error::{Classified, ErrorCode, codes};

/// Why a step was refused outright (a blocked guard is not an error: see `StepResult::Blocked`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsmError {
    /// The entity's stored state is not declared by the machine.
    #[error("state machine `{fsm}` has no state `{state}`")]
    UnknownState {
        /// Machine name.
        fsm: String,
        /// The unknown state.
        state: String,
    },
    /// No transition of the current state accepts the trigger.
    #[error("state machine `{fsm}`: no transition from `{state}` on `{trigger}`{}", if *terminal { " (the state is terminal)" } else { "" })]
    NoTransition {
        /// Machine name.
        fsm: String,
        /// Current state.
        state: String,
        /// The event type.
        trigger: String,
        /// Whether the state is terminal.
        terminal: bool,
    },
}

impl Classified for FsmError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::UnknownState { .. } => codes::FSM_STATE_UNKNOWN,
            Self::NoTransition { .. } => codes::FSM_NO_TRANSITION,
        }
    }
}
