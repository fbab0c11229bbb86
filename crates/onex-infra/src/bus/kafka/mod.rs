//! The Kafka event bus, on rdkafka (librdkafka built from its bundled sources).
//!
//! - **Publishing**: one idempotent producer (`acks=all`); a publish resolves on its delivery
//!   report, so a message the host counts as published is on the brokers. The key is the
//!   entity key, and the partitioner is the one the Java client and aiokafka use.
//! - **Consuming**: each `subscribe` is a group member of its own ([`member`]), with cooperative
//!   rebalancing. A member's offsets are stored by hand: the position stored for a partition is
//!   the end of its contiguous acknowledged prefix ([`offsets`]). librdkafka commits stored
//!   positions on a timer; a revocation commits the lost partitions' prefix before they go.
//! - **Topics** the host uses are created at start when missing ([`topics`]).
//! - **Settings** ([`settings`]): what delivery depends on is fixed; anything else librdkafka
//!   knows passes through `bus.kafka`, secrets resolved.

pub(crate) mod errors;
mod member;
mod metrics;
mod offsets;
pub(crate) mod producer;
mod settings;
mod topics;

use std::sync::{Arc, Mutex, PoisonError, Weak};

use onex_spi::{
    BusFigures, Delivery, EventBus, Health, InboundMessage, MessageStream, OutboundMessage, SpiError, SpiResult,
    async_trait,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use self::errors::to_spi;
use self::member::{Member, MemberContext, MemberStream};
use self::metrics::KafkaMetrics;
pub use self::settings::KafkaSettings;
use crate::error::codes;

/// The Kafka bus: one producer, and a consumer per group member.
pub struct KafkaEventBus {
    settings: Arc<KafkaSettings>,
    producer: FutureProducer,
    /// The members `subscribe` made, for acknowledgements; a dropped stream's member goes away.
    members: Mutex<Vec<Weak<Member>>>,
    /// How many members `subscribe` made: each is numbered in the log by its place.
    joined: std::sync::atomic::AtomicUsize,
    metrics: Arc<KafkaMetrics>,
}

impl std::fmt::Debug for KafkaEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEventBus").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// `message` as a record for the producer.
fn record(message: &OutboundMessage) -> FutureRecord<'_, String, [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
    for (key, value) in message.headers.iter() {
        headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
    }
    let record = FutureRecord::to(&message.topic).payload(&message.payload[..]).headers(headers);
    match &message.key {
        Some(key) => record.key(key),
        None => record,
    }
}

fn is_queue_full(error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
}

impl KafkaEventBus {
    /// A delivery report as the bus reports it; a failure is counted.
    fn delivered(
        &self,
        topic: &str,
        report: Result<rdkafka::producer::future_producer::Delivery, KafkaError>,
    ) -> SpiResult<Delivery> {
        match report {
            Ok(delivered) => Ok(Delivery {
                partition: u32::try_from(delivered.partition).unwrap_or_default(),
                offset: u64::try_from(delivered.offset).unwrap_or_default(),
            }),
            Err(e) => {
                self.metrics.produce_error();
                Err(to_spi(e, &format!("publishing to `{topic}`")))
            }
        }
    }

    /// Awaits the delivery reports in flight, in order, into `results`.
    async fn settle(&self, in_flight: &mut Vec<(&str, DeliveryFuture)>, results: &mut Vec<SpiResult<Delivery>>) {
        for (topic, report) in in_flight.drain(..) {
            let report = match report.await {
                Ok(report) => report.map_err(|(e, _)| e),
                Err(_) => Err(KafkaError::Canceled),
            };
            results.push(self.delivered(topic, report));
        }
    }

    /// Connects the producer and creates each of `topics` that is missing.
    pub async fn connect(settings: KafkaSettings, topics: &[String]) -> SpiResult<Self> {
        let producer: FutureProducer =
            settings.producer().create().map_err(|e| to_spi(e, "creating the Kafka producer"))?;
        topics::ensure(&settings, topics).await?;
        Ok(Self {
            settings: Arc::new(settings),
            producer,
            members: Mutex::new(Vec::new()),
            joined: std::sync::atomic::AtomicUsize::new(0),
            metrics: Arc::new(KafkaMetrics::default()),
        })
    }

