//! The workflow runs this host is driving: one task per run, never two for one run, and the
//! drain that waits for them at shutdown.
//!
//! The host keeps this across contract reloads ([`super::reload`]): a run goes on with the
//! [`WorkflowSpec`] it was started (or resumed) with, whatever set is served meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_core::workflow::JournalEntry;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::RuntimeHost;
use super::orchestrator::WorkflowSpec;
use super::run_driver::drive;

/// The runs being driven.
#[derive(Debug, Default)]
pub(super) struct Runs(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    tasks: JoinSet<()>,
    /// Their ids and definitions (removed by the task when it ends).
    driving: Arc<Mutex<HashMap<Uuid, Arc<WorkflowSpec>>>>,
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this host is driving `run_id`.
    pub(super) fn is_driving(&self, run_id: Uuid) -> bool {
        self.spec_of(run_id).is_some()
    }

    /// The definition run `run_id` is driven with, while this host drives it.
    pub(super) fn spec_of(&self, run_id: Uuid) -> Option<Arc<WorkflowSpec>> {
        let driving = Arc::clone(&self.lock().driving);
        let map = driving.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&run_id).map(Arc::clone)
    }

    /// Drives a run in a task of its own, unless this host drives it already.
    pub(super) fn spawn(
        &self,
        host: &Arc<RuntimeHost>,
        spec: Arc<WorkflowSpec>,
        run_id: Uuid,
        trigger: Envelope,
        journal: Vec<JournalEntry>,
    ) {
        let mut inner = self.lock();
        while inner.tasks.try_join_next().is_some() {}
        let driving = Arc::clone(&inner.driving);
        {
            let mut map = driving.lock().unwrap_or_else(PoisonError::into_inner);
            if map.contains_key(&run_id) {
                return;
            }
            map.insert(run_id, Arc::clone(&spec));
        }
        let host = Arc::clone(host);
        inner.tasks.spawn(async move {
            let _driving = Driving { set: driving, run_id };
            drive(host, spec, run_id, trigger, journal).await;
        });
    }

    /// Waits up to `bound` for runs in progress; runs still going are stopped and stay
    /// `running` in the store, to be taken over once their lease expires. Returns how many were
    /// stopped.
    pub(super) async fn drain(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let mut runs = std::mem::take(&mut self.lock().tasks);
            if runs.is_empty() {
                return 0;
            }
            let all_done = async { while runs.join_next().await.is_some() {} };
            if tokio::time::timeout_at(deadline, all_done).await.is_err() {
                let stopped = runs.len();
                runs.abort_all();
                while runs.join_next().await.is_some() {}
                return stopped;
            }
        }
    }
}

/// Removes a run from the set of runs being driven when its task ends (also when aborted).
struct Driving {
    set: Arc<Mutex<HashMap<Uuid, Arc<WorkflowSpec>>>>,
    run_id: Uuid,
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.run_id);
    }
}
