//! Event buses: the `onex_spi::EventBus` implementations the runtime host consumes from and
//! publishes to.
//!
//! Every bus gives the same at-least-once contract (partitioned topics, keyed order, consumer
//! groups sharing partitions, commits that only cover acknowledged messages), so the host code
//! is the same whichever bus the runtime config picks.

pub mod kafka;
pub mod memory;

pub use kafka::{KafkaEventBus, KafkaSettings};
pub use memory::{InMemoryEventBus, partition_for_key};
