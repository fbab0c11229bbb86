//! `RuntimeHost`: the one path every envelope takes, from the bus or from HTTP ingress.
//!
//! The operation's prefix picks the kind of node: a state machine's name goes to its reducer,
//! `intent` to the orchestrator that routes the intent, anything else to the effect node that
//! declares the operation (through its resilience stack). A reply always comes back.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use onex_core::envelope::Envelope;
use onex_spi::{EventBus, Lease, StateStore};
use opentelemetry::context::FutureExt;
use opentelemetry::trace::SpanKind;
use serde_json::Value as Json;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use super::commit::GroupCommitter;
use super::dispatch::RouteKind;
use super::metrics::{Gauges, Metrics, StackGauges};
use super::runs::Runs;
use super::served::{Served, Wiring};
use crate::telemetry::span;
use onex_core::resilience::BreakerState;

/// How long the readiness probe waits for the state store to answer.
pub const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The reserved operation prefix of intents.
pub const INTENT_PREFIX: &str = "intent";

/// A W3C `traceparent` for an envelope that arrived without one: the correlation id is the trace
/// id (so everything one request causes shares a trace), the envelope id's first half the span.
/// Written into one allocation: every envelope without a traceparent takes this path.
fn traceparent(request: &Envelope) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    out.push_str(request.correlation_id.simple().encode_lower(&mut buffer));
    out.push('-');
    out.push_str(&request.envelope_id.simple().encode_lower(&mut buffer)[..16]);
    out.push_str("-01");
    out
}

/// Limits the host applies to input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest envelope accepted, in bytes.
    pub max_envelope_bytes: usize,
    /// Most envelopes taken in over HTTP at once; more are refused with 503.
    pub max_in_flight: usize,
    /// Most workflow runs driven at once; more wait (holding their lease) for a free place.
    pub max_workflow_runs: usize,
}

/// A reducer's state machine and how many entities each of its states holds.
#[derive(Debug)]
pub struct Machine<'a> {
    /// The reducer node.
    pub node: &'a str,
    /// Its machine.
    pub fsm: &'a onex_core::contract::FsmContract,
    /// Entities by state (states without any left out).
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// This host's name in the store's claims, and how long they last.
#[derive(Debug, Clone)]
pub struct Claims {
    /// Leases on the workflow runs it drives.
    pub run: Lease,
    /// Claims on the outbox rows its relay publishes.
    pub outbox: Lease,
}

impl Claims {
    /// Claims for a host process named `owner` (unique per process).
    pub fn new(owner: String, run: std::time::Duration, outbox: std::time::Duration) -> Self {
        Self { run: Lease { owner: owner.clone(), duration: run }, outbox: Lease { owner, duration: outbox } }
    }
}

