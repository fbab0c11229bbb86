//! Stable error codes and categories shared by every crate, and the core crate's error type.
//!
//! An [`ErrorCode`] is a stable string (`ONEX_CORE_081_OPERATION_FAILED`) plus an
//! [`ErrorCategory`]; the category alone decides whether a failure may be retried.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::contract::ContractErrors;
use crate::fsm::FsmError;
use crate::workflow::PlanError;

/// What kind of failure an error is; drives retry and circuit-breaker decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// The input is wrong; retrying the same input cannot succeed.
    Validation,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with current state (unique violation, CAS mismatch).
    Conflict,
    /// The operation did not finish in time.
    Timeout,
    /// A dependency is down or overloaded.
    Unavailable,
    /// Credentials are missing, wrong or insufficient.
    Auth,
    /// A bug or an unexpected condition inside the runtime.
    Internal,
}

impl ErrorCategory {
    /// Every category, in a fixed order (for metrics labels and exhaustive tests).
    pub const ALL: [ErrorCategory; 7] = [
        Self::Validation,
        Self::NotFound,
        Self::Conflict,
        Self::Timeout,
        Self::Unavailable,
        Self::Auth,
        Self::Internal,
    ];

    /// Whether a failure of this category may succeed when tried again unchanged.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Timeout | Self::Unavailable)
    }

    /// The snake_case name used on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Auth => "auth",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable error code with its category. Codes never change meaning once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    code: &'static str,
    category: ErrorCategory,
}

impl ErrorCode {
    /// Declares a code; use the constants in [`codes`] rather than calling this ad hoc.
    pub const fn new(code: &'static str, category: ErrorCategory) -> Self {
        Self { code, category }
    }

