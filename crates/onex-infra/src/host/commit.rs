//! Group commit: reducer transitions committed at the same moment (different entities on
//! different lanes) share one database transaction, and so one fsync.
//!
//! Nothing waits for a batch to fill: the writer takes whatever is queued when it becomes free,
//! so a lone commit goes straight through and batches grow only under load. Each commit in a
//! batch is isolated ([`StateStore::commit_transitions`]): a version conflict fails only its
//! own commit, and a batch whose transaction fails for another reason than the store being
//! down is committed again one by one, so one bad commit never fails its neighbours.

use std::sync::Arc;

use onex_core::error::ErrorCategory;
use onex_spi::{CommitOutcome, SpiError, SpiResult, StateStore, TransitionCommit};
use tokio::sync::{mpsc, oneshot};

use crate::error::codes;

/// Most commits written in one transaction.
const MAX_BATCH: usize = 128;

type Request = (TransitionCommit, oneshot::Sender<SpiResult<CommitOutcome>>);

/// The handle reducers commit through; cloning shares the writer.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Request>,
}

impl GroupCommitter {
    /// Starts the writer task for `store`; it ends when every handle is dropped.
    pub fn start(store: Arc<dyn StateStore>) -> Self {
        let (queue, requests) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write(store, requests));
        Self { queue }
    }

    /// Commits `commit` with whatever else is being committed now.
    pub async fn commit(&self, commit: TransitionCommit) -> SpiResult<CommitOutcome> {
        let (done, outcome) = oneshot::channel();
        let stopped = || SpiError::new(codes::STORE_UNAVAILABLE, "the state store writer has stopped");
        self.queue.send((commit, done)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn write(store: Arc<dyn StateStore>, mut requests: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() == 1 {
            let Some((commit, done)) = batch.pop() else { continue };
            let _ = done.send(store.commit_transition(commit).await);
            continue;
        }
        // Row locks are taken in (fsm, entity) order, so concurrent batches (other hosts) do
        // not lock the same rows in opposite orders. The sort is stable: commits of one entity
        // keep their arrival order.
        batch.sort_by(|(a, _), (b, _)| (&a.fsm, &a.entity_key).cmp(&(&b.fsm, &b.entity_key)));
        let (commits, waiters): (Vec<TransitionCommit>, Vec<_>) = batch.drain(..).unzip();
        match store.commit_transitions(commits.clone()).await {
            Ok(outcomes) => {
                for (done, outcome) in waiters.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            // The store is down: every commit would fail alike; each caller retries its own.
            Err(e) if e.category() == ErrorCategory::Unavailable && e.code() != codes::STORE_CONTENTION.as_str() => {
                for done in waiters {
                    let _ = done.send(Err(SpiError::custom(e.code().to_owned(), e.category(), e.message().to_owned())));
                }
            }
            // Something in the batch broke the whole transaction (nothing was written): commit
            // each alone, so one bad commit fails only itself.
            Err(e) => {
                tracing::warn!(error = %e, commits = commits.len(), "a group commit failed; committing its transitions one by one");
                for (commit, done) in commits.into_iter().zip(waiters) {
                    let _ = done.send(store.commit_transition(commit).await);
                }
            }
        }
    }
}
