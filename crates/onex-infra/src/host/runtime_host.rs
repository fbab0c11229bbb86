//! `RuntimeHost`: the one path every envelope takes, from the bus or from HTTP ingress.
//!
//! The operation's prefix picks the kind of node: a state machine's name goes to its reducer,
//! `intent` to the orchestrator that routes the intent, anything else to the effect node that
//! declares the operation (through its resilience stack). A reply always comes back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use onex_core::contract::ContractSet;
use onex_core::envelope::Envelope;
use onex_spi::{EventBus, Lease, StateStore};
use serde_json::Value as Json;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use super::commit::GroupCommitter;
use super::dispatch::RouteKind;
use super::metrics::{Gauges, Metrics, StackGauges};
use super::{Dispatcher, Orchestrator, Reducers};
use onex_core::resilience::BreakerState;

/// How long the readiness probe waits for the state store to answer.
pub const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The reserved operation prefix of intents.
pub const INTENT_PREFIX: &str = "intent";

/// A W3C `traceparent` for an envelope that arrived without one: the correlation id is the trace
/// id (so everything one request causes shares a trace), the envelope id's first half the span.
fn traceparent(request: &Envelope) -> String {
    let trace = request.correlation_id.simple().to_string();
    let span = request.envelope_id.simple().to_string();
    format!("00-{trace}-{}-01", &span[..16])
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
    pub(super) dispatcher: Dispatcher,
    pub(super) reducers: Reducers,
    pub(super) orchestrator: Orchestrator,
    pub(super) store: Arc<dyn StateStore>,
    committer: GroupCommitter,
    pub(super) bus: Arc<dyn EventBus>,
    pub(super) metrics: Metrics,
    /// Signalled after a commit that wrote outbox messages.
    pub(super) outbox_ready: Notify,
    pub(super) limits: Limits,
    pub(super) claims: Claims,
    ingress_slots: Arc<Semaphore>,
    /// The contract set it serves.
    contracts: Arc<ContractSet>,
    /// Places for workflow runs being driven (`max_workflow_runs`).
    pub(super) workflow_slots: Semaphore,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl std::fmt::Debug for RuntimeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHost")
            .field("dispatcher", &self.dispatcher)
            .field("reducers", &self.reducers)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RuntimeHost {
    /// Assembles a host; metrics are registered for every operation it can route. Must be called
    /// inside a tokio runtime (it starts the state store's group-commit writer).
    pub fn new(
        dispatcher: Dispatcher,
        reducers: Reducers,
        orchestrator: Orchestrator,
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        limits: Limits,
        claims: Claims,
    ) -> Self {
        let mut operations: Vec<(&str, String)> =
            dispatcher.operations().map(|op| (dispatcher.stack(op).map_or("", |(n, _)| n), op.to_owned())).collect();
        operations.extend(reducers.operations());
        operations.extend(orchestrator.operations());
        let metrics = Metrics::new(operations.iter().map(|(node, op)| (*node, op.as_str())));
        Self {
            dispatcher,
            reducers,
            orchestrator,
            committer: GroupCommitter::start(Arc::clone(&store)),
            store,
            bus,
            metrics,
            outbox_ready: Notify::new(),
            limits,
            claims,
            ingress_slots: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            workflow_slots: Semaphore::new(limits.max_workflow_runs.max(1)),
            contracts: Arc::default(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// Routes `request` to its node and returns the reply; counts it in the metrics.
    pub async fn handle(self: &Arc<Self>, mut request: Envelope) -> Envelope {
        let started = Instant::now();
        if request.metadata.traceparent.is_none() {
            request.metadata.traceparent = Some(traceparent(&request));
        }
        let _in_flight = self.metrics.in_flight();
        let prefix = request.operation.split_once('.').map_or(request.operation.as_str(), |(p, _)| p);
        let reply = if self.reducers.serves(prefix) {
            let reply = self.reducers.apply(&*self.store, &self.committer, &request).await;
            // Only a commit that wrote outbox messages gives the relay something to publish.
            let wrote_outbox = reply.payload.get("intents").and_then(Json::as_array).is_some_and(|i| !i.is_empty());
            if reply.success == Some(true) && wrote_outbox {
                self.outbox_ready.notify_one();
            }
            reply
        } else if prefix == INTENT_PREFIX {
            self.orchestrator.start(self, &request).await
        } else {
            match self.dispatcher.kind_of(&request) {
                RouteKind::Compute => self.compute(&request).await,
                RouteKind::Recorded => super::effects::dispatch_recorded(self, &request).await,
                RouteKind::Direct => self.dispatcher.dispatch(&request).await,
            }
        };
        let success = reply.success == Some(true);
        match self.metrics.operation(&request.operation) {
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
    async fn compute(&self, request: &Envelope) -> Envelope {
        let (reply, events) = self.dispatcher.dispatch_compute(request).await;
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

    /// The effect dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The stored state of an entity: `Some((state, version))`, or the machine's initial state
    /// with version 0 for an entity never seen; `None` when no reducer serves `fsm`.
    pub async fn entity_state(&self, fsm: &str, key: &str) -> Result<Option<(String, u64)>, onex_spi::SpiError> {
        let Some(initial) = self.reducers.initial_state(fsm) else { return Ok(None) };
        Ok(Some(match self.store.load_state(fsm, key).await? {
            Some(s) => (s.state, s.version),
            None => (initial.to_owned(), 0),
        }))
    }

    /// A workflow run with its steps and journal.
    pub async fn workflow_run(&self, run_id: Uuid) -> Result<Option<Json>, onex_spi::SpiError> {
        self.orchestrator.view(self, run_id).await
    }

    /// The latest `limit` workflow runs, newest first, each as [`Self::workflow_run`] shows it.
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<Json>, onex_spi::SpiError> {
        let mut views = Vec::new();
        for record in self.store.recent_runs(limit).await? {
            views.push(self.orchestrator.view_of(self, record).await?);
        }
        Ok(views)
    }

    /// Every reducer's state machine with the number of entities in each state.
    pub async fn machines(&self) -> Result<Vec<Machine<'_>>, onex_spi::SpiError> {
        let mut machines = Vec::new();
        for (node, fsm) in self.reducers.machines() {
            let counts = self.store.state_counts(&fsm.name).await?.into_iter().collect();
            machines.push(Machine { node, fsm, counts });
        }
        Ok(machines)
    }

    /// The contract set the host serves.
    pub fn contracts(&self) -> &ContractSet {
        &self.contracts
    }

    /// The host serving `contracts` (set once, by `start`).
    pub(super) fn with_contracts(mut self, contracts: Arc<ContractSet>) -> Self {
        self.contracts = contracts;
        self
    }

    /// This host's claims (its name in the store, lease durations).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Metrics as Prometheus text, with gauges read now.
    pub async fn render_metrics(&self) -> String {
        let outbox_backlog = self.store.outbox_backlog().await.unwrap_or(0);
        let rows = self.store.row_counts().await.ok();
        let mut stacks = Vec::new();
        for op in self.dispatcher.operations() {
            let Some((node, stack)) = self.dispatcher.stack(op) else { continue };
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
        let unbound = self.dispatcher.unbound().clone();
        let dropped_intents = self.reducers.dropped_intents();
        let bus = self.bus.figures();
        self.metrics.render(&Gauges { outbox_backlog, stacks, rows, unbound, dropped_intents, bus })
    }
}
