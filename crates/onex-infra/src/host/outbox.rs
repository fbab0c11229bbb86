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

    /// Publishes claimed entries in order; keeps the rest in `held` when one fails.
    async fn publish(&mut self, batch: Vec<OutboxEntry>) -> Result<u64, SpiError> {
        let host = &self.host;
        let durable = host.bus.is_durable();
        let mut done = Vec::with_capacity(batch.len());
        let mut sent = 0;
        let mut failure = None;
        let mut entries = batch.into_iter();
        for mut entry in entries.by_ref() {
            let confirmed_by_consumer = !durable && self.consumed.contains(&entry.message.topic);
            if confirmed_by_consumer {
                entry.message.headers.insert(HEADER_OUTBOX_ID.to_owned(), entry.id.to_string());
            }
            match host.bus.publish(entry.message.clone()).await {
                Ok(_) => {
                    sent += 1;
                    if !confirmed_by_consumer {
                        done.push(entry.id);
                    }
                }
                Err(e) => {
                    self.held.push(entry);
                    failure = Some(e);
                    break;
                }
            }
        }
        self.held.extend(entries);
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
