//! The event bus: partitioned topics, keyed messages, consumer groups, at-least-once delivery.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
pub use bytes::Bytes;
use futures_core::Stream;
pub use onex_core::envelope::HeaderMap;

use crate::error::{SpiError, SpiResult};
use crate::handler::Health;

/// A message's headers, shared: a message passes through a bus, retries and redeliveries
/// without its headers being copied (change them with `Arc::make_mut`).
pub type Headers = Arc<HeaderMap>;

/// A message to publish. Messages with one key go to one partition and keep their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Destination topic, shared: the host names the same few topics in every message.
    pub topic: Arc<str>,
    /// Partitioning key (the entity key); `None` spreads messages over partitions.
    pub key: Option<String>,
    /// Serialized envelope (JSON), shared immutable bytes: cloning a message does not copy it.
    pub payload: Bytes,
    /// Headers mirroring the envelope ids (`onex-envelope-id`, `onex-correlation-id`, ...).
    pub headers: Headers,
}

/// Where a published message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// A consumed message. Its payload is raw bytes: the host parses it and dead-letters what
/// does not parse, so nothing is lost at the bus boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Source topic, shared with the bus.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
    /// Key it was published with.
    pub key: Option<String>,
    /// Raw payload, shared with the bus (no copy per delivery).
    pub payload: Bytes,
    /// Headers, shared with the bus.
    pub headers: Headers,
}

/// What a bus reports of itself for `/metrics`, beyond what the host counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusFigures {
    /// Consumer group rebalances this process's members took part in.
    pub rebalances: u64,
    /// Publishes that failed (after the bus's own retries).
    pub produce_errors: u64,
    /// Errors the consumers met and recovered from (brokers down, leaders moving).
    pub consume_errors: u64,
    /// Messages behind the partition's end, per consumed partition, as last reported.
    pub lag: Vec<PartitionLag>,
}

/// How far a consumer group is behind on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Messages between the group's position and the partition's end.
    pub lag: u64,
}

/// A stream of consumed messages.
pub type MessageStream = Pin<Box<dyn Stream<Item = SpiResult<InboundMessage>> + Send>>;

/// An event bus (in-memory or Kafka); the host code is the same for both.
///
/// Delivery is at-least-once: a consumer group's committed position on a partition moves past a
/// message only when it (and every earlier message of that partition) has been acknowledged.
/// After a restart or rebalance, unacknowledged messages are delivered again.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one message; waits while the bus applies backpressure.
    async fn publish(&self, message: OutboundMessage) -> SpiResult<Delivery>;

    /// Publishes `messages` in order; one result per message, in the same order. A bus may
    /// have them all in flight at once (Kafka enqueues them in order, so one key's messages
    /// keep their order, and awaits every delivery report together); the default publishes
    /// one at a time and gives the messages after a failure that failure's error, unsent.
    async fn publish_all(&self, messages: Vec<OutboundMessage>) -> Vec<SpiResult<Delivery>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut failed: Option<(String, onex_core::error::ErrorCategory, String)> = None;
        for message in messages {
            let result = match &failed {
                Some((code, category, text)) => {
                    Err(SpiError::custom(code.clone(), *category, format!("not sent after an earlier failure: {text}")))
                }
                None => self.publish(message).await,
            };
            if let (Err(e), None) = (&result, &failed) {
                failed = Some((e.code().to_owned(), e.category(), e.message().to_owned()));
            }
            results.push(result);
        }
        results
    }

    /// Joins consumer group `group` on `topics`. Messages of one partition arrive in order.
    async fn subscribe(&self, group: &str, topics: &[String]) -> SpiResult<MessageStream>;

    /// Marks a message processed for `group`; its offset may then be committed.
    async fn acknowledge(&self, group: &str, message: &InboundMessage) -> SpiResult<()>;

    /// Whether a published message outlives this process (Kafka: yes; the in-memory bus: no).
    /// On a bus that does not, the host counts an outbox message as published only once it has
    /// consumed it itself, so a crash re-publishes it at the next start.
    fn is_durable(&self) -> bool;

    /// Whether the bus is connected.
    async fn health(&self) -> Health;

    /// Figures for `/metrics` (rebalances, produce errors, lag); none unless the bus keeps any.
    fn figures(&self) -> BusFigures {
        BusFigures::default()
    }

    /// Commits what is acknowledged and disconnects.
    async fn close(&self) -> Result<(), SpiError>;
}
