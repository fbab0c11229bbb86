//! Driving one workflow run: the core planner's waves dispatched through the host (a wave's
//! steps concurrently), every step outcome journaled before the run acts on it, and the run's
//! lease renewed all along.
//!
//! The lease is the fence between hosts: a host that cannot renew it in time (it was partitioned
//! from the database, or stalled) stops driving, and its journal appends are refused once
//! another host took the run over, so a run is never driven by two hosts at once for longer
//! than a renewal period, and never journaled by the one that lost it.

use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_core::workflow::{JournalEntry, RunAction, RunStatus, StepOutcome, WorkflowRun};
use onex_spi::Lease;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::RuntimeHost;
use super::orchestrator::WorkflowSpec;
use super::wire::fail;
use crate::ids::now_utc;
use crate::telemetry::span;

/// Why a drive ended without finishing its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupted {
    /// The lease could not be renewed in time, or another host holds the run now.
    LeaseLost,
    /// The store could not be written; whoever holds the lease next resumes from the journal.
    StoreFailed,
}

/// Drives run `run_id` to its end (or until its lease is lost), starting from `journal`.
pub(super) async fn drive(
    host: Arc<RuntimeHost>,
    spec: Arc<WorkflowSpec>,
    run_id: Uuid,
    trigger: Envelope,
    journal: Vec<JournalEntry>,
) {
    let lease = host.claims.run.clone();
    let workflow = spec.plan.name.clone();
    // A run beyond `max_workflow_runs` waits here for a place, its lease kept alive meanwhile.
    let run_cx = run_span(&spec, run_id, &trigger, journal.len());
    let run = async {
        let _place = host.workflow_slots.acquire().await.ok();
        steps(&host, &spec, run_id, trigger, &journal, &lease, run_cx.as_ref()).await
    };
    let outcome = tokio::select! {
        outcome = run => outcome,
        () = keep_lease(&host, run_id, &lease) => Err(Interrupted::LeaseLost),
    };
    if let Some(cx) = &run_cx {
        let error = match outcome {
            Ok("succeeded") => None,
            Ok(status) => Some(format!("the run ended {status}")),
            Err(interrupted) => Some(format!("stopped driving the run: {interrupted:?}")),
        };
        span::end(cx, error);
    }
    match outcome {
        Ok(status) => finish(&host, run_id, &workflow, &lease, status).await,
        Err(Interrupted::LeaseLost) => {
            tracing::warn!(%run_id, workflow, "lost the run's lease; another host resumes it from its journal");
        }
        Err(Interrupted::StoreFailed) => {
            tracing::warn!(%run_id, workflow, "stopped driving the run; it resumes from its journal once its lease expires");
        }
    }
}

