//! Persistence of webhook deliveries: every attempt (status or error, when) and the final status.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::SpiResult;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Attempts are being made (or the deliverer stopped before it finished).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up: a non-retryable answer or every attempt used.
    Failed,
}

impl DeliveryStatus {
    /// The name stored and shown (`pending`, `delivered`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The delivery it belongs to.
    pub delivery_id: String,
    /// 1-based, counting every attempt ever made for this delivery id.
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong, when it did (no secrets: never the signature or the secret).
    pub error: Option<String>,
    /// When the attempt ended.
    pub at: SystemTime,
}

/// A delivery and its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The id sent as `X-Onex-Delivery`.
    pub delivery_id: String,
    /// Where it is delivered (without query or credentials).
    pub url: String,
    /// The event name, if any.
    pub event: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Every attempt, in order.
    pub attempts: Vec<DeliveryAttempt>,
}

/// Where deliveries are recorded.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Starts (or restarts, for a delivery id seen before) a delivery as `pending`; returns
    /// how many attempts are already recorded for it, so numbering continues.
    async fn begin(&self, delivery_id: &str, url: &str, event: Option<&str>) -> SpiResult<u32>;

    /// Records one attempt.
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> SpiResult<()>;

    /// Records the final status.
    async fn finish(&self, delivery_id: &str, status: DeliveryStatus) -> SpiResult<()>;

    /// The delivery `delivery_id` with its attempts.
    async fn delivery(&self, delivery_id: &str) -> SpiResult<Option<DeliveryRecord>>;
}
