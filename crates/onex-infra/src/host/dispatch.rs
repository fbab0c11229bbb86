//! Dispatch: the runtime config and the contracts become started handlers and one resilience
//! stack per effect or compute node and handler; an envelope goes in, a reply envelope always
//! comes out. An operation reaches its handler by its prefix (`db.query` -> `db`) or by the
//! handler name the node's `handler_routing` gives it (`HandlerDb`, or a custom handler's).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use onex_core::contract::{ContractSet, NodeContract, NodeKind, OperationBinding, RuntimeConfig};
use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_spi::{Handler, HandlerInit, HandlerRegistry, Health, OutboundMessage, SecretStore, SpiError};
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use serde_json::Value as Json;
use uuid::Uuid;

use super::wire::{fail, to_message};
use crate::compute::{ComputeHandler, split_output};
use crate::ids::{new_uuid_v7, now_utc};
use crate::registry::Registry;
use crate::resilience::ResilienceStack;
use crate::telemetry::span;

/// Why the host could not start its handlers.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A handler enabled in the runtime config could not be built or initialised.
    #[error("handler `{handler_type}`: {source}")]
    Handler {
        /// The handler type.
        handler_type: String,
        /// Why.
        #[source]
        source: SpiError,
    },
}

/// Where an operation goes.
#[derive(Debug, Clone)]
struct Route {
    node: Arc<str>,
    stack: ResilienceStack,
    /// Whether replies are recorded: the operation is not idempotent (its handler says so), so
    /// running it twice for one envelope must be avoided.
    recorded: bool,
    /// The request header the contract asks to carry the envelope id (`http.*` only).
    idempotency_header: Option<Arc<str>>,
    /// For a compute node: event type -> topic of what it emits (its `published_events`).
    publishes: Option<Arc<BTreeMap<String, String>>>,
}

/// How the host serves an envelope the dispatcher routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A compute node: its emitted events are published before the reply.
    Compute,
    /// An effect that is not idempotent: its reply is recorded and replayed to duplicates.
    Recorded,
    /// An effect called directly.
    Direct,
}

/// Started handlers and the routes of every operation the effect and compute nodes declare.
pub struct Dispatcher {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    /// Each routed node's contract and its stacks by handler type: a reload keeps the stacks
    /// (breaker state, rate budget) of a node whose contract did not change.
    stacks: BTreeMap<String, (Arc<NodeContract>, BTreeMap<String, ResilienceStack>)>,
    /// Operation -> the first node (by name) serving it.
    routes: BTreeMap<String, Route>,
    /// node -> operation -> route, for envelopes whose `target_node` names one of several.
    by_node: BTreeMap<String, BTreeMap<String, Route>>,
    /// Operations declared by a node whose handler is not running, and why.
    unavailable: BTreeMap<String, String>,
    /// Handler names and types contracts bind that nothing serves here -> the nodes binding them.
    unbound: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("unbound", &self.unbound)
            .finish_non_exhaustive()
    }
}

/// The handler type an operation of `node` is bound to, and the name a contract used for it.
fn bound_type(
    node: &NodeContract,
    operation: &str,
    registry: &Registry,
    aliases: &BTreeMap<&str, &str>,
) -> Result<String, String> {
    match node.binding(operation) {
        OperationBinding::Prefix(ty) => Ok(ty.to_owned()),
        OperationBinding::Named(name) => registry
            .type_named(name)
            .or_else(|| aliases.get(name).map(|t| (*t).to_owned()))
            .ok_or_else(|| name.to_owned()),
        OperationBinding::Unbound => Err(operation.to_owned()),
    }
}

