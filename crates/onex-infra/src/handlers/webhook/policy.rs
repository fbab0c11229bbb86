//! The webhook delivery policy: which attempt outcomes are retried (5xx, 429, connection
//! failures and attempt timeouts; nothing else), how long to wait (exponential backoff with
//! jitter from core's `RetrySchedule`, never less than the receiver's `Retry-After`).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use hyper::header::{self, HeaderMap};
use onex_core::contract::{BackoffStrategy, RetryPolicy};
use onex_core::resilience::RetrySchedule;
use onex_spi::SpiError;

use crate::error::codes;

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A 2xx status.
    Delivered(u16),
    /// A failure worth another attempt; `retry_after` is the receiver's `Retry-After`.
    Retry { status: Option<u16>, error: SpiError, retry_after: Option<Duration> },
    /// A failure another attempt would repeat.
    Fail { status: Option<u16>, error: SpiError },
}

impl Outcome {
    /// The receiver's status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered(status) => Some(*status),
            Self::Retry { status, .. } | Self::Fail { status, .. } => *status,
        }
    }

    /// The error, if it failed.
    pub fn error(&self) -> Option<&SpiError> {
        match self {
            Self::Delivered(_) => None,
            Self::Retry { error, .. } | Self::Fail { error, .. } => Some(error),
        }
    }
}

/// Whether a status is retried: 5xx and 429.
pub(crate) fn status_is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Whether a failure without a status is retried: the connection failed or the attempt timed out.
pub(crate) fn error_is_retryable(error: &SpiError) -> bool {
    error.code() == codes::HTTP_CONNECTION_FAILED.as_str() || error.code() == codes::HTTP_TIMEOUT.as_str()
}

/// The receiver's `Retry-After` (delay seconds or an HTTP date) as a wait from `now`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is RFC 2822 with the zone `GMT`.
    let when: SystemTime = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc).into();
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Attempts and delays of one handler.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryPolicy {
    /// Attempts per delivery (at least 1).
    pub max_attempts: u32,
    /// The longest wait between attempts; a `Retry-After` beyond it ends the delivery.
    pub max_delay: Duration,
    schedule: RetrySchedule,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wait, then attempt again.
    Wait(Duration),
    /// Every attempt is used.
    Exhausted,
    /// The receiver asked for a wait longer than `max_delay`.
    RetryAfterTooLong(Duration),
}

impl DeliveryPolicy {
    /// `max_attempts` attempts, exponential delays from `base_delay_ms` capped at
    /// `max_delay_ms`, each spread over `[d * (1 - jitter_factor), d]`.
    pub fn new(max_attempts: u32, base_delay_ms: u64, max_delay_ms: u64, jitter_factor: f64) -> Self {
        let policy = RetryPolicy {
            max_retries: max_attempts.saturating_sub(1),
            backoff_strategy: BackoffStrategy::Exponential,
            base_delay_ms,
            max_delay_ms,
            jitter_factor: jitter_factor.clamp(0.0, 1.0),
            retry_on: Vec::new(),
        };
        Self {
            max_attempts: max_attempts.max(1),
            max_delay: Duration::from_millis(max_delay_ms),
            schedule: RetrySchedule::new(policy),
        }
    }

    /// After failed attempt `attempt` (1-based, this call's), with the receiver's
    /// `retry_after` and `random` in `[0, 1)` for jitter.
    pub fn next(&self, attempt: u32, retry_after: Option<Duration>, random: f64) -> Next {
        if attempt >= self.max_attempts {
            return Next::Exhausted;
        }
        match retry_after {
            Some(asked) if asked > self.max_delay => Next::RetryAfterTooLong(asked),
            asked => Next::Wait(self.schedule.delay(attempt, random).max(asked.unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(&headers("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:49 GMT"), now), Some(Duration::from_secs(12)));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:00 GMT"), now), Some(Duration::ZERO), "past");
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn delays_grow_exponentially_with_jitter_and_honour_retry_after() {
        let policy = DeliveryPolicy::new(4, 100, 1_000, 0.5);
        assert_eq!(policy.next(1, None, 0.0), Next::Wait(Duration::from_millis(100)));
        assert_eq!(policy.next(2, None, 0.0), Next::Wait(Duration::from_millis(200)));
        assert_eq!(policy.next(2, None, 0.999_999), Next::Wait(Duration::from_micros(100_000)));
        assert_eq!(policy.next(3, Some(Duration::from_millis(900)), 0.0), Next::Wait(Duration::from_millis(900)));
        assert_eq!(policy.next(4, None, 0.0), Next::Exhausted);
        assert_eq!(policy.next(1, Some(Duration::from_secs(5)), 0.0), Next::RetryAfterTooLong(Duration::from_secs(5)));
    }

    #[test]
    fn only_5xx_429_and_connection_failures_are_retried() {
        let retryable = |s: u16| status_is_retryable(StatusCode::from_u16(s).unwrap());
        assert!(retryable(500) && retryable(503) && retryable(429));
        assert!(!retryable(400) && !retryable(404) && !retryable(409) && !retryable(301));
        assert!(error_is_retryable(&SpiError::new(codes::HTTP_CONNECTION_FAILED, "refused")));
        assert!(error_is_retryable(&SpiError::new(codes::HTTP_TIMEOUT, "slow")));
        assert!(!error_is_retryable(&SpiError::new(codes::HTTP_UNAUTHORIZED, "untrusted certificate")));
        assert!(!error_is_retryable(&SpiError::new(codes::HTTP_REQUEST_INVALID, "too large")));
    }
}
