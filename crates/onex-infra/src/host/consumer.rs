//! The bus consumer: reads the host's topics as one consumer group and processes each
//! partition in order on one of a fixed set of lanes, different partitions in parallel.
//!
//! A message is acknowledged only after its outcome is durable: the reply is published to the
//! reply topic, and a message that failed (or does not parse) is published to the dead-letter
//! topic with its error. A message whose outcome could not be published is not acknowledged,
//! so the bus delivers it again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use onex_core::envelope::Envelope;
use onex_core::error::Classified;
use onex_spi::{InboundMessage, MessageStream, OutboundMessage, SpiError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::RuntimeHost;
use super::outbox::HEADER_OUTBOX_ID;
use super::wire::{HEADER_ERROR_CODE, HEADER_ERROR_MESSAGE, to_message};

/// Messages queued per lane (backpressure on the bus beyond that).
const LANE_DEPTH: usize = 64;

/// Where the consumer reads and writes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Topic replies go to.
    pub reply_topic: String,
    /// Topic failed messages go to.
    pub dlq_topic: String,
    /// Lanes processing partitions in parallel.
    pub lanes: usize,
}

/// Consumes until `stop` turns true, then finishes what the lanes hold.
pub async fn consume(
    host: Arc<RuntimeHost>,
    config: ConsumerConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SpiError> {
    let mut stream: MessageStream = host.bus.subscribe(&config.group, &config.topics).await?;
    let config = Arc::new(config);
    let mut lanes = Vec::with_capacity(config.lanes.max(1));
    let mut workers = JoinSet::new();
    for _ in 0..config.lanes.max(1) {
        let (tx, rx) = mpsc::channel::<InboundMessage>(LANE_DEPTH);
        lanes.push(tx);
        workers.spawn(lane(Arc::clone(&host), Arc::clone(&config), rx));
    }
    loop {
        let next = tokio::select! {
            next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)) => next,
            _ = stop.changed() => break,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::error!(error = %e, "bus consumer: the stream failed; stopping");
                break;
            }
            None => break,
        };
        let mut hasher = DefaultHasher::new();
        (&message.topic, message.partition).hash(&mut hasher);
        let lane = (hasher.finish() % lanes.len() as u64) as usize;
        if lanes[lane].send(message).await.is_err() {
            break;
        }
    }
    drop(stream);
    drop(lanes);
    while workers.join_next().await.is_some() {}
    Ok(())
}

async fn lane(host: Arc<RuntimeHost>, config: Arc<ConsumerConfig>, mut rx: mpsc::Receiver<InboundMessage>) {
    while let Some(message) = rx.recv().await {
        match process(&host, &config, &message).await {
            Ok(()) => {
                confirm_outbox(&host, &message).await;
                if let Err(e) = host.bus.acknowledge(&config.group, &message).await {
                    tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.offset,
                        error = %e, "cannot acknowledge a processed message; it may be delivered again");
                }
            }
            Err(e) => tracing::error!(topic = %message.topic, partition = message.partition, offset = message.offset,
                error = %e, "cannot publish a message's outcome; left unacknowledged for redelivery"),
        }
    }
}

/// Marks the outbox entry a processed message came from published (volatile buses only; see
/// [`super::outbox`]). A failure here only means the message is published again after a restart.
async fn confirm_outbox(host: &RuntimeHost, message: &InboundMessage) {
    let Some(id) = message.headers.get(HEADER_OUTBOX_ID).and_then(|id| id.parse::<u64>().ok()) else { return };
    if let Err(e) = host.store.mark_published(&[id]).await {
        tracing::warn!(outbox_id = id, error = %e, "cannot mark a processed outbox message published");
    }
}

/// Handles one message and publishes its outcome.
async fn process(host: &Arc<RuntimeHost>, config: &ConsumerConfig, message: &InboundMessage) -> Result<(), SpiError> {
    host.metrics.consumed();
    let request = match Envelope::from_json(&message.payload, host.limits.max_envelope_bytes) {
        Ok(request) => request,
        Err(e) => {
            let code = e.error_code();
            host.metrics.refused(code.as_str());
            let text = format!("message {}/{}@{}: {e}", message.topic, message.partition, message.offset);
            tracing::warn!(code = %code, "{text}");
            return dead_letter(host, config, message, code.as_str(), &text).await;
        }
    };
    if request.is_response {
        tracing::debug!(envelope_id = %request.envelope_id, "a reply on a request topic; skipped");
        return Ok(());
    }
    let reply = host.handle(request).await;
    host.bus.publish(to_message(&config.reply_topic, message.key.clone(), &reply)).await?;
    match &reply.error {
        Some(error) if reply.success != Some(true) => {
            dead_letter(host, config, message, &error.code, &error.message).await
        }
        _ => Ok(()),
    }
}

/// Publishes the original message to the dead-letter topic with its error in the headers.
async fn dead_letter(
    host: &RuntimeHost,
    config: &ConsumerConfig,
    message: &InboundMessage,
    code: &str,
    text: &str,
) -> Result<(), SpiError> {
    let mut headers = message.headers.clone();
    headers.insert(HEADER_ERROR_CODE.to_owned(), code.to_owned());
    headers.insert(HEADER_ERROR_MESSAGE.to_owned(), text.to_owned());
    headers.insert("onex-source-topic".to_owned(), message.topic.clone());
    headers.insert("onex-source-partition".to_owned(), message.partition.to_string());
    headers.insert("onex-source-offset".to_owned(), message.offset.to_string());
    let dead = OutboundMessage {
        topic: config.dlq_topic.clone(),
        key: message.key.clone(),
        payload: message.payload.clone(),
        headers,
    };
    host.bus.publish(dead).await?;
    host.metrics.dead_lettered();
    Ok(())
}