    /// The live members, dropping the ones whose stream is gone.
    fn members(&self) -> Vec<Arc<Member>> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.strong_count() > 0);
        members.iter().filter_map(Weak::upgrade).collect()
    }
}

#[async_trait]
impl EventBus for KafkaEventBus {
    async fn publish(&self, message: OutboundMessage) -> SpiResult<Delivery> {
        // `Never`: a full queue is waited out (backpressure); librdkafka retries a message until
        // its `message.timeout.ms`, then the delivery report says why it failed.
        let delivered = self.producer.send(record(&message), Timeout::Never).await;
        self.delivered(&message.topic, delivered.map_err(|(e, _)| e))
    }

    /// Every message enqueued at once, in order (so one key's messages keep their order), then
    /// every delivery report awaited. A full queue first settles what is in flight.
    async fn publish_all(&self, messages: Vec<OutboundMessage>) -> Vec<SpiResult<Delivery>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut in_flight = Vec::new();
        for message in &messages {
            let mut enqueued = self.producer.send_result(record(message));
            if matches!(&enqueued, Err((e, _)) if is_queue_full(e)) && !in_flight.is_empty() {
                self.settle(&mut in_flight, &mut results).await;
                enqueued = self.producer.send_result(record(message));
            }
            match enqueued {
                Ok(report) => in_flight.push((&*message.topic, report)),
                Err((e, _)) => {
                    self.settle(&mut in_flight, &mut results).await;
                    results.push(self.delivered(&message.topic, Err(e)));
                }
            }
        }
        self.settle(&mut in_flight, &mut results).await;
        results
    }

    async fn subscribe(&self, group: &str, topics: &[String]) -> SpiResult<MessageStream> {
        if topics.is_empty() {
            return Err(SpiError::new(codes::KAFKA_CONFIG, format!("group `{group}` subscribed to no topic")));
        }
        let number = self.joined.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let context = MemberContext::new(group, number, Arc::clone(&self.metrics));
        let consumer: rdkafka::consumer::StreamConsumer<MemberContext> = self
            .settings
            .consumer(group)
            .create_with_context(context)
            .map_err(|e| to_spi(e, &format!("creating a consumer of group `{group}`")))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| to_spi(e, &format!("subscribing group `{group}`")))?;
        let member = Arc::new(Member { consumer });
        self.members.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(&member));
        Ok(Box::pin(MemberStream::new(member)))
    }

    async fn acknowledge(&self, group: &str, message: &InboundMessage) -> SpiResult<()> {
        let partition = (message.topic.to_string(), i32::try_from(message.partition).unwrap_or(i32::MAX));
        let offset = i64::try_from(message.offset).unwrap_or(i64::MAX);
        let owner = self.members().into_iter().find(|m| m.group() == group && m.holds(&partition));
        match owner {
            Some(member) => member.acknowledge(&partition, offset),
            // Revoked meanwhile: the partition's next owner is given the message again.
            None => Ok(()),
        }
    }

    fn is_durable(&self) -> bool {
        true
    }

    async fn health(&self) -> Health {
        producer::broker_health(&self.producer).await
    }

    fn figures(&self) -> BusFigures {
        self.metrics.figures()
    }

    async fn close(&self) -> Result<(), SpiError> {
        // Off the async threads: a synchronous commit waits for the brokers, and the caller's
        // timeout must still be able to end the wait.
        let members = self.members();
        let commits = tokio::task::spawn_blocking(move || {
            members.iter().filter_map(|m| m.commit(CommitMode::Sync).err()).map(|e| e.to_string()).collect::<Vec<_>>()
        });
        let mut failures = commits.await.unwrap_or_else(|e| vec![format!("committing offsets: {e}")]);
        if let Err(e) = producer::flush(&self.producer).await {
            failures.push(e);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SpiError::new(codes::KAFKA_UNAVAILABLE, format!("closing the Kafka bus: {}", failures.join("; "))))
        }
    }
}
