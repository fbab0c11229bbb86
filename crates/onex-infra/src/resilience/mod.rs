//! Resilience around every handler call, as stages built from the node's contract.
//! The decisions (breaker, retry schedule and budget, token bucket) are core's pure state
//! machines; this module only supplies time, randomness and waiting.

mod clock;
mod layers;
mod stack;

pub use clock::{MonotonicClock, random_unit};
pub use layers::{CallFuture, ResilienceStats, Stage};
pub use stack::{NodeService, RETRY_BUDGET_RATIO, RETRY_FLOOR_PER_SECOND, ResilienceStack};
