//! Orchestrators: an intent envelope `intent.<type>` starts the workflow the routing table
//! names; the host runs the core planner's waves (a wave's steps concurrently), journals every
//! step outcome, and after a restart resumes unfinished runs from their journals.
//!
//! A run's id is the triggering envelope's id, so a redelivered intent finds its run instead of
//! starting a second one. Step envelopes get ids derived from (run, step, attempt): a step
//! dispatched again after a crash carries the same id, so a reducer step stays idempotent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use onex_core::contract::ContractSet;
use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_core::workflow::{JournalEntry, RunAction, RunStatus, StepOutcome, StepState, WorkflowPlan, WorkflowRun};
use onex_spi::RunRecord;
use serde_json::{Value as Json, json};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::RuntimeHost;
use super::wire::{fail, spi_reply_error};
use crate::ids::{new_uuid_v7, now_utc};

/// A workflow ready to run.
#[derive(Debug)]
pub struct WorkflowSpec {
    /// The orchestrator node declaring it (the workflow's name for a bare workflow).
    pub node: String,
    /// Its plan.
    pub plan: WorkflowPlan,
}

/// Workflows, the intent routing table and the runs in progress.
#[derive(Debug, Default)]
pub struct Orchestrator {
    workflows: HashMap<String, Arc<WorkflowSpec>>,
    /// Intent type -> (routing node, workflow name).
    routes: HashMap<String, (String, String)>,
    runs: Mutex<JoinSet<()>>,
}

impl Orchestrator {
    /// Plans every workflow of `set`. Contract validation already planned them, so a plan error
    /// here names the workflow and is refused the same way.
    pub fn from_contracts(set: &ContractSet) -> Result<Self, String> {
        let mut workflows = HashMap::new();
        let mut routes = HashMap::new();
        let from_nodes = set.nodes.iter().filter_map(|(name, (_, n))| {
            n.workflow_coordination.as_ref().map(|w| (name.as_str(), &w.workflow_definition, &w.intent_routing))
        });
        for (node, def, routing) in from_nodes {
            let plan = onex_core::workflow::plan(def).map_err(|e| plan_error(&def.metadata.workflow_name, &e))?;
            workflows.insert(plan.name.clone(), Arc::new(WorkflowSpec { node: node.to_owned(), plan }));
            for (intent, workflow) in routing {
                routes.entry(intent.clone()).or_insert_with(|| (node.to_owned(), workflow.clone()));
            }
        }
        for (_, def) in &set.workflows {
            let plan = onex_core::workflow::plan(def).map_err(|e| plan_error(&def.metadata.workflow_name, &e))?;
            workflows.insert(plan.name.clone(), Arc::new(WorkflowSpec { node: plan.name.clone(), plan }));
        }
        routes.retain(|_, (_, workflow)| workflows.contains_key(workflow));
        Ok(Self { workflows, routes, runs: Mutex::default() })
    }

    /// `(node, operation)` for every routed intent.
    pub fn operations(&self) -> Vec<(&str, String)> {
        self.routes.iter().map(|(intent, (node, _))| (node.as_str(), format!("intent.{intent}"))).collect()
    }

    /// Starts (or finds) the run an intent envelope triggers and replies with its id.
    pub(super) async fn start(&self, host: &Arc<RuntimeHost>, request: &Envelope) -> Envelope {
        let intent = request.operation.strip_prefix("intent.").unwrap_or(&request.operation);
        let context = format!("envelope {} (`{}`)", request.envelope_id, request.operation);
        let Some((_, workflow)) = self.routes.get(intent) else {
            let message = format!("{context}: no orchestrator routes intent `{intent}`");
            return fail(request, ReplyError::new(codes::OPERATION_NOT_FOUND, message));
        };
        let Some(spec) = self.workflows.get(workflow) else {
            let message = format!("{context}: workflow `{workflow}` is not loaded");
            return fail(request, ReplyError::new(codes::OPERATION_NOT_FOUND, message));
        };
        let run_id = request.envelope_id;
        let record = RunRecord {
            run_id,
            workflow: workflow.clone(),
            trigger: serde_json::to_value(request).unwrap_or(Json::Null),
            status: "running".to_owned(),
        };
        let (started, status) = match host.store.start_run(&record).await {
            Ok(true) => {
                self.spawn(drive(Arc::clone(host), Arc::clone(spec), run_id, request.clone(), Vec::new()));
                (true, "running".to_owned())
            }
            Ok(false) => match host.store.run(run_id).await {
                Ok(existing) => (false, existing.map_or_else(|| "running".to_owned(), |r| r.status)),
                Err(e) => return fail(request, spi_reply_error(&e, &context)),
            },
            Err(e) => return fail(request, spi_reply_error(&e, &context)),
        };
        let payload = json!({ "run_id": run_id, "workflow": workflow, "status": status, "started": started });
        request.reply_ok(new_uuid_v7(), payload, now_utc())
    }

