//! What the Kafka bus counts for `/metrics`: rebalances, failed publishes, consumer errors and the
//! lag librdkafka reports per consumed partition.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use onex_spi::{BusFigures, PartitionLag};

use super::offsets::TopicPartition;

/// The bus's counters, shared by its producer and members.
#[derive(Debug, Default)]
pub(super) struct KafkaMetrics {
    rebalances: AtomicU64,
    produce_errors: AtomicU64,
    consume_errors: AtomicU64,
    /// (group, topic, partition) -> lag.
    lag: Mutex<BTreeMap<(String, String, u32), u64>>,
}

impl KafkaMetrics {
    pub(super) fn rebalanced(&self) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn produce_error(&self) {
        self.produce_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn consume_error(&self) {
        self.consume_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_lag(&self, group: &str, topic: &str, partition: u32, lag: u64) {
        let mut map = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert((group.to_owned(), topic.to_owned(), partition), lag);
    }

    /// A partition the group's member here no longer consumes has no lag of its own to report.
    pub(super) fn forget_lag(&self, group: &str, (topic, partition): &TopicPartition) {
        let Ok(partition) = u32::try_from(*partition) else { return };
        let mut map = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(group.to_owned(), topic.clone(), partition));
    }

    pub(super) fn figures(&self) -> BusFigures {
        let lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        BusFigures {
            rebalances: self.rebalances.load(Ordering::Relaxed),
            produce_errors: self.produce_errors.load(Ordering::Relaxed),
            consume_errors: self.consume_errors.load(Ordering::Relaxed),
            lag: lag
                .iter()
                .map(|((group, topic, partition), lag)| PartitionLag {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    lag: *lag,
                })
                .collect(),
        }
    }
}
