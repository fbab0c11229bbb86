//! Reducers: an event envelope `<fsm>.<event>` moves one entity of a state machine; the new
//! state, the intents it emits and the reply are committed in one transaction (the outbox).
//!
//! The entity is named by the event's `payload.entity_key`. The stored reply is the envelope's
//! idempotency record: delivering the same envelope again returns it and changes nothing.
//! Concurrent events for one entity (HTTP ingress racing the bus) meet at the version check and
//! the loser steps again from the state the winner committed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use onex_core::contract::{ContractSet, NodeKind};
use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::{Classified, ErrorCategory, codes};
use onex_core::fsm::{FsmEngine, Intent, IntentPhase, StepResult};
use onex_spi::{CommitOutcome, EntityState, OutboundMessage, SpiError, StateStore, TransitionCommit};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use serde_json::{Value as Json, json};

use super::commit::GroupCommitter;
use super::wire::{fail, spi_reply_error, stored_reply, to_message};
use crate::ids::{new_uuid_v7, now_utc};
use crate::telemetry::span;

/// How many times a step is retried after losing a version race.
const CONFLICT_ATTEMPTS: u32 = 8;

/// One reducer node: its compiled machine and where its intents go.
#[derive(Debug)]
pub struct ReducerNode {
    /// Node name.
    pub node: String,
    engine: FsmEngine,
    /// Intent type -> topic: the node's `published_events`, then the request topic for intents
    /// an orchestrator routes.
    intent_topics: HashMap<String, String>,
}

/// Every reducer of the contract set, by state machine name.
#[derive(Debug, Default)]
pub struct Reducers {
    by_fsm: HashMap<String, ReducerNode>,
    /// Intents committed steps emitted that no topic takes (`validate` warns of each); shared
    /// with the reducers of a reloaded set.
    dropped: Arc<AtomicU64>,
}

impl Reducers {
    /// The reducer nodes of `set`. Intents a node declares in `published_events` go to that
    /// topic; undeclared intents that an orchestrator routes go to `request_topic`; others are
    /// not published (the contract does not say where they go).
    pub fn from_contracts(set: &ContractSet, request_topic: &str) -> Self {
        let routed: BTreeSet<&str> = set.intent_routes().into_keys().collect();
        let mut by_fsm = HashMap::new();
        for (name, (_, node)) in set.nodes.iter().filter(|(_, (_, n))| n.node_type == NodeKind::Reducer) {
            let Some(fsm) = &node.state_machine else { continue };
            let mut intent_topics: HashMap<String, String> =
                routed.iter().map(|intent| ((*intent).to_owned(), request_topic.to_owned())).collect();
            for event in &node.published_events {
                intent_topics.insert(event.event_type.clone(), event.topic.clone());
            }
            let reducer = ReducerNode { node: name.clone(), engine: FsmEngine::compile(fsm.clone()), intent_topics };
            by_fsm.insert(fsm.name.clone(), reducer);
        }
        Self { by_fsm, dropped: Arc::default() }
    }

    /// These reducers, counting dropped intents on from `previous`'s count (a reload).
    #[must_use]
    pub fn counting_on(mut self, previous: &Self) -> Self {
        self.dropped = Arc::clone(&previous.dropped);
        self
    }

    /// `(node, machine)` of every reducer, by machine name.
    pub fn machines(&self) -> Vec<(&str, &onex_core::contract::FsmContract)> {
        let mut machines: Vec<_> = self.by_fsm.values().map(|r| (r.node.as_str(), r.engine.contract())).collect();
        machines.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        machines
    }

