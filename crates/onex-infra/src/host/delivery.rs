//! What happens to one consumed message, so that it ends in exactly one final outcome and
//! nothing is skipped:
//!
//! 1. It is handled. A failure that may pass (timeout, unavailable: an open breaker, a store
//!    that is down) is tried again in place after a jittered, growing wait, up to
//!    `delivery.max_attempts`; the lane does nothing else meanwhile, so its partitions keep
//!    their order.
//! 2. Its outcome is published: the reply to the reply topic and, when it failed for good
//!    (a non-retryable error, a spent budget, bytes that do not parse), the original to the
//!    dead-letter topic with `onex-error-code`, `onex-error-message` and `onex-attempts`.
//!    A publish that fails is tried again, never skipped.
//! 3. It is acknowledged, again until that succeeds.
//!
//! When the host stops part-way, the message is left unacknowledged: the bus delivers it
//! again, and the reducers' and effects' reply records make the second time idempotent.

use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::DeliveryConfig;
use onex_core::envelope::{Envelope, bus_headers};
use onex_core::error::{Classified, ErrorCategory};
use onex_core::resilience::{RetryDecision, RetrySchedule};
use onex_spi::{InboundMessage, OutboundMessage, SpiResult};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::sync::watch;

use super::RuntimeHost;
use super::consumer::ConsumerConfig;
use super::outbox::HEADER_OUTBOX_ID;
use super::wire::{HEADER_ERROR_CODE, HEADER_ERROR_MESSAGE, minted_for, to_message};
use crate::resilience::random_unit;
use crate::telemetry::span;

/// Header of a dead letter: how many times the message was tried.
pub const HEADER_ATTEMPTS: &str = "onex-attempts";

/// The host is stopping; the message in hand is left for redelivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Waits between tries of a bus call: the delivery schedule's delays, growing up to its cap,
/// for as many tries as it takes.
#[derive(Debug)]
pub(super) struct Backoff {
    schedule: RetrySchedule,
    tries: u32,
}

impl Backoff {
    pub(super) fn new(delivery: &DeliveryConfig) -> Self {
        Self { schedule: delivery.retry_schedule(), tries: 0 }
    }

    /// Waits for the next try, or returns `Stopped` as soon as the host stops.
    pub(super) async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), Stopped> {
        // Past 32 doublings every delay is the cap anyway.
        self.tries = (self.tries + 1).min(32);
        pause(self.schedule.delay(self.tries, random_unit()), stop).await
    }
}

/// Sleeps `delay` unless the host stops first.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> Result<(), Stopped> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => Err(Stopped),
        () = tokio::time::sleep(delay) => Ok(()),
    }
}

/// A message's final outcome, before it is published.
#[allow(
    clippy::large_enum_variant,
    reason = "one outcome per message, held by its lane: boxing the reply cost an allocation per message"
)]
enum Outcome {
    /// Handled: the final reply (a failed one is dead-lettered too) after this many tries, and
    /// the message's span (tracing on).
    Replied { reply: Envelope, attempts: u32, span: Option<Context> },
    /// Not an envelope: dead-lettered as it came.
    Unreadable { code: String, text: String },
    /// A reply that came back on a request topic: nothing to do.
    Ignored,
}