    /// Resumes every unfinished run of a known workflow; returns how many.
    pub(super) async fn resume_unfinished(&self, host: &Arc<RuntimeHost>) -> Result<usize, onex_spi::SpiError> {
        let mut resumed = 0;
        for record in host.store.unfinished_runs().await? {
            let Some(spec) = self.workflows.get(&record.workflow) else {
                tracing::warn!(run_id = %record.run_id, workflow = %record.workflow,
                    "unfinished run of a workflow no contract defines any more; left as it is");
                continue;
            };
            let trigger: Envelope = match serde_json::from_value(record.trigger) {
                Ok(trigger) => trigger,
                Err(e) => {
                    tracing::error!(run_id = %record.run_id, error = %e, "the stored trigger of a run does not parse");
                    continue;
                }
            };
            let journal = host.store.journal(record.run_id).await?;
            tracing::info!(run_id = %record.run_id, workflow = %record.workflow, journal = journal.len(), "resuming run");
            self.spawn(drive(Arc::clone(host), Arc::clone(spec), record.run_id, trigger, journal));
            resumed += 1;
        }
        Ok(resumed)
    }

    /// A run as the admin API shows it: status, each step's state, and the journal.
    pub(super) async fn view(&self, host: &RuntimeHost, run_id: Uuid) -> Result<Option<Json>, onex_spi::SpiError> {
        let Some(record) = host.store.run(run_id).await? else { return Ok(None) };
        let journal = host.store.journal(run_id).await?;
        let steps: Vec<Json> = match self.workflows.get(&record.workflow) {
            Some(spec) => match WorkflowRun::resume(spec.plan.clone(), &journal) {
                Ok(run) => spec
                    .plan
                    .steps
                    .iter()
                    .zip(run.step_states())
                    .map(|(step, state)| json!({ "step": step.name, "state": step_state(state) }))
                    .collect(),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Some(json!({
            "run_id": record.run_id, "workflow": record.workflow, "status": record.status,
            "steps": steps, "journal": journal,
        })))
    }

    /// Waits up to `bound` for runs in progress; runs still going are stopped and stay
    /// `running` in the store, to be resumed by the next start. Returns how many were stopped.
    pub(super) async fn drain(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let mut runs = std::mem::take(&mut *self.runs.lock().unwrap_or_else(PoisonError::into_inner));
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

    fn spawn(&self, run: impl Future<Output = ()> + Send + 'static) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        while runs.try_join_next().is_some() {}
        runs.spawn(run);
    }
}

fn plan_error(workflow: &str, errors: &[onex_core::workflow::PlanError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("workflow `{workflow}` cannot be planned: {}", list.join("; "))
}

fn step_state(state: &StepState) -> &'static str {
    match state {
        StepState::Pending => "pending",
        StepState::Running { .. } => "running",
        StepState::Succeeded { .. } => "succeeded",
        StepState::Failed { .. } => "failed",
        StepState::Skipped => "skipped",
        StepState::Compensated => "compensated",
    }
}

/// Runs a workflow to its end, journaling every outcome before acting on it.
async fn drive(
    host: Arc<RuntimeHost>,
    spec: Arc<WorkflowSpec>,
    run_id: Uuid,
    trigger: Envelope,
    journal: Vec<JournalEntry>,
) {
    let workflow = spec.plan.name.as_str();
    let mut run = match WorkflowRun::resume(spec.plan.clone(), &journal) {
        Ok(run) => run,
        Err(e) => {
            tracing::error!(%run_id, workflow, error = %e, "the journal does not replay against the workflow; run marked failed");
            finish(&host, run_id, workflow, "failed").await;
            return;
        }
    };
    let deadline = spec.plan.timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let trigger = Arc::new(trigger);
    let mut steps = JoinSet::new();
    loop {
        for action in run.next_actions() {
            let step = run_step(Arc::clone(&host), Arc::clone(&spec), run_id, Arc::clone(&trigger), action, deadline);
            steps.spawn(step);
        }
        let Some(joined) = steps.join_next().await else { break };
        let entry = match joined {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(%run_id, workflow, error = %e, "a step task ended abnormally; the run resumes at the next start");
                return;
            }
        };
        if let Err(e) = host.store.append_journal(run_id, &entry).await {
            tracing::error!(%run_id, workflow, error = %e, "cannot journal a step outcome; the run resumes at the next start");
            return;
        }
        if let Err(e) = run.record(entry.step, entry.compensation, entry.outcome) {
            tracing::error!(%run_id, workflow, error = %e, "step outcome refused by the run");
        }
    }
    let status = match run.status() {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed { .. } => "failed",
        RunStatus::Compensated { .. } => "compensated",
        RunStatus::Running => {
            tracing::error!(%run_id, workflow, "the run has nothing left to do but is not finished; marked failed");
            "failed"
        }
    };
    finish(&host, run_id, workflow, status).await;
}

async fn finish(host: &RuntimeHost, run_id: Uuid, workflow: &str, status: &'static str) {
    match host.store.finish_run(run_id, status).await {
        Ok(()) => {
            host.metrics.workflow_finished(workflow, status);
            tracing::info!(%run_id, workflow, status, "workflow run finished");
        }
        Err(e) => tracing::error!(%run_id, workflow, error = %e, "cannot record the end of a run"),
    }
}

/// Dispatches one action through the host and turns its reply into a journal entry.
async fn run_step(
    host: Arc<RuntimeHost>,
    spec: Arc<WorkflowSpec>,
    run_id: Uuid,
    trigger: Arc<Envelope>,
    action: RunAction,
    deadline: Option<Instant>,
) -> JournalEntry {
    let (step, attempt, compensation, operation, payload, timeout_ms) = match action {
        RunAction::Dispatch { step, attempt, operation, payload, timeout_ms } => {
            (step, attempt, false, operation, payload, timeout_ms)
        }
        RunAction::Compensate { step, operation, payload } => (step, 1, true, operation, payload, None),
    };
    let mut envelope =
        Envelope::request(step_envelope_id(run_id, step, attempt, compensation), operation, payload, now_utc());
    envelope.correlation_id = trigger.correlation_id;
    envelope.causation_id = Some(run_id);
    envelope.metadata = trigger.metadata.clone();
    envelope.source_node = Some(spec.node.clone());
    let step_deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let limit = match (step_deadline, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let name = spec.plan.steps.get(step).map_or("?", |s| s.name.as_str());
    let dispatched = RuntimeHost::handle_boxed(host, envelope.clone());
    let reply = match limit {
        Some(limit) => match tokio::time::timeout_at(limit, dispatched).await {
            Ok(reply) => reply,
            Err(_) => {
                let message = format!("workflow `{}` run {run_id}: step `{name}` timed out", spec.plan.name);
                fail(&envelope, ReplyError::new(codes::OPERATION_TIMEOUT, message))
            }
        },
        None => dispatched.await,
    };
    let outcome = match (reply.success, reply.error) {
        (Some(true), _) => StepOutcome::Succeeded { output: reply.payload },
        (_, Some(error)) => StepOutcome::Failed { error },
        (_, None) => StepOutcome::Failed {
            error: ReplyError::new(codes::OPERATION_FAILED, format!("step `{name}` failed without an error")),
        },
    };
    JournalEntry { step, attempt, compensation, outcome }
}

/// The id of a step's envelope: the same for the same run, step, attempt and kind.
fn step_envelope_id(run_id: Uuid, step: usize, attempt: u32, compensation: bool) -> Uuid {
    let mut hasher = blake3::Hasher::new();
    hasher.update(run_id.as_bytes());
    hasher.update(&(step as u64).to_le_bytes());
    hasher.update(&attempt.to_le_bytes());
    hasher.update(&[u8::from(compensation)]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_are_stable_and_distinct() {
        let run = Uuid::from_u128(42);
        assert_eq!(step_envelope_id(run, 1, 1, false), step_envelope_id(run, 1, 1, false));
        assert_ne!(step_envelope_id(run, 1, 1, false), step_envelope_id(run, 1, 2, false));
        assert_ne!(step_envelope_id(run, 1, 1, false), step_envelope_id(run, 1, 1, true));
        assert_ne!(step_envelope_id(run, 1, 1, false), step_envelope_id(Uuid::from_u128(43), 1, 1, false));
    }
}
