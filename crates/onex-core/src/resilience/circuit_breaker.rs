//! Circuit breaker: closed -> open after N consecutive failures, half-open after the recovery
//! timeout (one trial call at a time), closed again after M consecutive trial successes.

use std::time::Duration;

use crate::contract::CircuitBreakerPolicy;
use crate::error::ErrorCategory;
use crate::time::Tick;

/// The externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused.
    Open,
    /// Trial calls probe whether the dependency recovered.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value exported as a metric.
    pub fn as_gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Tick },
    HalfOpen { successes: u32, trial_in_flight: bool },
}

/// A refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open; next trial in {retry_after:?}")]
pub struct CircuitOpen {
    /// Time until a trial call will be allowed (zero when a trial is already running).
    pub retry_after: Duration,
}

/// Whether a failure of this category says the dependency is unhealthy. Validation,
/// not-found, conflict and auth failures prove the dependency answered.
pub fn counts_as_failure(category: ErrorCategory) -> bool {
    matches!(category, ErrorCategory::Timeout | ErrorCategory::Unavailable | ErrorCategory::Internal)
}

/// One breaker (per handler).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: CircuitBreakerPolicy,
    inner: Inner,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(policy: CircuitBreakerPolicy) -> Self {
        Self { policy, inner: Inner::Closed { failures: 0 } }
    }

    /// The state at `now` (an open breaker whose timeout passed reports half-open).
    pub fn state(&self, now: Tick) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`.
    pub fn try_acquire(&mut self, now: Tick) -> Result<(), CircuitOpen> {
        match self.inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until } if now < until => Err(CircuitOpen { retry_after: until.saturating_since(now) }),
            Inner::Open { .. } => {
                self.inner = Inner::HalfOpen { successes: 0, trial_in_flight: true };
                Ok(())
            }
            Inner::HalfOpen { trial_in_flight: true, .. } => Err(CircuitOpen { retry_after: Duration::ZERO }),
            Inner::HalfOpen { successes, trial_in_flight: false } => {
                self.inner = Inner::HalfOpen { successes, trial_in_flight: true };
                Ok(())
            }
        }
    }

    /// Records the result of an acquired call: `None` for success, else the failure's category.
    pub fn record(&mut self, failure: Option<ErrorCategory>, now: Tick) {
        let failed = failure.is_some_and(counts_as_failure);
        let open = Inner::Open { until: now + Duration::from_millis(self.policy.recovery_timeout_ms) };
        self.inner = match (self.inner, failed) {
            (Inner::Closed { .. }, false) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, true) if failures + 1 >= self.policy.failure_threshold => open,
            (Inner::Closed { failures }, true) => Inner::Closed { failures: failures + 1 },
            (Inner::HalfOpen { .. }, true) => open,
            (Inner::HalfOpen { successes, .. }, false) if successes + 1 >= self.policy.success_threshold => {
                Inner::Closed { failures: 0 }
            }
            (Inner::HalfOpen { successes, .. }, false) => {
                Inner::HalfOpen { successes: successes + 1, trial_in_flight: false }
            }
            (state @ Inner::Open { .. }, _) => state,
        };
    }

    /// Gives back an acquired call that ended without an outcome (cancelled: its client went
    /// away, a step timed out). It says nothing about the dependency, so it counts neither way;
    /// a half-open breaker's trial slot is freed for the next call.
    pub fn release(&mut self) {
        if let Inner::HalfOpen { successes, trial_in_flight: true } = self.inner {
            self.inner = Inner::HalfOpen { successes, trial_in_flight: false };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(CircuitBreakerPolicy {
            failure_threshold: 3,
            recovery_timeout_ms: 1000,
            success_threshold: 2,
        })
    }

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let mut b = breaker();
        let t = Tick::from_millis;
        for i in 0..3 {
            b.try_acquire(t(i)).unwrap();
            b.record(Some(ErrorCategory::Unavailable), t(i));
        }
        assert_eq!(b.state(t(3)), BreakerState::Open);
        assert_eq!(b.try_acquire(t(500)).unwrap_err().retry_after, Duration::from_millis(502));
        assert_eq!(b.state(t(1002)), BreakerState::HalfOpen);
        b.try_acquire(t(1002)).unwrap();
        assert!(b.try_acquire(t(1002)).is_err(), "one trial at a time");
        b.record(None, t(1003));
        b.try_acquire(t(1004)).unwrap();
        b.record(None, t(1005));
        assert_eq!(b.state(t(1005)), BreakerState::Closed);
    }

    #[test]
    fn half_open_failure_reopens_and_validation_errors_do_not_count() {
        let mut b = breaker();
        for _ in 0..10 {
            b.record(Some(ErrorCategory::Validation), Tick::ZERO);
        }
        assert_eq!(b.state(Tick::ZERO), BreakerState::Closed);
        for _ in 0..3 {
            b.record(Some(ErrorCategory::Timeout), Tick::ZERO);
        }
        b.try_acquire(Tick::from_millis(1000)).unwrap();
        b.record(Some(ErrorCategory::Timeout), Tick::from_millis(1000));
        assert_eq!(b.state(Tick::from_millis(1999)), BreakerState::Open);
    }

    #[test]
    fn a_released_call_counts_neither_way_and_frees_the_trial_slot() {
        let mut b = breaker();
        for _ in 0..2 {
            b.try_acquire(Tick::ZERO).unwrap();
            b.record(Some(ErrorCategory::Timeout), Tick::ZERO);
        }
        for _ in 0..10 {
            b.try_acquire(Tick::ZERO).unwrap();
            b.release();
        }
        assert_eq!(b.state(Tick::ZERO), BreakerState::Closed, "cancelled calls are not failures");
        b.try_acquire(Tick::ZERO).unwrap();
        b.record(Some(ErrorCategory::Timeout), Tick::ZERO);
        assert_eq!(b.state(Tick::ZERO), BreakerState::Open, "the earlier failures still count");

        let later = Tick::from_millis(1000);
        b.try_acquire(later).unwrap();
        assert!(b.try_acquire(later).is_err(), "the trial is in flight");
        b.release();
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        b.try_acquire(later).expect("a released trial slot is free again");
        b.record(None, later);
        b.try_acquire(later).unwrap();
        b.record(None, later);
        assert_eq!(b.state(later), BreakerState::Closed, "a released trial counted no success");
    }

    #[test]
    fn success_resets_the_failure_count() {
        let mut b = breaker();
        for _ in 0..5 {
            b.record(Some(ErrorCategory::Internal), Tick::ZERO);
            b.record(Some(ErrorCategory::Internal), Tick::ZERO);
            b.record(None, Tick::ZERO);
        }
        assert_eq!(b.state(Tick::ZERO), BreakerState::Closed);
    }
}