/// Brings `message` to its final outcome, publishes it and acknowledges the message.
pub(super) async fn settle(
    host: &Arc<RuntimeHost>,
    config: &ConsumerConfig,
    message: &InboundMessage,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Stopped> {
    host.metrics.consumed();
    let outcome = decide(host, config, message, stop).await?;
    let mut backoff = Backoff::new(&config.delivery);
    match &outcome {
        Outcome::Replied { reply, attempts, span: consumed } => {
            let published = to_message(Arc::clone(&config.reply_topic), message.key.clone(), reply);
            let publishing = consumed.as_ref().map(|parent| {
                let name = format!("publish {}", config.reply_topic);
                span::start(
                    name,
                    SpanKind::Producer,
                    parent,
                    vec![KeyValue::new("onex.topic", config.reply_topic.to_string())],
                )
            });
            retry(host, stop, &mut backoff, "publish a reply", || host.bus.publish(published.clone())).await?;
            if let Some(cx) = publishing {
                span::end(&cx, None);
            }
            if let Some(cx) = consumed {
                span::end_with_reply(cx, reply);
            }
            if let Some(error) = reply.error.as_ref().filter(|_| reply.success != Some(true)) {
                let letter = dead_letter(config, message, &error.code, &error.message, *attempts);
                retry(host, stop, &mut backoff, "dead-letter a message", || host.bus.publish(letter.clone())).await?;
                host.metrics.dead_lettered();
            }
        }
        Outcome::Unreadable { code, text } => {
            let letter = dead_letter(config, message, code, text, 1);
            retry(host, stop, &mut backoff, "dead-letter a message", || host.bus.publish(letter.clone())).await?;
            host.metrics.dead_lettered();
        }
        Outcome::Ignored => {}
    }
    confirm_outbox(host, message).await;
    retry(host, stop, &mut backoff, "acknowledge a message", || host.bus.acknowledge(&config.group, message)).await
}

/// Handles the message, again in place while its failure may pass and attempts remain.
async fn decide(
    host: &Arc<RuntimeHost>,
    config: &ConsumerConfig,
    message: &InboundMessage,
    stop: &mut watch::Receiver<bool>,
) -> Result<Outcome, Stopped> {
    let mut request = match Envelope::decode(&message.payload, host.limits.max_envelope_bytes, minted_for(message)) {
        Ok(request) => request,
        Err(e) => {
            let code = e.error_code();
            host.metrics.refused(code.as_str());
            let text = format!("message {}/{}@{}: {e}", message.topic, message.partition, message.offset);
            tracing::warn!(code = %code, "{text}");
            return Ok(Outcome::Unreadable { code: code.as_str().to_owned(), text });
        }
    };
    if request.is_response {
        tracing::debug!(envelope_id = %request.envelope_id, "a reply on a request topic; skipped");
        return Ok(Outcome::Ignored);
    }
    // A trace the headers name (this runtime's or the Python runtime's) when the body has none.
    if request.metadata.traceparent.is_none() {
        request.metadata.traceparent = bus_headers::traceparent(&message.headers);
    }
    // The message's span: the envelope (each attempt a span of its own) and the reply's
    // publishing are its children.
    let consumed = crate::telemetry::enabled().then(|| {
        let cx = span::start_for(&mut request, format!("consume {}", message.topic), SpanKind::Consumer);
        cx.span().set_attribute(KeyValue::new("onex.partition", i64::from(message.partition)));
        cx
    });
    let schedule = config.delivery.retry_schedule();
    // Shared with the node's stack from here on, not copied for it.
    let mut request = Arc::new(request);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reply = host.handle_kept(&mut request).await;
        let retry_after = match &reply.error {
            Some(error) if reply.success != Some(true) => {
                match schedule.decide(attempts - 1, &error.code, error.category, random_unit()) {
                    RetryDecision::RetryAfter(delay) => Some(delay),
                    RetryDecision::GiveUp(_) => None,
                }
            }
            _ => None,
        };
        let Some(delay) = retry_after else {
            return Ok(Outcome::Replied { reply, attempts, span: consumed });
        };
        host.metrics.delivery_retried();
        tracing::info!(envelope_id = %request.envelope_id, operation = %request.operation, attempts,
            delay_ms = delay.as_millis() as u64, "retryable failure; trying the envelope again in place");
        pause(delay, stop).await?;
    }
}

/// Runs a bus call until it succeeds, waiting between tries; only the host stopping ends it.
async fn retry<T, F, Fut>(
    host: &RuntimeHost,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
    what: &str,
    mut call: F,
) -> Result<(), Stopped>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SpiResult<T>>,
{
    loop {
        match call().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                host.metrics.bus_retried();
                let level_is_error = e.category() != ErrorCategory::Unavailable;
                if level_is_error {
                    tracing::error!(error = %e, "bus consumer: cannot {what}; trying again");
                } else {
                    tracing::warn!(error = %e, "bus consumer: cannot {what}; trying again");
                }
                backoff.wait(stop).await?;
            }
        }
    }
}

/// The original message for the dead-letter topic, its error and attempts in the headers.
fn dead_letter(
    config: &ConsumerConfig,
    message: &InboundMessage,
    code: &str,
    text: &str,
    attempts: u32,
) -> OutboundMessage {
    let mut headers = (*message.headers).clone();
    let (attempts, budget) = (attempts.to_string(), config.delivery.max_attempts.to_string());
    headers.insert(HEADER_ERROR_CODE, code);
    headers.insert(HEADER_ERROR_MESSAGE, text);
    headers.insert(HEADER_ATTEMPTS, &attempts);
    // The Python runtime's names for the same: attempts made, of the budget.
    headers.insert(bus_headers::python::RETRY_COUNT, &attempts);
    headers.insert(bus_headers::python::MAX_RETRIES, &budget);
    headers.insert("onex-source-topic", &message.topic);
    headers.insert("onex-source-partition", &message.partition.to_string());
    headers.insert("onex-source-offset", &message.offset.to_string());
    OutboundMessage {
        topic: Arc::clone(&config.dlq_topic),
        key: message.key.clone(),
        payload: message.payload.clone(),
        headers: std::sync::Arc::new(headers),
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
