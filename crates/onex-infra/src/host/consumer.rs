//! The bus consumer: the host joins its consumer group once per lane, so the bus deals the
//! partitions among the lanes; each lane processes its partitions' messages one at a time, in
//! order, and different lanes run in parallel.
//!
//! A message is acknowledged only after its outcome is durable: the reply is published to the
//! reply topic, and a message that failed (or does not parse) is published to the dead-letter
//! topic with its error. A message whose outcome could not be published is not acknowledged,
//! so the bus delivers it again.

use std::sync::Arc;

use onex_core::envelope::Envelope;
use onex_core::error::Classified;
use onex_spi::{InboundMessage, MessageStream, OutboundMessage, SpiError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::RuntimeHost;
use super::outbox::HEADER_OUTBOX_ID;
use super::wire::{HEADER_ERROR_CODE, HEADER_ERROR_MESSAGE, to_message};

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
    /// Lanes (group members) processing partitions in parallel.
    pub lanes: usize,
}

/// Joins the group once per lane and consumes until `stop` turns true; a lane finishes the
/// message in hand, then leaves the group.
pub async fn consume(
    host: Arc<RuntimeHost>,
    config: ConsumerConfig,
    stop: watch::Receiver<bool>,
) -> Result<(), SpiError> {
    let config = Arc::new(config);
    let mut lanes = JoinSet::new();
    for _ in 0..config.lanes.max(1) {
        let stream = host.bus.subscribe(&config.group, &config.topics).await?;
        lanes.spawn(lane(Arc::clone(&host), Arc::clone(&config), stream, stop.clone()));
    }
    while lanes.join_next().await.is_some() {}
    Ok(())
}

async fn lane(
    host: Arc<RuntimeHost>,
    config: Arc<ConsumerConfig>,
    mut stream: MessageStream,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)) => next,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::error!(error = %e, "bus consumer: the stream failed; this lane stops");
                return;
            }
            None => return,
        };
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