    /// The stable string, e.g. `ONEX_CORE_081_OPERATION_FAILED`.
    pub const fn as_str(self) -> &'static str {
        self.code
    }

    /// The category that decides retry behaviour.
    pub const fn category(self) -> ErrorCategory {
        self.category
    }

    /// Shorthand for `self.category().retryable()`.
    pub fn retryable(self) -> bool {
        self.category.retryable()
    }

    /// Finds a catalogued code by its string.
    pub fn lookup(code: &str) -> Option<ErrorCode> {
        codes::ALL.iter().copied().find(|c| c.code == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// Anything that can name its stable [`ErrorCode`]. Every crate's error enum implements it.
pub trait Classified {
    /// The stable code (and so the category) of this error.
    fn error_code(&self) -> ErrorCode;

    /// The category of this error.
    fn category(&self) -> ErrorCategory {
        self.error_code().category()
    }
}

/// Walks an error's `source()` chain and returns the first classified error's code.
///
/// `classify` is asked about every link, outermost first; callers pass a closure that
/// downcasts to the error types they know.
pub fn classify_chain(
    err: &(dyn std::error::Error + 'static),
    classify: impl Fn(&(dyn std::error::Error + 'static)) -> Option<ErrorCode>,
) -> Option<ErrorCode> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(code) = classify(e) {
            return Some(code);
        }
        current = e.source();
    }
    None
}

/// Declares a crate's catalogue of stable error codes: one `pub const` per code and `ALL`,
/// the list every crate's uniqueness test walks. Use inside a `codes` module:
/// `error_catalogue! { /// doc \n NAME = ("ONEX_X_001_NAME", Validation); }`.
#[macro_export]
macro_rules! error_catalogue {
    ($($(#[$doc:meta])* $name:ident = ($code:literal, $cat:ident);)*) => {
        $($(#[$doc])* pub const $name: $crate::error::ErrorCode =
            $crate::error::ErrorCode::new($code, $crate::error::ErrorCategory::$cat);)*
        /// Every catalogued code.
        pub const ALL: &[$crate::error::ErrorCode] = &[$($name),*];
    };
}

/// The catalogue of stable error codes. Numbers are grouped by area and never reused.
pub mod codes {
    crate::error_catalogue! {
        /// YAML that does not parse.
        CONTRACT_SYNTAX = ("ONEX_CORE_010_CONTRACT_SYNTAX", Validation);
        /// A contract file that is not UTF-8.
        CONTRACT_NOT_UTF8 = ("ONEX_CORE_011_CONTRACT_NOT_UTF8", Validation);
        /// A contract file over the size limit.
        CONTRACT_TOO_LARGE = ("ONEX_CORE_012_CONTRACT_TOO_LARGE", Validation);
        /// Nesting deeper than the loader accepts.
        CONTRACT_TOO_DEEP = ("ONEX_CORE_013_CONTRACT_TOO_DEEP", Validation);
        /// A value of the wrong type.
        CONTRACT_WRONG_TYPE = ("ONEX_CORE_014_CONTRACT_WRONG_TYPE", Validation);
        /// A key that neither this runtime nor the upstream models know.
        CONTRACT_UNKNOWN_FIELD = ("ONEX_CORE_015_CONTRACT_UNKNOWN_FIELD", Validation);
        /// A required key that is absent.
        CONTRACT_MISSING_FIELD = ("ONEX_CORE_016_CONTRACT_MISSING_FIELD", Validation);
        /// A value of the right type that is not allowed (bad enum value, out of range).
        CONTRACT_INVALID_VALUE = ("ONEX_CORE_017_CONTRACT_INVALID_VALUE", Validation);
        /// A key given twice in one mapping.
        CONTRACT_DUPLICATE_KEY = ("ONEX_CORE_018_CONTRACT_DUPLICATE_KEY", Validation);
        /// A document whose kind (node, FSM, workflow, runtime config) cannot be told.
        CONTRACT_UNKNOWN_KIND = ("ONEX_CORE_019_CONTRACT_UNKNOWN_KIND", Validation);
        /// A state named twice.
        FSM_DUPLICATE_STATE = ("ONEX_CORE_020_FSM_DUPLICATE_STATE", Validation);
        /// A transition or list naming a state that is not declared.
        FSM_UNKNOWN_STATE = ("ONEX_CORE_021_FSM_UNKNOWN_STATE", Validation);
        /// No initial state, or more than one.
        FSM_NO_INITIAL_STATE = ("ONEX_CORE_022_FSM_NO_INITIAL_STATE", Validation);
        /// A state no transition reaches (a warning).
        FSM_UNREACHABLE_STATE = ("ONEX_CORE_023_FSM_UNREACHABLE_STATE", Validation);
        /// An explicit transition leaving a terminal state.
        FSM_TRANSITION_FROM_TERMINAL = ("ONEX_CORE_024_FSM_TRANSITION_FROM_TERMINAL", Validation);
        /// Two transitions with the same from state, trigger and priority.
        FSM_AMBIGUOUS_TRANSITION = ("ONEX_CORE_025_FSM_AMBIGUOUS_TRANSITION", Validation);
        /// A condition expression that does not parse or uses an unknown operator (a warning,
        /// as the Python runtime loads it: the transition fails when the condition is reached).
        FSM_BAD_CONDITION = ("ONEX_CORE_026_FSM_BAD_CONDITION", Validation);
        /// A workflow whose steps depend on each other in a cycle.
        WORKFLOW_CYCLE = ("ONEX_CORE_030_WORKFLOW_CYCLE", Validation);
        /// A `depends_on` naming a step that does not exist.
        WORKFLOW_UNKNOWN_DEPENDENCY = ("ONEX_CORE_031_WORKFLOW_UNKNOWN_DEPENDENCY", Validation);
        /// Two steps with one name.
        WORKFLOW_DUPLICATE_STEP = ("ONEX_CORE_032_WORKFLOW_DUPLICATE_STEP", Validation);
        /// An intent routed to a workflow no contract defines.
        WORKFLOW_UNKNOWN_ROUTE = ("ONEX_CORE_033_WORKFLOW_UNKNOWN_ROUTE", Validation);
        /// An operation no registered handler provides.
        UNKNOWN_OPERATION = ("ONEX_CORE_040_UNKNOWN_OPERATION", Validation);
        /// Two node contracts with one name.
        DUPLICATE_NODE = ("ONEX_CORE_041_DUPLICATE_NODE", Validation);
        /// A contract field that is accepted for compatibility but not acted on (a warning).
        IGNORED_FIELD = ("ONEX_CORE_042_IGNORED_FIELD", Validation);
        /// An operation that neither names a handler type (`handler.name`) nor is bound by
        /// `handler_routing` (a warning: calling it answers OPERATION_NOT_FOUND).
        OPERATION_UNBOUND = ("ONEX_CORE_046_OPERATION_UNBOUND", Validation);
        /// A handler a contract binds by name that no registered handler answers to (a warning
        /// for `validate`; `run --require-all-handlers` refuses to start).
        HANDLER_UNBOUND = ("ONEX_CORE_047_HANDLER_UNBOUND", Validation);
        /// An FSM action whose intent no orchestrator routes and no `published_events` entry
        /// declares: it is dropped when emitted (a warning; counted at run time).
        INTENT_DROPPED = ("ONEX_CORE_028_INTENT_DROPPED", Validation);
        /// A document kind that loads but that this host does not run (a warning).
        NOT_RUN = ("ONEX_CORE_049_NOT_RUN", Validation);
        /// An `!include` that cannot be resolved (missing file, cycle, too deep).
        CONTRACT_INCLUDE = ("ONEX_CORE_027_CONTRACT_INCLUDE", Validation);
        /// An operation declared by two effect nodes (which one serves it would be hidden).
        OPERATION_DECLARED_TWICE = ("ONEX_CORE_045_OPERATION_DECLARED_TWICE", Validation);
        /// A secret written literally where a `${env:…}`/`${vault:…}` reference belongs.
        LITERAL_SECRET = ("ONEX_CORE_043_LITERAL_SECRET", Validation);
        /// An `ONEX_*` override that does not parse or names no setting.
        BAD_OVERRIDE = ("ONEX_CORE_044_BAD_OVERRIDE", Validation);
        /// An envelope that is malformed (bad JSON, bad UUID, missing operation).
        ENVELOPE_INVALID = ("ONEX_CORE_050_ENVELOPE_INVALID", Validation);
        /// An envelope larger than the configured cap.
        ENVELOPE_TOO_LARGE = ("ONEX_CORE_051_ENVELOPE_TOO_LARGE", Validation);
        /// An operation that no node or handler serves.
        OPERATION_NOT_FOUND = ("ONEX_CORE_052_OPERATION_NOT_FOUND", NotFound);
        /// An event that no transition of the current state accepts.
        FSM_NO_TRANSITION = ("ONEX_CORE_060_FSM_NO_TRANSITION", Validation);
        /// A state value that the machine does not declare.
        FSM_STATE_UNKNOWN = ("ONEX_CORE_061_FSM_STATE_UNKNOWN", Validation);
        /// A transition whose required condition refused the event (the state is unchanged).
        FSM_GUARD_REFUSED = ("ONEX_CORE_062_FSM_GUARD_REFUSED", Validation);
        /// An event for a state machine that does not say which entity it is about.
        FSM_ENTITY_KEY_MISSING = ("ONEX_CORE_063_FSM_ENTITY_KEY_MISSING", Validation);
        /// A workflow run asked to record an outcome for a step it is not waiting on.
        WORKFLOW_UNEXPECTED_OUTCOME = ("ONEX_CORE_070_WORKFLOW_UNEXPECTED_OUTCOME", Internal);
        /// A stamp request with a value that cannot be written into a stamp.
        STAMP_INVALID_INPUT = ("ONEX_CORE_090_STAMP_INVALID_INPUT", Validation);
        /// A circuit breaker that refuses calls while open.
        CIRCUIT_OPEN = ("ONEX_CORE_080_CIRCUIT_OPEN", Unavailable);
        /// A handler operation that failed for an unclassified reason.
        OPERATION_FAILED = ("ONEX_CORE_081_OPERATION_FAILED", Internal);
        /// A handler operation that exceeded its timeout.
        OPERATION_TIMEOUT = ("ONEX_CORE_082_OPERATION_TIMEOUT", Timeout);
        /// A call refused by the rate limiter.
        RATE_LIMITED = ("ONEX_CORE_083_RATE_LIMITED", Unavailable);
    }
}

/// The error type of `onex-core`: every fallible core API returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// One or more contract diagnostics of error severity.
    #[error(transparent)]
    Contract(#[from] ContractErrors),
    /// A state machine refused a step.
    #[error(transparent)]
    Fsm(#[from] FsmError),
    /// A workflow could not be planned or advanced.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An envelope could not be decoded.
    #[error(transparent)]
    Envelope(#[from] crate::envelope::EnvelopeError),
}

impl Classified for CoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Contract(e) => e.error_code(),
            Self::Fsm(e) => e.error_code(),
            Self::Plan(e) => e.error_code(),
            Self::Envelope(e) => e.error_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeout_and_unavailable_are_retryable() {
        let retryable: Vec<_> = ErrorCategory::ALL.iter().filter(|c| c.retryable()).collect();
        assert_eq!(retryable, [&ErrorCategory::Timeout, &ErrorCategory::Unavailable]);
    }

    #[test]
    fn catalogue_codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in codes::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code.as_str().starts_with("ONEX_CORE_"), "{code}");
            let number = &code.as_str()[10..13];
            assert!(number.chars().all(|c| c.is_ascii_digit()), "{code}");
        }
        let numbers: std::collections::HashSet<_> = codes::ALL.iter().map(|c| &c.as_str()[..13]).collect();
        assert_eq!(numbers.len(), codes::ALL.len(), "a code number is reused");
    }

    #[test]
    fn lookup_finds_catalogued_codes_only() {
        assert_eq!(ErrorCode::lookup("ONEX_CORE_080_CIRCUIT_OPEN"), Some(codes::CIRCUIT_OPEN));
        assert_eq!(ErrorCode::lookup("ONEX_CORE_999_NOPE"), None);
    }

    #[test]
    fn classify_chain_finds_inner_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner;
        let err = Outer(Inner);
        let code = classify_chain(&err, |e| e.downcast_ref::<Inner>().map(|_| codes::OPERATION_TIMEOUT));
        assert_eq!(code, Some(codes::OPERATION_TIMEOUT));
    }
}
