//! The outbox relay: publishes the messages committed with reducer transitions, and marks them
//! published. Relays of several hosts share one outbox: each claims rows for a while
//! (`delivery.outbox_claim_ms`) and publishes only what it claimed, so a row is published once
//! per claim; a row whose relay died is claimed again when its claim expires. There is no
//! cursor: a row committed late with a lower id than rows already sent is claimed all the same.
//!
//! When is a message "published"? On a durable bus (Kafka), once the bus has it. On a bus that
//! dies with the process (the in-memory bus), a message for a topic this host consumes is only
//! marked once the host has processed it (the consumer marks it, by the `onex-outbox-id`
//! header), so a crash in between publishes it again instead of losing it. Either way delivery
//! is at-least-once; consumers deduplicate by envelope id, as the host's reducers,
//! orchestrators and recorded effects do.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use onex_spi::{OutboxEntry, SpiError};
use tokio::sync::watch;

use super::RuntimeHost;

/// Messages claimed per round trip.
const BATCH: u32 = 256;
/// How often the relay looks even without a signal (messages committed by another host).
const POLL: Duration = Duration::from_millis(500);
/// Header naming the outbox entry a message came from (on a bus that is not durable).
pub const HEADER_OUTBOX_ID: &str = "onex-outbox-id";

/// The relay of one host.
#[derive(Debug)]
pub struct OutboxRelay {
    host: Arc<RuntimeHost>,
    /// Topics this host consumes (their messages are marked by the consumer on a volatile bus).
    consumed: BTreeSet<String>,
    /// Entries claimed but not yet published (a publish failed): sent first next time, while
    /// the claim lasts.
    held: Vec<OutboxEntry>,
}

impl OutboxRelay {
    /// A relay for `host`, which consumes `consumed`.
    pub fn new(host: Arc<RuntimeHost>, consumed: impl IntoIterator<Item = String>) -> Self {
        Self { host, consumed: consumed.into_iter().collect(), held: Vec::new() }
    }

    /// Publishes pending outbox messages until `stop` turns true, then flushes once more.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "outbox relay: publishing failed; retrying");
            }
            tokio::select! {
                () = self.host.outbox_ready.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => break,
            }
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "outbox relay: final flush failed; the messages stay in the outbox for the next start");
        }
    }

    /// Publishes everything it can claim now; returns how many messages were published.
    pub async fn flush(&mut self) -> Result<u64, SpiError> {
        let mut total = 0;
        loop {
            let mut batch = std::mem::take(&mut self.held);
            if batch.is_empty() {
                batch = self.host.store.claim_outbox(&self.host.claims.outbox, BATCH).await?;
            }
            if batch.is_empty() {
                return Ok(total);
            }
            total += self.publish(batch).await?;
        }
    }

    /// Publishes claimed entries in order, all in flight at once where the bus allows; keeps
    /// the entries from the first failure on in `held` (those after it that did go out are
    /// published again: at least once).
    async fn publish(&mut self, mut batch: Vec<OutboxEntry>) -> Result<u64, SpiError> {
        let host = &self.host;
        let durable = host.bus.is_durable();
        let mut confirmed_by_consumer = Vec::with_capacity(batch.len());
        for entry in &mut batch {
            let by_consumer = !durable && self.consumed.contains(&*entry.message.topic);
            if by_consumer {
                std::sync::Arc::make_mut(&mut entry.message.headers).insert(HEADER_OUTBOX_ID, &entry.id.to_string());
            }
            confirmed_by_consumer.push(by_consumer);
        }
        let results = host.bus.publish_all(batch.iter().map(|e| e.message.clone()).collect()).await;
        let sent = results.iter().take_while(|r| r.is_ok()).count();
        let failure = results.into_iter().find_map(Result::err);
        let done: Vec<u64> = batch[..sent]
            .iter()
            .zip(confirmed_by_consumer)
            .filter(|(_, by_consumer)| !by_consumer)
            .map(|(entry, _)| entry.id)
            .collect();
        self.held.extend(batch.drain(sent..));
        let sent = sent as u64;
        host.metrics.published(sent);
        if !done.is_empty() {
            host.store.mark_published(&done).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }
}
