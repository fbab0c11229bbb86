//! Resilience policies a node contract declares around its handler calls: retries, circuit
//! breaker, rate limit, timeout and concurrency.

use super::decode::{Cx, Decode, decode_enum};
use super::fields::Fields;
use crate::error::codes;
use crate::yaml::Node;

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffStrategy {
    /// The same delay every time.
    Constant,
    /// `base * attempt`.
    Linear,
    /// `base * 2^attempt`.
    Exponential,
}

decode_enum!(BackoffStrategy, "backoff_strategy", {
    "constant" => BackoffStrategy::Constant,
    "fixed" => BackoffStrategy::Constant,
    "linear" => BackoffStrategy::Linear,
    "exponential" => BackoffStrategy::Exponential,
});

/// Retry policy of a node's handler calls.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// How delays grow.
    pub backoff_strategy: BackoffStrategy,
    /// First delay.
    pub base_delay_ms: u64,
    /// Cap on any delay.
    pub max_delay_ms: u64,
    /// 0.0..=1.0: how much of each delay is randomised.
    pub jitter_factor: f64,
    /// Error codes that may be retried in addition to the retryable categories; empty means
    /// "every retryable category".
    pub retry_on: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff_strategy: BackoffStrategy::Exponential,
            base_delay_ms: 100,
            max_delay_ms: 10_000,
            jitter_factor: 0.1,
            retry_on: Vec::new(),
        }
    }
}

impl Decode for RetryPolicy {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let policy = Self {
            max_retries: f.or(cx, "max_retries", d.max_retries),
            backoff_strategy: f.or(cx, "backoff_strategy", d.backoff_strategy),
            base_delay_ms: f.or(cx, "base_delay_ms", d.base_delay_ms),
            max_delay_ms: f.or(cx, "max_delay_ms", d.max_delay_ms),
            jitter_factor: f.or(cx, "jitter_factor", d.jitter_factor),
            retry_on: f.or(cx, "retry_on", d.retry_on),
        };
        let (jitter_pos, max_delay_pos) = (f.pos_of("jitter_factor"), f.pos_of("max_delay_ms"));
        f.finish(cx);
        if !(0.0..=1.0).contains(&policy.jitter_factor) {
            cx.error(
                codes::CONTRACT_INVALID_VALUE,
                jitter_pos,
                &super::decode::join(path, "jitter_factor"),
                "must be between 0.0 and 1.0",
            );
        }
        if policy.max_delay_ms < policy.base_delay_ms {
            cx.error(
                codes::CONTRACT_INVALID_VALUE,
                max_delay_pos,
                &super::decode::join(path, "max_delay_ms"),
                "must not be below base_delay_ms",
            );
        }
        Some(policy)
    }
}

/// Circuit-breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a trial call.
    pub recovery_timeout_ms: u64,
    /// Consecutive half-open successes that close it.
    pub success_threshold: u32,
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        Self { failure_threshold: 5, recovery_timeout_ms: 30_000, success_threshold: 1 }
    }
}

impl Decode for CircuitBreakerPolicy {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let policy = Self {
            failure_threshold: f.or(cx, "failure_threshold", d.failure_threshold),
            recovery_timeout_ms: f.or(cx, "recovery_timeout_ms", d.recovery_timeout_ms),
            success_threshold: f.or(cx, "success_threshold", d.success_threshold),
        };
        let positions = [f.pos_of("failure_threshold"), f.pos_of("success_threshold")];
        f.finish(cx);
        let thresholds =
            [("failure_threshold", policy.failure_threshold), ("success_threshold", policy.success_threshold)];
        for ((name, value), pos) in thresholds.into_iter().zip(positions) {
            if value == 0 {
                cx.error(codes::CONTRACT_INVALID_VALUE, pos, &super::decode::join(path, name), "must be at least 1");
            }
        }
        Some(policy)
    }
}

/// Token-bucket rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitPolicy {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed at once after idling.
    pub burst: u32,
}

impl Decode for RateLimitPolicy {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let per_second: Option<f64> = f.req(cx, "per_second");
        let burst = f.opt(cx, "burst");
        let per_second_pos = f.pos_of("per_second");
        f.finish(cx);
        let per_second = per_second?;
        if per_second <= 0.0 || !per_second.is_finite() {
            cx.error(
                codes::CONTRACT_INVALID_VALUE,
                per_second_pos,
                &super::decode::join(path, "per_second"),
                "must be a positive number",
            );
        }
        Some(Self { per_second, burst: burst.unwrap_or_else(|| per_second.ceil().max(1.0) as u32) })
    }
}

/// Resilience settings wrapped around every handler call of the node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resilience {
    /// Per-call timeout.
    pub timeout_ms: Option<u64>,
    /// Retries of retryable failures.
    pub retry_policy: Option<RetryPolicy>,
    /// Circuit breaker.
    pub circuit_breaker: Option<CircuitBreakerPolicy>,
    /// Rate limit.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Most concurrent calls.
    pub max_concurrency: Option<u32>,
}

impl Decode for Resilience {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let r = Self {
            timeout_ms: f.opt(cx, "timeout_ms"),
            retry_policy: f.opt(cx, "retry_policy"),
            circuit_breaker: f.opt(cx, "circuit_breaker"),
            rate_limit: f.opt(cx, "rate_limit"),
            max_concurrency: f.opt(cx, "max_concurrency"),
        };
        f.finish(cx);
        Some(r)
    }
}
