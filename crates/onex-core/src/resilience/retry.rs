//! Retry decisions: which failures may be retried, how long to wait, and a budget that stops
//! retries from multiplying load when a dependency is down.

use std::time::Duration;

use crate::contract::{BackoffStrategy, RetryPolicy};
use crate::error::ErrorCategory;
use crate::time::Tick;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Do not retry.
    GiveUp(GiveUpReason),
}

/// Why a failure is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The category is not retryable (or the code is not in `retry_on`).
    NotRetryable,
    /// `max_retries` retries were made already.
    Exhausted,
    /// The retry budget is spent.
    BudgetSpent,
}

/// Computes retry delays and decisions for one policy.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    policy: RetryPolicy,
}

impl RetrySchedule {
    /// A schedule for `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy }
    }

    /// The delay before retry number `retry` (1-based). `random` in `[0, 1)` comes from the
    /// caller; jitter spreads the delay over `[d * (1 - jitter), d]`.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let p = &self.policy;
        let base = p.base_delay_ms as f64;
        let raw = match p.backoff_strategy {
            BackoffStrategy::Constant => base,
            BackoffStrategy::Linear => base * f64::from(retry.max(1)),
            BackoffStrategy::Exponential => base * 2f64.powi(retry.saturating_sub(1).min(62) as i32),
        };
        let capped = raw.min(p.max_delay_ms as f64);
        let jittered = capped * (1.0 - p.jitter_factor * random.clamp(0.0, 1.0));
        Duration::from_micros((jittered * 1000.0) as u64)
    }

    /// Whether a failure with `code`/`category` after `retries_done` retries may be retried.
    pub fn decide(&self, retries_done: u32, code: &str, category: ErrorCategory, random: f64) -> RetryDecision {
        let listed = self.policy.retry_on.is_empty() || self.policy.retry_on.iter().any(|c| c == code);
        if !category.retryable() || !listed {
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        } else if retries_done >= self.policy.max_retries {
            RetryDecision::GiveUp(GiveUpReason::Exhausted)
        } else {
            RetryDecision::RetryAfter(self.delay(retries_done + 1, random))
        }
    }
}

/// Caps retries at a fraction of recent requests plus a floor per second.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: f64,
    max_balance: f64,
    balance: f64,
    last: Tick,
}

impl RetryBudget {
    /// Allows `ratio` retries per request (0.2 = 20 %) plus `min_per_second` always.
    pub fn new(ratio: f64, min_per_second: f64) -> Self {
        let max_balance = (min_per_second * 10.0).max(10.0);
        Self { ratio, min_per_second, max_balance, balance: min_per_second.max(1.0), last: Tick::ZERO }
    }

    fn refill(&mut self, now: Tick) {
        let elapsed = now.saturating_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.balance = (self.balance + elapsed * self.min_per_second).min(self.max_balance);
    }

    /// Records a first attempt (earns `ratio` of a retry).
    pub fn deposit(&mut self, now: Tick) {
        self.refill(now);
        self.balance = (self.balance + self.ratio).min(self.max_balance);
    }

    /// Takes one retry from the budget; false when spent.
    pub fn try_withdraw(&mut self, now: Tick) -> bool {
        self.refill(now);
        if self.balance >= 1.0 {
            self.balance -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(strategy: BackoffStrategy, jitter: f64) -> RetrySchedule {
        RetrySchedule::new(RetryPolicy {
            max_retries: 3,
            backoff_strategy: strategy,
            base_delay_ms: 100,
            max_delay_ms: 1000,
            jitter_factor: jitter,
            retry_on: Vec::new(),
        })
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let s = schedule(BackoffStrategy::Exponential, 0.0);
        let delays: Vec<u64> = (1..=6).map(|r| s.delay(r, 0.5).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(schedule(BackoffStrategy::Constant, 0.0).delay(5, 0.0), Duration::from_millis(100));
        assert_eq!(schedule(BackoffStrategy::Linear, 0.0).delay(3, 0.0), Duration::from_millis(300));
    }

    #[test]
    fn jitter_stays_within_its_factor() {
        let s = schedule(BackoffStrategy::Constant, 0.5);
        assert_eq!(s.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(s.delay(1, 1.0), Duration::from_millis(50));
    }

    #[test]
    fn only_retryable_categories_and_listed_codes_are_retried() {
        let s = schedule(BackoffStrategy::Constant, 0.0);
        assert!(matches!(s.decide(0, "X", ErrorCategory::Timeout, 0.0), RetryDecision::RetryAfter(_)));
        assert_eq!(s.decide(0, "X", ErrorCategory::Auth, 0.0), RetryDecision::GiveUp(GiveUpReason::NotRetryable));
        assert_eq!(s.decide(3, "X", ErrorCategory::Unavailable, 0.0), RetryDecision::GiveUp(GiveUpReason::Exhausted));
        let mut policy = s.policy.clone();
        policy.retry_on = vec!["ONEX_CORE_082_OPERATION_TIMEOUT".into()];
        let listed = RetrySchedule::new(policy);
        assert_eq!(
            listed.decide(0, "OTHER", ErrorCategory::Timeout, 0.0),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert!(matches!(
            listed.decide(0, "ONEX_CORE_082_OPERATION_TIMEOUT", ErrorCategory::Timeout, 0.0),
            RetryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn budget_limits_retries_to_a_fraction_of_requests() {
        let mut b = RetryBudget::new(0.2, 0.0);
        let now = Tick::ZERO;
        let mut granted = 0;
        for _ in 0..100 {
            b.deposit(now);
            if b.try_withdraw(now) {
                granted += 1;
            }
        }
        assert!((20..=21).contains(&granted), "{granted}");
    }
}