    /// How many intents committed steps emitted that no orchestrator routes and no
    /// `published_events` entry declares (so nothing published them).
    pub fn dropped_intents(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether `fsm` is a state machine some reducer serves.
    pub fn serves(&self, fsm: &str) -> bool {
        self.by_fsm.contains_key(fsm)
    }

    /// `(node, operation)` for every event every reducer accepts.
    pub fn operations(&self) -> Vec<(&str, String)> {
        let mut ops = Vec::new();
        for (fsm, reducer) in &self.by_fsm {
            let triggers: BTreeSet<&str> =
                reducer.engine.contract().transitions.iter().map(|t| t.trigger.as_str()).collect();
            ops.extend(triggers.into_iter().map(|t| (reducer.node.as_str(), format!("{fsm}.{t}"))));
        }
        ops
    }

    /// The initial state of `fsm`.
    pub fn initial_state(&self, fsm: &str) -> Option<&str> {
        self.by_fsm.get(fsm).map(|r| r.engine.initial_state())
    }

    /// Applies event envelope `request` (operation `<fsm>.<event>`) and returns the reply.
    pub async fn apply(&self, store: &dyn StateStore, committer: &GroupCommitter, request: &Envelope) -> Envelope {
        let (fsm, event) = request.operation.split_once('.').unwrap_or((&request.operation, ""));
        let context = format!("envelope {} (`{}`)", request.envelope_id, request.operation);
        let Some(reducer) = self.by_fsm.get(fsm) else {
            let message = format!("{context}: no reducer serves state machine `{fsm}`");
            return fail(request, ReplyError::new(codes::OPERATION_NOT_FOUND, message));
        };
        let Some(entity_key) = request.payload.get("entity_key").and_then(Json::as_str) else {
            let message = format!(
                "{context}: payload.entity_key (a string) is required to address an entity of state machine `{fsm}`"
            );
            return fail(request, ReplyError::new(codes::FSM_ENTITY_KEY_MISSING, message));
        };
        // The idempotency record and the entity's state in one read.
        let mut current = match store.load_for_event(request.envelope_id, fsm, entity_key).await {
            Ok((Some(stored), _)) => return stored_reply(request, stored),
            Ok((None, current)) => Some(current),
            Err(e) => return fail(request, spi_reply_error(&e, &context)),
        };
        let step = Step { store, committer, reducer, request, fsm, event, entity_key, dropped: &self.dropped };
        let context = format!("{context}, entity `{entity_key}`");
        for _ in 0..CONFLICT_ATTEMPTS {
            // The first attempt steps from the state read with the record; a retry reads anew.
            let loaded = match current.take() {
                Some(state) => state,
                None => match store.load_state(fsm, entity_key).await {
                    Ok(state) => state,
                    Err(e) => return fail(request, spi_reply_error(&e, &context)),
                },
            };
            match step.attempt(loaded, &context).await {
                Attempt::Done(reply) => return *reply,
                Attempt::LostRace => continue,
                Attempt::Refused(refusal) => return record_refusal(store, request, refusal, &context).await,
            }
        }
        let message = format!("{context}: the entity kept changing; gave up after {CONFLICT_ATTEMPTS} attempts");
        fail(request, ReplyError::new(crate::error::codes::STATE_CONFLICT, message))
    }
}

/// Records a refusal as the envelope's final reply, so the same envelope delivered again after
/// the entity moved on gets the same refusal instead of applying then.
///
/// The record is written only if the envelope has none: a concurrent delivery of the same
/// envelope may have committed its transition after this one read the state (state and record
/// are written in one transaction, so that one's record is there), and then its reply is the
/// answer. When nothing can be recorded or read, the answer is a retryable store error: a
/// refusal that is not recorded is not final.
async fn record_refusal(store: &dyn StateStore, request: &Envelope, refusal: ReplyError, context: &str) -> Envelope {
    let reply = fail(request, refusal);
    let recorded = match serde_json::to_value(&reply) {
        Ok(json) => store.record_reply(request.envelope_id, &json).await,
        Err(e) => {
            return fail(
                request,
                ReplyError::new(codes::OPERATION_FAILED, format!("{context}: encoding the refusal: {e}")),
            );
        }
    };
    match recorded {
        Ok(true) => reply,
        Ok(false) => recorded_reply(store, request, context).await,
        Err(e) => fail(request, spi_reply_error(&e, &format!("{context}: recording the refusal"))),
    }
}

/// The reply recorded for `request`, which must exist; a retryable store error when it
/// cannot be read (never a reply made up here, which could report what did not happen).
async fn recorded_reply(store: &dyn StateStore, request: &Envelope, context: &str) -> Envelope {
    match store.processed_reply(request.envelope_id).await {
        Ok(Some(stored)) => stored_reply(request, stored),
        Ok(None) => {
            let message = format!("{context}: the envelope is recorded as processed, but its reply is not there yet");
            fail(request, ReplyError::new(crate::error::codes::STORE_UNAVAILABLE, message))
        }
        Err(e) => fail(request, spi_reply_error(&e, &format!("{context}: reading the recorded reply"))),
    }
}

/// What one load → step → commit attempt came to.
enum Attempt {
    /// The reply (committed, a duplicate's stored reply, or a store failure).
    Done(Box<Envelope>),
    /// The machine refused the event in the state read.
    Refused(ReplyError),
    /// Another commit changed the entity first: step again.
    LostRace,
}

/// One event applied to one entity.
struct Step<'a> {
    store: &'a dyn StateStore,
    committer: &'a GroupCommitter,
    reducer: &'a ReducerNode,
    request: &'a Envelope,
    fsm: &'a str,
    event: &'a str,
    entity_key: &'a str,
    /// The reducers' count of dropped intents.
    dropped: &'a AtomicU64,
}

