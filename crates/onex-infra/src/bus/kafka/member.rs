//! One consumer group member: an rdkafka consumer whose offsets are stored by hand from its
//! [`OffsetBook`], and the stream of its messages.
//!
//! librdkafka serves rebalances inside the call that polls for the next message, and the host's
//! lane polls only once the message in hand is settled. So when partitions are revoked, the
//! message in hand is already acknowledged, and the revocation commits each lost partition's
//! acknowledged prefix before the partition is released.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use onex_spi::{InboundMessage, SpiResult};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use super::errors::to_spi;
use super::metrics::KafkaMetrics;
use super::offsets::{OffsetBook, TopicPartition};

/// What a member's consumer calls back into: its offsets and the bus's metrics.
pub(super) struct MemberContext {
    pub(super) group: String,
    /// Which of its bus's members this is (1, 2, …), naming it in the log.
    number: usize,
    book: Mutex<OffsetBook>,
    metrics: Arc<KafkaMetrics>,
}

impl MemberContext {
    pub(super) fn new(group: &str, number: usize, metrics: Arc<KafkaMetrics>) -> Self {
        Self { group: group.to_owned(), number, book: Mutex::new(OffsetBook::default()), metrics }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, OffsetBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for MemberContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 for partitions this member does not consume.
                if let (Ok(partition), Ok(lag)) = (u32::try_from(*partition), u64::try_from(p.consumer_lag)) {
                    self.metrics.record_lag(&self.group, topic, partition, lag);
                }
            }
        }
    }

    /// librdkafka's own log lines, in the host's log. Its debug lines appear only when the
    /// `debug` property asks for them (`bus.kafka: {debug: cgrp}`), so they are logged at info.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        let group = &self.group;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => tracing::error!(group, facility, "librdkafka: {message}"),
            L::Warning => tracing::warn!(group, facility, "librdkafka: {message}"),
            L::Notice | L::Info | L::Debug => tracing::info!(group, facility, "librdkafka: {message}"),
        }
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.metrics.rebalanced();
                let (group, member) = (&self.group, self.number);
                tracing::info!(group, member, partitions = %listed(partitions), "kafka bus: partitions assigned");
                let mut book = self.book();
                for element in partitions.elements() {
                    book.assign((element.topic().to_owned(), element.partition()));
                }
            }
            Rebalance::Revoke(partitions) => {
                self.metrics.rebalanced();
                let (group, member) = (&self.group, self.number);
                tracing::info!(group, member, partitions = %listed(partitions), "kafka bus: partitions revoked");
                let mut positions = TopicPartitionList::new();
                {
                    let mut book = self.book();
                    for element in partitions.elements() {
                        let partition = (element.topic().to_owned(), element.partition());
                        if let Some(position) = book.revoke(&partition) {
                            // Offsets of partitions the broker knows are valid here.
                            let _ = positions.add_partition_offset(&partition.0, partition.1, Offset::Offset(position));
                        }
                        self.metrics.forget_lag(&self.group, &partition);
                    }
                }
                if positions.count() > 0
                    && let Err(e) = consumer.commit(&positions, CommitMode::Sync)
                {
                    tracing::warn!(group = %self.group, error = %e,
                        "kafka bus: committing revoked partitions failed; their unacknowledged tail is delivered again");
                }
            }
            Rebalance::Error(e) => tracing::warn!(group = %self.group, error = %e, "kafka bus: rebalance error"),
        }
    }
}

/// `topic:partition` for each partition of a rebalance, comma-separated (for the log).
fn listed(partitions: &TopicPartitionList) -> String {
    let each = partitions.elements().into_iter().map(|e| format!("{}:{}", e.topic(), e.partition()));
    each.collect::<Vec<_>>().join(",")
}

/// A group member: its consumer, shared by its stream and the bus (for acknowledgements).
pub(super) struct Member {
    pub(super) consumer: StreamConsumer<MemberContext>,
}

impl Member {
    fn context(&self) -> &MemberContext {
        self.consumer.context()
    }

    /// The group this member belongs to.
    pub(super) fn group(&self) -> &str {
        &self.context().group
    }

    /// Whether this member holds `partition` now.
    pub(super) fn holds(&self, partition: &TopicPartition) -> bool {
        self.context().book().holds(partition)
    }

