//! The built-in `circuit_breaker.evaluate`: replays a dependency's recorded call outcomes on
//! core's breaker, with the thresholds of the node's contract, and answers the breaker's state
//! at `now_ms`. An evaluation that ends open emits `circuit_breaker_opened`.
//!
//! Input: `{"outcomes": [{"at_ms": 1000, "success": false}, ...], "now_ms": 5000}` (times on
//! any one timeline, outcomes in time order). Output: `{"state": "closed"|"open"|"half_open",
//! "evaluated": n, "refused": m}`, where `refused` counts outcomes the breaker would not have
//! let through (recorded while it was open).

use onex_core::contract::CircuitBreakerPolicy;
use onex_core::error::ErrorCategory;
use onex_core::resilience::{BreakerState, CircuitBreaker};
use onex_core::time::Tick;
use onex_spi::{
    Compute, ComputeInput, ComputeOutput, EmittedEvent, HandlerDescriptor, OperationDescriptor, SpiError, SpiResult,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::codes;

/// The computation's type (its operations' prefix).
pub const TYPE: &str = "circuit_breaker";
/// The event an evaluation that ends open emits.
pub const OPENED: &str = "circuit_breaker_opened";

/// `circuit_breaker.evaluate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CircuitBreakerCompute;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    at_ms: u64,
    success: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    outcomes: Vec<Outcome>,
    now_ms: u64,
}

fn state_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

impl Compute for CircuitBreakerCompute {
    fn describe(&self) -> HandlerDescriptor {
        HandlerDescriptor {
            handler_type: TYPE.to_owned(),
            operations: vec![OperationDescriptor {
                operation: format!("{TYPE}.evaluate"),
                description: "breaker state from recorded call outcomes and the contract's thresholds".to_owned(),
                idempotent: true,
            }],
        }
    }

    fn compute(&self, input: ComputeInput<'_>) -> SpiResult<ComputeOutput> {
        let request: Request = serde_json::from_value(input.payload.clone())
            .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("`{}`: payload: {e}", input.operation)))?;
        let policy: CircuitBreakerPolicy = input.contract.resilience.circuit_breaker.unwrap_or_default();
        let mut breaker = CircuitBreaker::new(policy);
        let mut refused = 0u64;
        for outcome in &request.outcomes {
            let at = Tick::from_millis(outcome.at_ms);
            if breaker.try_acquire(at).is_err() {
                refused += 1;
                continue;
            }
            breaker.record((!outcome.success).then_some(ErrorCategory::Unavailable), at);
        }
        let state = breaker.state(Tick::from_millis(request.now_ms));
        let result = json!({
            "state": state_name(state),
            "evaluated": request.outcomes.len(),
            "refused": refused,
        });
        let events = if state == BreakerState::Open {
            vec![EmittedEvent { event_type: OPENED.to_owned(), payload: result.clone() }]
        } else {
            Vec::new()
        };
        Ok(ComputeOutput { result, events })
    }
}
