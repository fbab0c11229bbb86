//! The sweeper: every host takes over the workflow runs whose lease expired (their host died or
//! lost the database), and removes records past their retention. Several hosts sweeping one
//! store at once is safe: a run is taken by one of them, a row deleted once.

use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::RetentionConfig;
use onex_spi::{RetentionPolicy, RunsToTake};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::RuntimeHost;

/// Rows removed per statement, so a sweep never holds locks for long.
const PRUNE_BATCH: u32 = 5_000;

/// Sweeps until `stop` turns true: expired runs every half run lease, retention every
/// `retention.sweep_interval_ms`.
pub(super) async fn sweep(host: Arc<RuntimeHost>, retention: RetentionConfig, mut stop: watch::Receiver<bool>) {
    let policy = RetentionPolicy {
        processed: Duration::from_millis(retention.processed_ms),
        published_outbox: Duration::from_millis(retention.published_outbox_ms),
        finished_runs: Duration::from_millis(retention.finished_runs_ms),
    };
    let mut runs = tokio::time::interval(host.claims.run.duration / 2);
    runs.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let sweep_every = Duration::from_millis(retention.sweep_interval_ms.max(1));
    let mut records = tokio::time::interval_at(Instant::now() + sweep_every, sweep_every);
    records.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = runs.tick() => take_over_expired(&host).await,
            _ = records.tick() => prune(&host, &policy).await,
        }
    }
}

async fn take_over_expired(host: &Arc<RuntimeHost>) {
    match host.served().orchestrator.take_over(host, RunsToTake::Expired).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(runs = n, "took over workflow runs whose lease expired"),
        Err(e) => tracing::warn!(error = %e, "cannot look for workflow runs whose lease expired"),
    }
}

/// Removes what is past retention, a batch at a time, until a round removes less than a batch.
pub(super) async fn prune(host: &RuntimeHost, policy: &RetentionPolicy) {
    loop {
        match host.store.prune(policy, PRUNE_BATCH).await {
            Ok(removed) => {
                host.metrics.pruned(&removed);
                let most = removed.processed.max(removed.outbox).max(removed.runs);
                if most < u64::from(PRUNE_BATCH) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove records past their retention; trying at the next sweep");
                return;
            }
        }
    }
}