    /// Records `offset` of `partition` as acknowledged and stores the partition's new position
    /// for the next commit. A partition the member no longer holds is left to its next owner.
    pub(super) fn acknowledge(&self, partition: &TopicPartition, offset: i64) -> SpiResult<()> {
        let Some(position) = self.context().book().acknowledged(partition, offset) else { return Ok(()) };
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&partition.0, partition.1, Offset::Offset(position))
            .map_err(|e| to_spi(e, "storing an offset"))?;
        self.consumer
            .store_offsets(&list)
            .map_err(|e| to_spi(e, &format!("storing {}/{}@{position}", partition.0, partition.1)))
    }

    /// Commits every held partition's acknowledged prefix (leaving the group, closing); `Sync`
    /// waits for the brokers' answer.
    pub(super) fn commit(&self, mode: CommitMode) -> SpiResult<()> {
        let positions = self.context().book().positions();
        let mut list = TopicPartitionList::new();
        for ((topic, partition), position) in positions {
            list.add_partition_offset(&topic, partition, Offset::Offset(position))
                .map_err(|e| to_spi(e, "committing offsets"))?;
        }
        if list.count() == 0 {
            return Ok(());
        }
        self.consumer.commit(&list, mode).map_err(|e| to_spi(e, "committing offsets"))
    }

    /// The next message, recorded as handed out. Errors librdkafka recovers from itself (a
    /// broker down, a leader moving) are logged and counted, and polling goes on.
    async fn next(&self) -> SpiResult<InboundMessage> {
        loop {
            match self.consumer.recv().await {
                Ok(message) => {
                    let inbound = inbound(&message);
                    let partition = (message.topic().to_owned(), message.partition());
                    self.context().book().delivered(&partition, message.offset());
                    return Ok(inbound);
                }
                Err(e) if is_fatal(&e) => return Err(to_spi(e, "consuming")),
                Err(e) => {
                    self.context().metrics.consume_error();
                    tracing::warn!(group = %self.group(), error = %e, "kafka bus: consumer error; librdkafka retries");
                }
            }
        }
    }
}

/// Whether the consumer cannot go on after `error` (librdkafka's fatal errors).
fn is_fatal(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::Fatal)
}

/// `message` copied out of librdkafka's buffer.
fn inbound(message: &BorrowedMessage<'_>) -> InboundMessage {
    let mut headers = onex_spi::HeaderMap::new();
    for header in message.headers().iter().flat_map(|headers| headers.iter()) {
        headers.insert_read(header.key, &String::from_utf8_lossy(header.value.unwrap_or_default()));
    }
    InboundMessage {
        topic: message.topic().into(),
        partition: u32::try_from(message.partition()).unwrap_or_default(),
        offset: u64::try_from(message.offset()).unwrap_or_default(),
        key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: message.payload().map(onex_spi::Bytes::copy_from_slice).unwrap_or_default(),
        headers: std::sync::Arc::new(headers),
    }
}

type Next = Pin<Box<dyn std::future::Future<Output = SpiResult<InboundMessage>> + Send>>;

/// The stream of one member's messages; dropping it commits what was acknowledged and leaves
/// the group.
pub(super) struct MemberStream {
    member: Arc<Member>,
    next: Option<Next>,
}

impl MemberStream {
    pub(super) fn new(member: Arc<Member>) -> Self {
        Self { member, next: None }
    }
}

impl Stream for MemberStream {
    type Item = SpiResult<InboundMessage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let member = Arc::clone(&self.member);
        let next = self.next.get_or_insert_with(|| Box::pin(async move { member.next().await }));
        match next.as_mut().poll(cx) {
            Poll::Ready(item) => {
                self.next = None;
                Poll::Ready(Some(item))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for MemberStream {
    fn drop(&mut self) {
        // A future in flight holds no message yet: nothing of it is lost.
        self.next = None;
        // Not waited for (a drop must not block on a broker that is down): closing the
        // consumer, when its last holder lets go, waits for it within librdkafka's timeouts.
        if let Err(e) = self.member.commit(CommitMode::Async) {
            tracing::warn!(group = %self.member.group(), error = %e, "kafka bus: commit on leaving the group failed");
        }
        self.member.consumer.unsubscribe();
    }
}

impl std::fmt::Debug for MemberStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberStream").field("group", &self.member.group()).finish_non_exhaustive()
    }
}
