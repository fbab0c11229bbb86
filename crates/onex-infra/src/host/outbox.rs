//! The outbox relay: publishes the messages committed with reducer transitions, oldest first,
//! and marks them published once the bus has them.
//!
//! A crash between publishing and marking publishes a message again on the next start
//! (at-least-once); consumers deduplicate by envelope id, as the host's reducers and
//! orchestrators do.

use std::sync::Arc;
use std::time::Duration;

use onex_spi::SpiError;
use tokio::sync::watch;

use super::RuntimeHost;

/// Messages read from the outbox per round trip.
const BATCH: u32 = 256;
/// How often the relay looks even without a signal (messages committed by another host).
const POLL: Duration = Duration::from_millis(500);

/// Publishes pending outbox messages until `stop` turns true, then flushes once more.
pub async fn relay(host: Arc<RuntimeHost>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = flush(&host).await {
            tracing::warn!(error = %e, "outbox relay: publishing failed; retrying");
        }
        tokio::select! {
            () = host.outbox_ready.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => break,
        }
    }
    if let Err(e) = flush(&host).await {
        tracing::error!(error = %e, "outbox relay: final flush failed; the messages stay in the outbox for the next start");
    }
}

/// Publishes everything pending now; returns how many messages were published.
pub async fn flush(host: &RuntimeHost) -> Result<u64, SpiError> {
    let mut total = 0;
    loop {
        let pending = host.store.pending_outbox(BATCH).await?;
        if pending.is_empty() {
            return Ok(total);
        }
        let mut published = Vec::with_capacity(pending.len());
        let mut failure = None;
        for entry in pending {
            match host.bus.publish(entry.message).await {
                Ok(_) => published.push(entry.id),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !published.is_empty() {
            host.store.mark_published(&published).await?;
            host.metrics.published(published.len() as u64);
            total += published.len() as u64;
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
}