impl Step<'_> {
    /// Steps the machine from `current` (the entity's state just read) and commits.
    async fn attempt(&self, current: Option<EntityState>, context: &str) -> Attempt {
        let Self { store, committer, reducer, request, fsm, event, entity_key, dropped: dropped_count } = *self;
        let (from, version) = match &current {
            Some(s) => (s.state.as_str(), Some(s.version)),
            None => (reducer.engine.initial_state(), None),
        };
        let (transition, to, intents) = match reducer.engine.step(from, event, &request.payload) {
            Err(e) => return Attempt::Refused(ReplyError::new(e.error_code(), format!("{context}: {e}"))),
            Ok(StepResult::Blocked { transition, condition, reason }) => {
                let message =
                    format!("{context}: transition `{transition}` refused by condition `{condition}`: {reason}");
                return Attempt::Refused(ReplyError::new(codes::FSM_GUARD_REFUSED, message));
            }
            Ok(StepResult::Moved { transition, to, intents }) => (transition, to, intents),
        };
        let new_version = version.map_or(1, |v| v + 1);
        let (outbox, published, dropped) = reducer.outbox(request, entity_key, intents);
        let mut payload = json!({
            "fsm": fsm, "entity_key": entity_key, "from_state": from, "to_state": to,
            "transition": transition, "version": new_version, "intents": published,
        });
        if !dropped.is_empty() {
            payload["dropped_intents"] = json!(dropped);
        }
        let reply = request.reply_ok(new_uuid_v7(), payload, now_utc());
        let commit = TransitionCommit {
            envelope_id: request.envelope_id,
            fsm: fsm.to_owned(),
            entity_key: entity_key.to_owned(),
            expected_version: version,
            state: to.to_owned(),
            outbox,
            reply: serde_json::to_value(&reply).unwrap_or(Json::Null),
        };
        let committed = if crate::telemetry::enabled() {
            let attributes = vec![
                KeyValue::new("onex.fsm", fsm.to_owned()),
                KeyValue::new("onex.entity_key", entity_key.to_owned()),
                KeyValue::new("onex.from_state", from.to_owned()),
                KeyValue::new("onex.to_state", to.to_owned()),
                KeyValue::new("onex.version", i64::try_from(new_version).unwrap_or(i64::MAX)),
            ];
            let cx = span::start(format!("reducer.commit {fsm}"), SpanKind::Internal, &Context::current(), attributes);
            let committed = committer.commit(commit).await;
            span::end(&cx, committed.as_ref().err().map(ToString::to_string));
            committed
        } else {
            committer.commit(commit).await
        };
        match committed {
            Ok(CommitOutcome::Committed { .. }) => {
                if !dropped.is_empty() {
                    dropped_count.fetch_add(dropped.len() as u64, Ordering::Relaxed);
                    tracing::warn!(envelope_id = %request.envelope_id, fsm, dropped = ?dropped,
                        "intents dropped: no orchestrator routes them and no published_events entry declares them");
                }
                Attempt::Done(Box::new(reply))
            }
            Ok(CommitOutcome::Duplicate) => Attempt::Done(Box::new(recorded_reply(store, request, context).await)),
            Err(e) if lost_race(&e) => Attempt::LostRace,
            Err(e) => Attempt::Done(Box::new(fail(request, spi_reply_error(&e, context)))),
        }
    }
}

impl ReducerNode {
    /// The intent envelopes of a step as outbox messages, the intent types published, and the
    /// intent types dropped (no topic takes them).
    fn outbox(
        &self,
        event: &Envelope,
        entity_key: &str,
        intents: &[Intent],
    ) -> (Vec<OutboundMessage>, Vec<String>, Vec<String>) {
        let mut outbox = Vec::new();
        let mut published = Vec::new();
        let mut dropped = Vec::new();
        for intent in intents.iter().filter(|i| i.phase != IntentPhase::Persist) {
            let Some(topic) = self.intent_topics.get(&intent.intent_type) else {
                dropped.push(intent.intent_type.clone());
                continue;
            };
            let payload = json!({
                "entity_key": entity_key, "fsm": intent.fsm, "from_state": intent.from_state,
                "to_state": intent.to_state, "phase": intent.phase, "config": intent.config,
                "event": event.operation,
            });
            let mut envelope =
                Envelope::request(new_uuid_v7(), format!("intent.{}", intent.intent_type), payload, now_utc());
            envelope.correlation_id = event.correlation_id;
            envelope.causation_id = Some(event.envelope_id);
            envelope.metadata = event.metadata.clone();
            envelope.source_node = Some(self.node.clone());
            outbox.push(to_message(topic.as_str(), Some(entity_key.to_owned()), &envelope));
            published.push(intent.intent_type.clone());
        }
        (outbox, published, dropped)
    }
}

/// Whether a failed commit should simply be stepped again: another commit changed the entity
/// first, or the database aborted this one for contention (a deadlock, a serialization
/// failure) and kept nothing of it.
fn lost_race(error: &SpiError) -> bool {
    error.category() == ErrorCategory::Conflict || error.code() == crate::error::codes::STORE_CONTENTION.as_str()
}
