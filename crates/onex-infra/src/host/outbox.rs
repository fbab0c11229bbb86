//! The outbox relay: publishes the messages committed with reducer transitions, oldest first,
//! and marks them published.
//!
//! When is a message "published"? On a durable bus (Kafka), once the bus has it. On a bus that
//! dies with the process (the in-memory bus), a message for a topic this host consumes is only
//! marked once the host has processed it (the consumer marks it, by the `onex-outbox-id`
//! header), so a crash in between publishes it again at the next start instead of losing it.
//! Either way delivery is at-least-once; consumers deduplicate by envelope id, as the host's
//! reducers and orchestrators do.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use onex_spi::SpiError;
use tokio::sync::watch;

use super::RuntimeHost;

/// Messages read from the outbox per round trip.
const BATCH: u32 = 256;
/// How often the relay looks even without a signal (messages committed by another host).
const POLL: Duration = Duration::from_millis(500);
/// Header naming the outbox entry a message came from (on a bus that is not durable).
pub const HEADER_OUTBOX_ID: &str = "onex-outbox-id";

/// The relay's position: the last entry it sent in this process.
#[derive(Debug)]
pub struct OutboxRelay {
    host: Arc<RuntimeHost>,
    /// Topics this host consumes (their messages are marked by the consumer on a volatile bus).
    consumed: BTreeSet<String>,
    after: u64,
}

impl OutboxRelay {
    /// A relay for `host`, which consumes `consumed`.
    pub fn new(host: Arc<RuntimeHost>, consumed: impl IntoIterator<Item = String>) -> Self {
        Self { host, consumed: consumed.into_iter().collect(), after: 0 }
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

    /// Publishes everything pending now; returns how many messages were published.
    pub async fn flush(&mut self) -> Result<u64, SpiError> {
        let host = &self.host;
        let durable = host.bus.is_durable();
        let mut total = 0;
        loop {
            let pending = host.store.pending_outbox(self.after, BATCH).await?;
            if pending.is_empty() {
                return Ok(total);
            }
            let mut done = Vec::with_capacity(pending.len());
            let mut sent = 0;
            let mut failure = None;
            for mut entry in pending {
                let confirmed_by_consumer = !durable && self.consumed.contains(&entry.message.topic);
                if confirmed_by_consumer {
                    entry.message.headers.insert(HEADER_OUTBOX_ID.to_owned(), entry.id.to_string());
                }
                match host.bus.publish(entry.message).await {
                    Ok(_) => {
                        self.after = self.after.max(entry.id);
                        sent += 1;
                        if !confirmed_by_consumer {
                            done.push(entry.id);
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            host.metrics.published(sent);
            total += sent;
            if !done.is_empty() {
                host.store.mark_published(&done).await?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }
}