/// What a node serves here, each once: for an effect or compute node its declared operations
/// (and for a compute node the event types it consumes: it is called by the event it computes
/// on); for a reducer or orchestrator, which run their own logic, only the operations its
/// `handler_routing` binds by name; and for every node the event models and types its
/// `handler_routing` routes (`payload_type_match`).
fn served_keys(node: &NodeContract) -> Vec<String> {
    let mut keys: Vec<String> = match node.node_type {
        NodeKind::Effect | NodeKind::Compute => node.operations().into_iter().map(|(op, _)| op.to_owned()).collect(),
        NodeKind::Reducer | NodeKind::Orchestrator => {
            let routes = node.handler_routing.iter().flat_map(|r| &r.handlers);
            routes.filter_map(|r| r.operation.clone()).collect()
        }
    };
    let consumed =
        node.consumed_events.iter().filter(|_| node.node_type == NodeKind::Compute).map(|e| e.event_type.as_str());
    for key in consumed.chain(node.routed_messages()) {
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// The keys `request` is routed by, in order: its operation, then (a `ModelEventEnvelope`) its
/// `payload_type` and `event_type`.
fn routing_keys(request: &Envelope) -> impl Iterator<Item = &str> {
    let event = request.event.as_deref();
    let by_message = event.into_iter().flat_map(|e| [e.payload_type.as_deref(), e.event_type.as_deref()]).flatten();
    std::iter::once(request.operation.as_str()).chain(by_message)
}

impl Dispatcher {
    /// Builds and initialises every handler the runtime config enables, and every registered
    /// handler a contract binds by name that the config does not disable; routes every
    /// operation of every effect and compute node to its node's stack. Operations whose handler
    /// is missing are recorded with why, and their handler names reported as unbound.
    pub async fn start(
        contracts: &ContractSet,
        config: &RuntimeConfig,
        registry: &Registry,
        secrets: Arc<dyn SecretStore>,
        data_dir: &Path,
    ) -> Result<Self, DispatchError> {
        Self::build(contracts, config, registry, secrets, data_dir, None).await
    }

    /// The dispatcher of a reloaded contract set: this one's handlers are kept (only handlers
    /// the new set binds for the first time are started; none is stopped, so the last
    /// dispatcher shuts every one down), and so are the stacks of nodes whose contract did not
    /// change.
    pub async fn reload(
        &self,
        contracts: &ContractSet,
        config: &RuntimeConfig,
        registry: &Registry,
        secrets: Arc<dyn SecretStore>,
        data_dir: &Path,
    ) -> Result<Self, DispatchError> {
        Self::build(contracts, config, registry, secrets, data_dir, Some(self)).await
    }

    async fn build(
        contracts: &ContractSet,
        config: &RuntimeConfig,
        registry: &Registry,
        secrets: Arc<dyn SecretStore>,
        data_dir: &Path,
        previous: Option<&Self>,
    ) -> Result<Self, DispatchError> {
        let aliases = contracts.handler_aliases();
        let nodes: Vec<&NodeContract> = contracts.nodes.values().map(|(_, n)| n).collect();
        let mut wanted: BTreeMap<String, Json> =
            config.handlers.iter().filter(|(_, c)| c.enabled).map(|(ty, c)| (ty.clone(), c.config.clone())).collect();
        // A custom handler a contract binds by name starts without a runtime-config entry (with
        // no config); a built-in one is configured there, and is reported unavailable if not.
        for node in nodes.iter().filter(|n| n.node_type != NodeKind::Compute) {
            for op in served_keys(node) {
                if let OperationBinding::Named(_) = node.binding(&op)
                    && let Ok(ty) = bound_type(node, &op, registry, &aliases)
                    && !config.handlers.contains_key(&ty)
                    && crate::builtin::descriptor(&ty).is_none()
                    && registry.factory(&ty).is_some()
                {
                    wanted.entry(ty).or_insert(Json::Null);
                }
            }
        }
        let mut handlers: BTreeMap<String, Arc<dyn Handler>> = previous.map(|p| p.handlers.clone()).unwrap_or_default();
        for (handler_type, handler_config) in wanted {
            if handlers.contains_key(&handler_type) {
                continue;
            }
            let Some(factory) = registry.factory(&handler_type) else { continue };
            let init =
                HandlerInit { config: handler_config, secrets: Arc::clone(&secrets), data_dir: data_dir.to_path_buf() };
            let failed = |source| DispatchError::Handler { handler_type: handler_type.clone(), source };
            let handler = factory.create(init).map_err(failed)?;
            handler.initialize().await.map_err(failed)?;
            handlers.insert(handler_type, handler);
        }
        let mut this = Self {
            handlers,
            stacks: BTreeMap::new(),
            routes: BTreeMap::new(),
            by_node: BTreeMap::new(),
            unavailable: BTreeMap::new(),
            unbound: BTreeMap::new(),
        };
        for node in nodes {
            let kept = previous.and_then(|p| p.stacks.get(&node.name)).filter(|(contract, _)| **contract == *node);
            let stacks = kept.map(|(_, stacks)| stacks.clone()).unwrap_or_default();
            this.route_node(node, stacks, config, registry, &aliases);
        }
        // Handlers routed by event model (not by operation) are bound too: report those nobody
        // registered, whatever the node's kind.
        for (name, binders) in contracts.bound_handler_names() {
            if registry.type_named(name).is_none() && !aliases.contains_key(name) {
                let nodes = this.unbound.entry(name.to_owned()).or_default();
                nodes.extend(binders.iter().map(|n| (*n).to_owned()));
                nodes.sort();
                nodes.dedup();
            }
        }
        Ok(this)
    }

    /// Routes `node`'s operations, through `stacks` (by handler type) where given, else through
    /// stacks built now.
    fn route_node(
        &mut self,
        node: &NodeContract,
        mut stacks: BTreeMap<String, ResilienceStack>,
        config: &RuntimeConfig,
        registry: &Registry,
        aliases: &BTreeMap<&str, &str>,
    ) {
        // One stack per node and handler: its operations share the breaker, limits and budget.
        let contract = Arc::new(node.clone());
        let publishes: Arc<BTreeMap<String, String>> =
            Arc::new(node.published_events.iter().map(|e| (e.event_type.clone(), e.topic.clone())).collect());
        for op in served_keys(node) {
            let ty = match bound_type(node, &op, registry, aliases) {
                Ok(ty) => ty,
                Err(name) => {
                    let why = if name == op {
                        format!(
                            "node `{}` binds it to no handler (not `handler.name`, not in `handler_routing`)",
                            node.name
                        )
                    } else {
                        format!("node `{}` binds it to handler `{name}`, which is not registered", node.name)
                    };
                    self.unavailable.insert(op.clone(), why);
                    self.unbound.entry(name).or_default().push(node.name.clone());
                    continue;
                }
            };
            let target: Option<(Arc<dyn Handler>, bool)> = match node.node_type {
                NodeKind::Compute => registry.compute(&ty).map(|c| {
                    (Arc::new(ComputeHandler::new(Arc::clone(c), Arc::clone(&contract))) as Arc<dyn Handler>, true)
                }),
                _ => self.handlers.get(&ty).map(|h| (Arc::clone(h), false)),
            };
            let Some((handler, is_compute)) = target else {
                let why = match config.handlers.get(&ty) {
                    Some(c) if !c.enabled => format!("handler `{ty}` is disabled in the runtime config"),
                    _ if registry.factory(&ty).is_some() => {
                        format!("handler `{ty}` is not configured in the runtime config")
                    }
                    _ => format!("no handler `{ty}` is registered with this host"),
                };
                self.unavailable.insert(op.clone(), why);
                let named = match node.binding(&op) {
                    OperationBinding::Named(name) => name.to_owned(),
                    _ => ty.clone(),
                };
                self.unbound.entry(named).or_default().push(node.name.clone());
                continue;
            };
            let stack =
                stacks.entry(ty.clone()).or_insert_with(|| ResilienceStack::build(node, Arc::clone(&handler))).clone();
            let described = handler.describe();
            let declared = described.operations.iter().find(|d| d.operation == op);
            let idempotency_header = node
                .io_operations
                .iter()
                .find(|o| o.operation == op)
                .and_then(|o| o.idempotency_header.as_deref())
                .map(Arc::from);
            let route = Route {
                node: Arc::from(node.name.as_str()),
                stack,
                // A compute node is a pure function: running it twice is harmless.
                recorded: !is_compute && declared.is_none_or(|d| !d.idempotent),
                idempotency_header,
                publishes: is_compute.then(|| Arc::clone(&publishes)),
            };
            self.by_node.entry(node.name.clone()).or_default().insert(op.clone(), route.clone());
            self.routes.entry(op).or_insert(route);
        }
        for names in self.unbound.values_mut() {
            names.sort();
            names.dedup();
        }
        self.stacks.insert(node.name.clone(), (contract, stacks));
    }

    /// The operations this host serves.
    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The resilience stack serving `operation` (for metrics: breaker state, counters).
    pub fn stack(&self, operation: &str) -> Option<(&str, &ResilienceStack)> {
        self.routes.get(operation).map(|r| (&*r.node, &r.stack))
    }

    /// Handler names and types the contracts bind that nothing serves on this host, with the
    /// nodes binding each.
    pub fn unbound(&self) -> &BTreeMap<String, Vec<String>> {
        &self.unbound
    }

    /// The route of `request`, by the first of its [`routing_keys`] that is served: the node
    /// its `target_node` names, else the first node serving it.
    fn route(&self, request: &Envelope) -> Option<&Route> {
        routing_keys(request).find_map(|key| {
            let targeted = request.target_node.as_ref().and_then(|node| self.by_node.get(node)?.get(key));
            targeted.or_else(|| self.routes.get(key))
        })
    }

    /// How `request` is served: by a compute node, by an effect whose replies are recorded (it
    /// is not idempotent), or by an effect called directly (also when nothing serves it: the
    /// call answers OPERATION_NOT_FOUND).
    pub fn kind_of(&self, request: &Envelope) -> RouteKind {
        match self.route(request) {
            Some(r) if r.publishes.is_some() => RouteKind::Compute,
            Some(r) if r.recorded => RouteKind::Recorded,
            _ => RouteKind::Direct,
        }
    }

    /// Runs `request` through a compute node's stack: the reply, and the events it emitted as
    /// messages for the node's `published_events` topics (an event type the contract does not
    /// declare fails the call, naming it: nothing is dropped silently).
    pub async fn dispatch_compute(&self, request: &Arc<Envelope>) -> (Envelope, Vec<OutboundMessage>) {
        let reply = self.dispatch(request).await;
        let Some(route) = self.route(request) else { return (reply, Vec::new()) };
        let Some(publishes) = &route.publishes else { return (reply, Vec::new()) };
        if reply.success != Some(true) {
            return (reply, Vec::new());
        }
        let (result, events) = split_output(reply.payload.clone());
        let mut messages = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let Some(topic) = publishes.get(&event.event_type) else {
                let message = format!(
                    "envelope {}: `{}` emitted `{}`, which the node's `published_events` does not declare",
                    request.envelope_id, request.operation, event.event_type
                );
                return (fail(request, ReplyError::new(codes::OPERATION_FAILED, message)), Vec::new());
            };
            // The same id on every redelivery, so consumers can drop a republished event.
            let id = emitted_id(request.envelope_id, i);
            let mut envelope = Envelope::request(id, event.event_type.clone(), event.payload, now_utc());
            envelope.correlation_id = request.correlation_id;
            envelope.causation_id = Some(request.envelope_id);
            envelope.metadata.traceparent.clone_from(&request.metadata.traceparent);
            envelope.source_node = Some(route.node.to_string());
            messages.push(to_message(
                topic.as_str(),
                request.metadata.headers.get("partition_key").cloned(),
                &envelope,
            ));
        }
        (Envelope { payload: result, ..reply }, messages)
    }

    /// Runs `request` through its node's stack and returns the reply: the handler's payload, or
    /// an error that names the envelope and operation.
    pub async fn dispatch(&self, request: &Arc<Envelope>) -> Envelope {
        let Some(route) = self.route(request) else {
            let unavailable = routing_keys(request).find_map(|key| Some((key, self.unavailable.get(key)?)));
            let message = match unavailable {
                Some((key, why)) => format!("envelope {}: `{key}` cannot be served: {why}", request.envelope_id),
                None => format!(
                    "envelope {}: no node declares operation `{}`{}",
                    request.envelope_id,
                    request.operation,
                    not_routed(request)
                ),
            };
            return fail(request, ReplyError::new(codes::OPERATION_NOT_FOUND, message));
        };
        // Shared with the stack; copied only when a header or a span is added to it.
        let mut call = Arc::clone(request);
        if let Some(header) = &route.idempotency_header {
            with_idempotency_header(Arc::make_mut(&mut call), header);
        }
        let outcome = if crate::telemetry::enabled() {
            // The handler call is a span of its own; a handler's outgoing request carries it.
            let name = format!("handler {}", request.operation);
            let cx = span::start_for(Arc::make_mut(&mut call), name, SpanKind::Client);
            cx.span().set_attribute(KeyValue::new("onex.node", route.node.to_string()));
            let outcome = route.stack.call(call).with_context(cx.clone()).await;
            span::end(&cx, outcome.as_ref().err().map(|e| e.to_reply_error().to_text()));
            outcome
        } else {
            route.stack.call(call).await
        };
        match outcome {
            Ok(payload) => request.reply_ok(new_uuid_v7(), payload, now_utc()),
            Err(e) => fail(request, e.to_reply_error()),
        }
    }

    /// Every handler's health, checked at once; one without an answer within `deadline` is
    /// reported unhealthy (a hanging dependency cannot hold `/health/ready`).
    pub async fn health_within(&self, deadline: std::time::Duration) -> Vec<(String, Health)> {
        let mut checks = tokio::task::JoinSet::new();
        for (name, handler) in &self.handlers {
            let (name, handler) = (name.clone(), Arc::clone(handler));
            checks.spawn(async move {
                let health = match tokio::time::timeout(deadline, handler.health()).await {
                    Ok(health) => health,
                    Err(_) => Health::Unhealthy(format!("no answer within {} ms", deadline.as_millis())),
                };
                (name, health)
            });
        }
        let mut out = Vec::with_capacity(self.handlers.len());
        while let Some(joined) = checks.join_next().await {
            match joined {
                Ok(check) => out.push(check),
                Err(e) => tracing::warn!(error = %e, "a handler's health check panicked"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Shuts every handler down; returns the ones that failed to.
    pub async fn shutdown(&self) -> Vec<(String, SpiError)> {
        let mut failures = Vec::new();
        for (name, handler) in &self.handlers {
            if let Err(e) = handler.shutdown().await {
                failures.push((name.clone(), e));
            }
        }
        failures
    }
}

/// The id of the `index`-th event a computation emitted for `request`: derived from both (a
/// UUIDv8 of their BLAKE3 hash), so a redelivered request emits events with the same ids.
fn emitted_id(request: Uuid, index: usize) -> Uuid {
    let mut hasher = blake3::Hasher::new();
    hasher.update(request.as_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// What an OPERATION_NOT_FOUND message adds for a `ModelEventEnvelope`: the event model and
/// type it was looked up by too.
fn not_routed(request: &Envelope) -> String {
    let keys: Vec<String> = routing_keys(request).skip(1).map(|k| format!("`{k}`")).collect();
    if keys.is_empty() { String::new() } else { format!(", nor routes event {}", keys.join(" or ")) }
}

/// Sets `payload.headers[header]` to the envelope id unless the request sets it itself.
fn with_idempotency_header(request: &mut Envelope, header: &str) {
    let id = request.envelope_id.to_string();
    let Some(payload) = request.payload.as_object_mut() else { return };
    let headers = payload.entry("headers").or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(headers) = headers.as_object_mut()
        && !headers.keys().any(|k| k.eq_ignore_ascii_case(header))
    {
        headers.insert(header.to_owned(), serde_json::Value::String(id));
    }
}