/// Everything an envelope can reach, shared by the bus consumer, the admin API and the
/// workflow runs.
pub struct RuntimeHost {
    /// The contract set served now; replaced whole by a reload.
    served: RwLock<Arc<Served>>,
    /// What sets are built with; locked by a reload for its whole length (one at a time).
    pub(super) wiring: tokio::sync::Mutex<Wiring>,
    /// The workflow runs being driven, whichever set started them.
    pub(super) runs: Runs,
    pub(super) store: Arc<dyn StateStore>,
    committer: GroupCommitter,
    pub(super) bus: Arc<dyn EventBus>,
    pub(super) metrics: Metrics,
    /// Signalled after a commit that wrote outbox messages.
    pub(super) outbox_ready: Notify,
    pub(super) limits: Limits,
    pub(super) claims: Claims,
    ingress_slots: Arc<Semaphore>,
    /// Places for workflow runs being driven (`max_workflow_runs`).
    pub(super) workflow_slots: Semaphore,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl std::fmt::Debug for RuntimeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHost")
            .field("served", &self.served())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RuntimeHost {
    /// Assembles a host serving `served` (built with `wiring`, its counters in `metrics`). Must
    /// be called inside a tokio runtime (it starts the state store's group-commit writer).
    pub(super) fn new(
        served: Served,
        wiring: Wiring,
        metrics: Metrics,
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        limits: Limits,
        claims: Claims,
    ) -> Self {
        Self {
            served: RwLock::new(Arc::new(served)),
            wiring: tokio::sync::Mutex::new(wiring),
            runs: Runs::default(),
            committer: GroupCommitter::start(Arc::clone(&store)),
            store,
            bus,
            metrics,
            outbox_ready: Notify::new(),
            limits,
            claims,
            ingress_slots: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            workflow_slots: Semaphore::new(limits.max_workflow_runs.max(1)),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// Routes `request` to its node in the set served now (kept to the reply, whatever is
    /// reloaded meanwhile) and returns the reply; counts it in the metrics. With tracing on, the
    /// envelope gets a span of its own (see [`crate::telemetry::span`]).
    pub async fn handle(self: &Arc<Self>, mut request: Envelope) -> Envelope {
        if !crate::telemetry::enabled() {
            return self.handle_kept(&mut Arc::new(request)).await;
        }
        let name = format!("envelope {}", request.operation);
        let cx = span::start_for(&mut request, name, SpanKind::Internal);
        let reply = self.route(&Arc::new(request)).with_context(cx.clone()).await;
        span::end_with_reply(&cx, &reply);
        reply
    }

    /// [`Self::handle`] on a request the caller keeps, to try it again, and shares with the
    /// node's stack: not copied when tracing is off (it only gains the traceparent `handle`
    /// would give it, the same every time).
    pub(super) async fn handle_kept(self: &Arc<Self>, request: &mut Arc<Envelope>) -> Envelope {
        if crate::telemetry::enabled() {
            // Each attempt's span is a child of the request's own parent, not of the last attempt.
            return Box::pin(self.handle(Envelope::clone(request))).await;
        }
        if request.metadata.traceparent.is_none() {
            let minted = traceparent(request);
            Arc::make_mut(request).metadata.traceparent = Some(minted);
        }
        self.route(request).await
    }

    async fn route(self: &Arc<Self>, request: &Arc<Envelope>) -> Envelope {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let served = self.served();
        let prefix = request.operation.split_once('.').map_or(request.operation.as_str(), |(p, _)| p);
        let reply = if served.reducers.serves(prefix) {
            let reply = served.reducers.apply(&*self.store, &self.committer, request).await;
            // Only a commit that wrote outbox messages gives the relay something to publish.
            let wrote_outbox = reply.payload.get("intents").and_then(Json::as_array).is_some_and(|i| !i.is_empty());
            if reply.success == Some(true) && wrote_outbox {
                self.outbox_ready.notify_one();
            }
            reply
        } else if prefix == INTENT_PREFIX {
            served.orchestrator.start(self, request).await
        } else {
            match served.dispatcher.kind_of(request) {
                RouteKind::Compute => self.compute(&served.dispatcher, request).await,
                RouteKind::Recorded => super::effects::dispatch_recorded(self, &served.dispatcher, request).await,
                RouteKind::Direct => served.dispatcher.dispatch(request).await,
            }
        };
        let success = reply.success == Some(true);
        match served.counters(&request.operation) {
            Some(counters) => counters.observe(success, started.elapsed()),
            None => self.metrics.refused(reply.error.as_ref().map_or("", |e| e.code.as_str())),
        }
        if let Some(error) = &reply.error {
            tracing::warn!(envelope_id = %request.envelope_id, operation = %request.operation,
                code = %error.code, "{}", error.message);
        }
        reply
    }

    /// Runs a compute node and publishes what it emitted before answering: a success reply means
    /// the events are on the bus. When they cannot be published, the reply is a retryable error
    /// (the bus redelivers the request; the events' ids are the same on every attempt).
    async fn compute(&self, dispatcher: &super::Dispatcher, request: &Arc<Envelope>) -> Envelope {
        let (reply, events) = dispatcher.dispatch_compute(request).await;
        for message in events {
            if let Err(e) = self.bus.publish(message).await {
                let context =
                    format!("envelope {}: publishing what `{}` emitted", request.envelope_id, request.operation);
                return super::wire::fail(request, super::wire::spi_reply_error(&e, &context));
            }
        }
        reply
    }

    /// [`RuntimeHost::handle`] as a boxed future, for callers that the host itself spawns
    /// (workflow steps), which would otherwise make the future type recursive.
    pub fn handle_boxed(host: Arc<Self>, request: Envelope) -> Pin<Box<dyn Future<Output = Envelope> + Send>> {
        Box::pin(async move { host.handle(request).await })
    }

    /// Marks start-up complete: handlers initialised, consumer and relay running.
    pub(super) fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Ready to serve: started, not draining, the bus is healthy and the state store answers
    /// (within [`READY_PROBE_TIMEOUT`]).
    pub async fn is_ready(&self) -> bool {
        if !self.ready.load(Ordering::Acquire) || self.is_draining() {
            return false;
        }
        let store = tokio::time::timeout(READY_PROBE_TIMEOUT, self.store.health());
        matches!(self.bus.health().await, onex_spi::Health::Healthy)
            && matches!(store.await, Ok(onex_spi::Health::Healthy))
    }

    /// A slot for one envelope taken in over HTTP, or `None` when `max_in_flight` are already
    /// being processed.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.ingress_slots).try_acquire_owned().ok()
    }

    /// Whether the host stopped taking new envelopes.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stops taking new envelopes (ingress answers 503, the consumer stops reading).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The limits applied to input.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The state store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The contract set served now: its routes, machines and workflows. A caller holding it
    /// keeps that set, whatever is reloaded meanwhile.
    pub fn served(&self) -> Arc<Served> {
        Arc::clone(&self.served.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves `next` from now on: envelopes arriving after this take it, those in flight finish
    /// on the set they took.
    pub(super) fn replace_served(&self, next: Served) {
        *self.served.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// The stored state of an entity: `Some((state, version))`, or the machine's initial state
    /// with version 0 for an entity never seen; `None` when no reducer serves `fsm`.
    pub async fn entity_state(&self, fsm: &str, key: &str) -> Result<Option<(String, u64)>, onex_spi::SpiError> {
        let served = self.served();
        let Some(initial) = served.reducers.initial_state(fsm) else { return Ok(None) };
        Ok(Some(match self.store.load_state(fsm, key).await? {
            Some(s) => (s.state, s.version),
            None => (initial.to_owned(), 0),
        }))
    }

    /// A workflow run with its steps and journal.
    pub async fn workflow_run(&self, run_id: Uuid) -> Result<Option<Json>, onex_spi::SpiError> {
        self.served().orchestrator.view(self, run_id).await
    }

    /// The latest `limit` workflow runs, newest first, each as [`Self::workflow_run`] shows it.
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<Json>, onex_spi::SpiError> {
        let served = self.served();
        let mut views = Vec::new();
        for record in self.store.recent_runs(limit).await? {
            views.push(served.orchestrator.view_of(self, record).await?);
        }
        Ok(views)
    }

    /// Every state machine of `served` with the number of entities in each state.
    pub async fn machines<'a>(&self, served: &'a Served) -> Result<Vec<Machine<'a>>, onex_spi::SpiError> {
        let mut machines = Vec::new();
        for (node, fsm) in served.reducers.machines() {
            let counts = self.store.state_counts(&fsm.name).await?.into_iter().collect();
            machines.push(Machine { node, fsm, counts });
        }
        Ok(machines)
    }

    /// This host's claims (its name in the store, lease durations).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Metrics as Prometheus text, with gauges read now.
    pub async fn render_metrics(&self) -> String {
        let outbox_backlog = self.store.outbox_backlog().await.unwrap_or(0);
        let rows = self.store.row_counts().await.ok();
        let served = self.served();
        let dispatcher = &served.dispatcher;
        let mut stacks = Vec::new();
        for op in dispatcher.operations() {
            let Some((node, stack)) = dispatcher.stack(op) else { continue };
            if stacks.iter().any(|s: &StackGauges| s.node == node) {
                continue;
            }
            let breaker = stack.breaker_state().map(|s| match s {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            });
            use std::sync::atomic::Ordering::Relaxed;
            stacks.push(StackGauges {
                node: node.to_owned(),
                breaker,
                retries: stack.stats.retries.load(Relaxed),
                rejected_open: stack.stats.rejected_open.load(Relaxed),
                timeouts: stack.stats.timeouts.load(Relaxed),
            });
        }
        let unbound = dispatcher.unbound().clone();
        let dropped_intents = served.reducers.dropped_intents();
        let bus = self.bus.figures();
        self.metrics.render(&Gauges { outbox_backlog, stacks, rows, unbound, dropped_intents, bus })
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use onex_core::envelope::Envelope;
    use uuid::Uuid;

    #[test]
    fn a_trace_started_for_an_envelope_is_its_correlation_id_and_half_its_id() {
        let id = Uuid::parse_str("0af76519-16cd-43dd-8448-eb211c80319c").unwrap();
        let mut request = Envelope::request(id, "local.echo", serde_json::json!({}), DateTime::UNIX_EPOCH);
        request.correlation_id = Uuid::parse_str("4bf92f35-77b3-4da6-a3ce-929d0e0e4736").unwrap();
        assert_eq!(super::traceparent(&request), "00-4bf92f3577b34da6a3ce929d0e0e4736-0af7651916cd43dd-01");
    }
}