/// Renews the lease every third of its duration; returns once it is lost: refused (another host
/// holds the run) or not renewed before it would have expired.
async fn keep_lease(host: &RuntimeHost, run_id: Uuid, lease: &Lease) {
    let period = lease.duration / 3;
    let mut valid_until = Instant::now() + lease.duration;
    loop {
        tokio::time::sleep(period).await;
        let asked = Instant::now();
        match tokio::time::timeout_at(valid_until, host.store.renew_run(run_id, lease)).await {
            Ok(Ok(true)) => valid_until = asked + lease.duration,
            Ok(Ok(false)) => return,
            Ok(Err(e)) => {
                tracing::warn!(%run_id, error = %e, "cannot renew a workflow run's lease; trying again");
                if Instant::now() + period >= valid_until {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// With tracing on, the run's span: under its trigger's (also when another host resumes it);
/// each step is a span under it.
fn run_span(spec: &WorkflowSpec, run_id: Uuid, trigger: &Envelope, journaled: usize) -> Option<Context> {
    if !crate::telemetry::enabled() {
        return None;
    }
    let parent = trigger.metadata.traceparent.as_deref().and_then(span::parent_from).unwrap_or_default();
    let attributes = vec![
        KeyValue::new("onex.run_id", run_id.to_string()),
        KeyValue::new("onex.workflow", spec.plan.name.clone()),
        KeyValue::new("onex.journal_entries", i64::try_from(journaled).unwrap_or(i64::MAX)),
    ];
    Some(span::start(format!("workflow.run {}", spec.plan.name), SpanKind::Internal, &parent, attributes))
}

/// Runs the steps (each under `run_cx`, the run's span, when tracing); the run's final status,
/// or why it stopped.
async fn steps(
    host: &Arc<RuntimeHost>,
    spec: &Arc<WorkflowSpec>,
    run_id: Uuid,
    trigger: Envelope,
    journal: &[JournalEntry],
    lease: &Lease,
    run_cx: Option<&Context>,
) -> Result<&'static str, Interrupted> {
    let workflow = spec.plan.name.as_str();
    let mut run = match WorkflowRun::resume(spec.plan.clone(), journal) {
        Ok(run) => run,
        Err(e) => {
            tracing::error!(%run_id, workflow, error = %e, "the journal does not replay against the workflow; run marked failed");
            return Ok("failed");
        }
    };
    let deadline = spec.plan.timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let trigger = Arc::new(trigger);
    let mut running = JoinSet::new();
    loop {
        for action in run.next_actions() {
            let step = run_step(
                Arc::clone(host),
                Arc::clone(spec),
                run_id,
                Arc::clone(&trigger),
                action,
                deadline,
                run_cx.cloned(),
            );
            running.spawn(step);
        }
        let Some(joined) = running.join_next().await else { break };
        let entry = match joined {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(%run_id, workflow, error = %e, "a step task ended abnormally");
                return Err(Interrupted::StoreFailed);
            }
        };
        if let Err(e) = host.store.append_journal(run_id, &lease.owner, &entry).await {
            tracing::error!(%run_id, workflow, error = %e, "cannot journal a step outcome");
            let lost = e.code() == crate::error::codes::RUN_LEASE_LOST.as_str();
            return Err(if lost { Interrupted::LeaseLost } else { Interrupted::StoreFailed });
        }
        if let Err(e) = run.record(entry.step, entry.compensation, entry.outcome) {
            tracing::error!(%run_id, workflow, error = %e, "step outcome refused by the run");
        }
    }
    Ok(match run.status() {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed { .. } => "failed",
        RunStatus::Compensated { .. } => "compensated",
        RunStatus::Running => {
            tracing::error!(%run_id, workflow, "the run has nothing left to do but is not finished; marked failed");
            "failed"
        }
    })
}

async fn finish(host: &RuntimeHost, run_id: Uuid, workflow: &str, lease: &Lease, status: &'static str) {
    match host.store.finish_run(run_id, &lease.owner, status).await {
        Ok(()) => {
            host.metrics.workflow_finished(workflow, status);
            tracing::info!(%run_id, workflow, status, "workflow run finished");
        }
        Err(e) => {
            tracing::error!(%run_id, workflow, error = %e, "cannot record the end of a run; it is resumed and finished again")
        }
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
    run_cx: Option<Context>,
) -> JournalEntry {
    let (step, attempt, compensation, operation, payload, timeout_ms) = match action {
        RunAction::Dispatch { step, attempt, operation, payload, timeout_ms } => {
            (step, attempt, false, operation, payload, timeout_ms)
        }
        RunAction::Compensate { step, operation, payload } => (step, 1, true, operation, payload, None),
    };
    let mut envelope = Envelope::request(step_envelope_id(run_id, step, compensation), operation, payload, now_utc());
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
    // The step's span; its envelope carries it, so the envelope's span is its child.
    let step_cx = run_cx.map(|run_cx| {
        let attributes = vec![
            KeyValue::new("onex.step", name.to_owned()),
            KeyValue::new("onex.attempt", i64::from(attempt)),
            KeyValue::new("onex.compensation", compensation),
        ];
        let cx = span::start(format!("workflow.step {name}"), SpanKind::Internal, &run_cx, attributes);
        envelope.metadata.traceparent = span::traceparent_of(&cx).or(envelope.metadata.traceparent.take());
        cx
    });
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
    if let Some(cx) = &step_cx {
        span::end_with_reply(cx, &reply);
    }
    let outcome = match (reply.success, reply.error) {
        (Some(true), _) => StepOutcome::Succeeded { output: reply.payload },
        (_, Some(error)) => StepOutcome::Failed { error },
        (_, None) => StepOutcome::Failed {
            error: ReplyError::new(codes::OPERATION_FAILED, format!("step `{name}` failed without an error")),
        },
    };
    JournalEntry { step, attempt, compensation, outcome }
}

/// The id of a step's envelope: the same for every attempt of one step of one run (and apart
/// for its compensation). A retry after a timeout therefore meets the earlier attempt's record
/// wherever the target keeps one: a reducer applies the step once, and an effect whose replies
/// are recorded answers with the recorded reply instead of running again.
fn step_envelope_id(run_id: Uuid, step: usize, compensation: bool) -> Uuid {
    let mut hasher = blake3::Hasher::new();
    hasher.update(run_id.as_bytes());
    hasher.update(&(step as u64).to_le_bytes());
    hasher.update(&[u8::from(compensation)]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_are_stable_across_attempts_and_distinct_per_step() {
        let run = Uuid::from_u128(42);
        assert_eq!(step_envelope_id(run, 1, false), step_envelope_id(run, 1, false));
        assert_ne!(step_envelope_id(run, 1, false), step_envelope_id(run, 2, false));
        assert_ne!(step_envelope_id(run, 1, false), step_envelope_id(run, 1, true));
        assert_ne!(step_envelope_id(run, 1, false), step_envelope_id(Uuid::from_u128(43), 1, false));
    }
}
