//! Group commit: reducer transitions committed at the same moment (different entities on
//! different lanes) share one database transaction, and so one fsync.
//!
//! Nothing waits for a batch to fill: the writer takes whatever is queued when it becomes free,
//! so a lone commit goes straight through and batches grow only under load. Each commit in a
//! batch is isolated ([`StateStore::commit_transitions`]): a version conflict fails only its
//! own commit.

use std::sync::Arc;

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
        let (commits, waiters): (Vec<TransitionCommit>, Vec<_>) = batch.drain(..).unzip();
        match store.commit_transitions(commits).await {
            Ok(outcomes) => {
                for (done, outcome) in waiters.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            Err(e) => {
                for done in waiters {
                    let _ = done.send(Err(SpiError::custom(e.code().to_owned(), e.category(), e.message().to_owned())));
                }
            }
        }
    }
}
