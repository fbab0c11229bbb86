//! Resilience state machines (pure; `now` is a parameter): circuit breaker, retry, rate limit.

mod circuit_breaker;
mod rate_limit;
mod retry;

pub use circuit_breaker::{counts_as_failure, BreakerState, CircuitBreaker, CircuitOpen};
pub use rate_limit::TokenBucket;
pub use retry::{GiveUpReason, RetryBudget, RetryDecision, RetrySchedule};
