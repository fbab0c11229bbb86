//! Delivery settings of the runtime config: `delivery:` (how often the bus consumer tries an
//! envelope whose failure may pass before it dead-letters it, how long it waits between tries,
//! how long a host's claim on a workflow run or an outbox row lasts) and `retention:` (how long
//! finished records are kept).

use super::decode::{Cx, Decode};
use super::fields::Fields;
use super::resilience::{BackoffStrategy, RetryPolicy};
use super::rules::{Broken, Rules, finish_checked};
use crate::error::codes;
use crate::resilience::RetrySchedule;
use crate::yaml::Node;

/// How the consumer retries in place (the message stays where it is, so its partition's order
/// holds) and when it gives up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Tries of one message, the first included; a retryable failure on the last one is
    /// dead-lettered with the attempts in `onex-attempts`.
    pub max_attempts: u32,
    /// Wait before the second try; doubled for each later one.
    pub backoff_ms: u64,
    /// Cap on any wait.
    pub max_backoff_ms: u64,
    /// 0.0..=1.0: how much of each wait is randomised, so lanes retrying together spread out.
    pub jitter_factor: f64,
    /// How long a host's lease on a workflow run lasts; it renews it every third of that while
    /// it drives the run, and another host takes over a run whose lease expired.
    pub run_lease_ms: u64,
    /// How long an outbox relay's claim on a row lasts before another relay may publish it.
    pub outbox_claim_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_ms: 100,
            max_backoff_ms: 5_000,
            jitter_factor: 0.2,
            run_lease_ms: 10_000,
            outbox_claim_ms: 30_000,
        }
    }
}

impl DeliveryConfig {
    /// The schedule of retries after the first attempt (exponential, capped, jittered; only
    /// retryable categories).
    pub fn retry_schedule(&self) -> RetrySchedule {
        RetrySchedule::new(RetryPolicy {
            max_retries: self.max_attempts.saturating_sub(1),
            backoff_strategy: BackoffStrategy::Exponential,
            base_delay_ms: self.backoff_ms,
            max_delay_ms: self.max_backoff_ms,
            jitter_factor: self.jitter_factor,
            retry_on: Vec::new(),
        })
    }
}

impl Decode for DeliveryConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let config = Self {
            max_attempts: f.or(cx, "max_attempts", d.max_attempts),
            backoff_ms: f.or(cx, "backoff_ms", d.backoff_ms),
            max_backoff_ms: f.or(cx, "max_backoff_ms", d.max_backoff_ms),
            jitter_factor: f.or(cx, "jitter_factor", d.jitter_factor),
            run_lease_ms: f.or(cx, "run_lease_ms", d.run_lease_ms),
            outbox_claim_ms: f.or(cx, "outbox_claim_ms", d.outbox_claim_ms),
        };
        finish_checked(cx, f, &config);
        Some(config)
    }
}

impl Rules for DeliveryConfig {
    fn broken(&self) -> Vec<Broken> {
        let rules = [
            (self.max_attempts == 0, "max_attempts", "must be at least 1 (the first attempt)"),
            (self.max_backoff_ms < self.backoff_ms, "max_backoff_ms", "must not be below backoff_ms"),
            (!(0.0..=1.0).contains(&self.jitter_factor), "jitter_factor", "must be between 0.0 and 1.0"),
            (self.run_lease_ms < MIN_LEASE_MS, "run_lease_ms", "must be at least 100 ms"),
            (self.outbox_claim_ms < MIN_LEASE_MS, "outbox_claim_ms", "must be at least 100 ms"),
        ];
        let broken = rules.into_iter().filter(|(bad, ..)| *bad);
        broken.map(|(_, key, message)| Broken::new(key, codes::CONTRACT_INVALID_VALUE, message)).collect()
    }
}

/// The shortest lease accepted: renewals every third of it must fit between database trips.
const MIN_LEASE_MS: u64 = 100;

/// How long finished records are kept before the sweeper removes them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Idempotency records (the reply of every processed envelope). Keep them longer than the
    /// bus may deliver a message again (Kafka: the topic's retention): an envelope delivered
    /// again after its record is gone is processed again.
    pub processed_ms: u64,
    /// Outbox rows after they were published.
    pub published_outbox_ms: u64,
    /// Finished workflow runs and their journals.
    pub finished_runs_ms: u64,
    /// How often the sweeper looks.
    pub sweep_interval_ms: u64,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            processed_ms: 7 * DAY_MS,
            published_outbox_ms: DAY_MS,
            finished_runs_ms: 7 * DAY_MS,
            sweep_interval_ms: 60_000,
        }
    }
}

impl Decode for RetentionConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let config = Self {
            processed_ms: f.or(cx, "processed_ms", d.processed_ms),
            published_outbox_ms: f.or(cx, "published_outbox_ms", d.published_outbox_ms),
            finished_runs_ms: f.or(cx, "finished_runs_ms", d.finished_runs_ms),
            sweep_interval_ms: f.or(cx, "sweep_interval_ms", d.sweep_interval_ms),
        };
        finish_checked(cx, f, &config);
        Some(config)
    }
}

impl Rules for RetentionConfig {
    fn broken(&self) -> Vec<Broken> {
        let zero = self.sweep_interval_ms == 0;
        zero.then(|| Broken::new("sweep_interval_ms", codes::CONTRACT_INVALID_VALUE, "must be above 0"))
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::error::ErrorCategory;
    use crate::resilience::{GiveUpReason, RetryDecision};

    use super::*;

    #[test]
    fn the_schedule_retries_until_the_last_attempt_then_gives_up() {
        let config = DeliveryConfig {
            max_attempts: 3,
            backoff_ms: 100,
            max_backoff_ms: 150,
            jitter_factor: 0.0,
            ..Default::default()
        };
        let schedule = config.retry_schedule();
        let decide = |done| schedule.decide(done, "X", ErrorCategory::Unavailable, 0.5);
        assert_eq!(decide(0), RetryDecision::RetryAfter(Duration::from_millis(100)));
        assert_eq!(decide(1), RetryDecision::RetryAfter(Duration::from_millis(150)), "capped");
        assert_eq!(decide(2), RetryDecision::GiveUp(GiveUpReason::Exhausted));
        let refused = schedule.decide(0, "X", ErrorCategory::Validation, 0.5);
        assert_eq!(refused, RetryDecision::GiveUp(GiveUpReason::NotRetryable));
    }

    #[test]
    fn bad_settings_are_named() {
        let yaml = b"delivery:\n  max_attempts: 0\n  backoff_ms: 10\n  max_backoff_ms: 5\n  jitter_factor: 2\n  run_lease_ms: 5\nretention:\n  sweep_interval_ms: 0\n";
        let errors = crate::contract::load_runtime_config("rt.yaml", yaml).unwrap_err().diagnostics;
        let fields: Vec<&str> = errors.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "delivery.max_attempts",
                "delivery.max_backoff_ms",
                "delivery.jitter_factor",
                "delivery.run_lease_ms",
                "retention.sweep_interval_ms"
            ]
        );
        assert_eq!(errors[0].pos.line, 2);
    }
}
