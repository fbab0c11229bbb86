//! Orchestrators: an intent envelope `intent.<type>` starts the workflow the routing table
//! names, driven by [`super::run_driver`] under a lease in the store.
//!
//! A run's id is the triggering envelope's id, so a redelivered intent finds its run instead of
//! starting a second one, and takes it over when its lease expired (its host died). Runs whose
//! lease expired are also taken over by any host's sweeper ([`Orchestrator::take_over`]), and,
//! at start, a host alone on its store (SQLite) takes every unfinished run at once. A host
//! never drives one run twice: it remembers the runs it is driving ([`super::runs`]).

use std::collections::HashMap;
use std::sync::Arc;

use onex_core::contract::ContractSet;
use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_core::workflow::{StepState, WorkflowPlan, WorkflowRun};
use onex_spi::{RunRecord, RunsToTake, SpiError};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::RuntimeHost;
use super::wire::{fail, spi_reply_error};
use crate::ids::{new_uuid_v7, now_utc};

/// Most runs taken over in one round.
const TAKE_OVER_BATCH: u32 = 64;

/// A workflow ready to run.
#[derive(Debug)]
pub struct WorkflowSpec {
    /// The orchestrator node declaring it (the workflow's name for a bare workflow).
    pub node: String,
    /// Its plan.
    pub plan: WorkflowPlan,
}

/// The workflows of one contract set and its intent routing table.
#[derive(Debug, Default)]
pub struct Orchestrator {
    workflows: HashMap<String, Arc<WorkflowSpec>>,
    /// Intent type -> (routing node, workflow name).
    routes: HashMap<String, (String, String)>,
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
        Ok(Self { workflows, routes })
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
            owner: Some(host.claims.run.owner.clone()),
        };
        let started = match host.store.start_run(&record, &host.claims.run).await {
            Ok(started) => started,
            Err(e) => return fail(request, spi_reply_error(&e, &context)),
        };
        let status = if started {
            host.runs.spawn(host, Arc::clone(spec), run_id, request.clone(), Vec::new());
            "running".to_owned()
        } else {
            // Delivered again: the run exists. If its host died, this one takes it over.
            match self.take_over_one(host, run_id).await {
                Ok(Some(status)) => status,
                Ok(None) => "running".to_owned(),
                Err(e) => return fail(request, spi_reply_error(&e, &context)),
            }
        };
        let payload = json!({ "run_id": run_id, "workflow": workflow, "status": status, "started": started });
        request.reply_ok(new_uuid_v7(), payload, now_utc())
    }

    /// The status of an existing run, after taking it over if it is running and its lease
    /// expired (or this host holds it but is not driving it).
    async fn take_over_one(&self, host: &Arc<RuntimeHost>, run_id: Uuid) -> Result<Option<String>, SpiError> {
        if host.runs.is_driving(run_id) {
            return Ok(Some("running".to_owned()));
        }
        if let Some(record) = host.store.take_over_run(run_id, &host.claims.run).await? {
            self.resume(host, record).await?;
            return Ok(Some("running".to_owned()));
        }
        Ok(host.store.run(run_id).await?.map(|r| r.status))
    }

    /// Takes over runs of `which` kind and drives them; returns how many.
    pub(super) async fn take_over(&self, host: &Arc<RuntimeHost>, which: RunsToTake) -> Result<usize, SpiError> {
        let mut taken = 0;
        loop {
            let records = host.store.take_over_runs(&host.claims.run, which, TAKE_OVER_BATCH).await?;
            let round = records.len();
            for record in records {
                if self.resume(host, record).await? {
                    taken += 1;
                }
            }
            if round < TAKE_OVER_BATCH as usize {
                return Ok(taken);
            }
        }
    }

    /// Drives a run this host now holds from its journal; false when it is driving it already
    /// or no contract defines its workflow any more.
    async fn resume(&self, host: &Arc<RuntimeHost>, record: RunRecord) -> Result<bool, SpiError> {
        if host.runs.is_driving(record.run_id) {
            return Ok(false);
        }
        let Some(spec) = self.workflows.get(&record.workflow) else {
            tracing::warn!(run_id = %record.run_id, workflow = %record.workflow,
                "unfinished run of a workflow no contract defines any more; left as it is");
            return Ok(false);
        };
        let trigger: Envelope = match serde_json::from_value(record.trigger) {
            Ok(trigger) => trigger,
            Err(e) => {
                tracing::error!(run_id = %record.run_id, error = %e, "the stored trigger of a run does not parse");
                return Ok(false);
            }
        };
        let journal = host.store.journal(record.run_id).await?;
        tracing::info!(run_id = %record.run_id, workflow = %record.workflow, journal = journal.len(), "resuming run");
        host.metrics.run_taken_over();
        host.runs.spawn(host, Arc::clone(spec), record.run_id, trigger, journal);
        Ok(true)
    }

    /// A run as the admin API shows it: status, each step's state, and the journal.
    pub(super) async fn view(&self, host: &RuntimeHost, run_id: Uuid) -> Result<Option<Json>, onex_spi::SpiError> {
        let Some(record) = host.store.run(run_id).await? else { return Ok(None) };
        self.view_of(host, record).await.map(Some)
    }

    /// [`Self::view`] of a run record already read. A finished run is shown against the
    /// definition served now: after a reload that changed its workflow, its `steps` are left
    /// empty when its journal does not fit (the journal itself is always shown).
    pub(super) async fn view_of(&self, host: &RuntimeHost, record: RunRecord) -> Result<Json, onex_spi::SpiError> {
        let journal = host.store.journal(record.run_id).await?;
        // A run being driven is shown with its own definition (it may predate a reload).
        let driven = host.runs.spec_of(record.run_id);
        let steps: Vec<Json> = match driven.as_ref().or_else(|| self.workflows.get(&record.workflow)) {
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
        Ok(json!({
            "run_id": record.run_id, "workflow": record.workflow, "status": record.status,
            "steps": steps, "journal": journal,
        }))
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
