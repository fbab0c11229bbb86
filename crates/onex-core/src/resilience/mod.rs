//! Resilience state machines (pure; `now` is a parameter): circuit breaker, retry, rate limit.

mod circuit_breaker;
mod rate_limit;
mod retry;

pub use circuit_breaker::{BreakerState, CircuitBreaker, CircuitOpen, counts_as_failure};
pub use rate_limit::TokenBucket;
pub use retry::{GiveUpReason, RetryBudget, RetryDecision, RetrySchedule};
