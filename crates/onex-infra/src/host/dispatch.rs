//! Dispatch: the runtime config and the contracts become started handlers and one resilience
//! stack per effect node; an envelope goes in, a reply envelope always comes out.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use onex_core::contract::{ContractSet, NodeKind, RuntimeConfig};
use onex_core::envelope::{Envelope, ReplyError};
use onex_core::error::codes;
use onex_spi::{Handler, HandlerInit, Health, SecretStore, SpiError};
use tower::ServiceExt;

use super::wire::fail;
use crate::ids::{new_uuid_v7, now_utc};
use crate::registry::Registry;
use crate::resilience::ResilienceStack;

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
}

/// Started handlers and the routes of every operation the effect nodes declare.
pub struct Dispatcher {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    routes: BTreeMap<String, Route>,
    /// Operations declared by a node whose handler is not running, and why.
    unavailable: BTreeMap<String, String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Builds and initialises every handler the runtime config enables and that the registry
    /// can build, and routes every operation of every effect node to its node's stack.
    pub async fn start(
        contracts: &ContractSet,
        config: &RuntimeConfig,
        registry: &Registry,
        secrets: Arc<dyn SecretStore>,
        data_dir: &Path,
    ) -> Result<Self, DispatchError> {
        let mut handlers: BTreeMap<String, Arc<dyn Handler>> = BTreeMap::new();
        for (handler_type, handler_config) in config.handlers.iter().filter(|(_, c)| c.enabled) {
            let Some(factory) = registry.factory(handler_type) else { continue };
            let init = HandlerInit {
                config: handler_config.config.clone(),
                secrets: Arc::clone(&secrets),
                data_dir: data_dir.to_path_buf(),
            };
            let failed = |source| DispatchError::Handler { handler_type: handler_type.clone(), source };
            let handler = factory.create(init).map_err(failed)?;
            handler.initialize().await.map_err(failed)?;
            handlers.insert(handler_type.clone(), handler);
        }
        let mut routes = BTreeMap::new();
        let mut unavailable = BTreeMap::new();
        for (name, (_, node)) in contracts.nodes.iter().filter(|(_, (_, n))| n.node_type == NodeKind::Effect) {
            // One stack per node: its operations share the breaker, limits and retry budget.
            let mut stack: Option<ResilienceStack> = None;
            for op in &node.io_operations {
                let handler_type = op.operation.split_once('.').map_or(op.operation.as_str(), |(h, _)| h);
                match handlers.get(handler_type) {
                    Some(handler) => {
                        let stack =
                            stack.get_or_insert_with(|| ResilienceStack::build(node, Arc::clone(handler))).clone();
                        let described = handler.describe();
                        let declared = described.operations.iter().find(|d| d.operation == op.operation);
                        let recorded = declared.is_none_or(|d| !d.idempotent);
                        let idempotency_header = op.idempotency_header.as_deref().map(Arc::from);
                        let route = Route { node: Arc::from(name.as_str()), stack, recorded, idempotency_header };
                        routes.entry(op.operation.clone()).or_insert(route);
                    }
                    None => {
                        let why = match config.handlers.get(handler_type) {
                            Some(c) if !c.enabled => {
                                format!("handler `{handler_type}` is disabled in the runtime config")
                            }
                            Some(_) => format!("handler `{handler_type}` is not built into this host"),
                            None => format!("handler `{handler_type}` is not configured in the runtime config"),
                        };
                        unavailable.insert(op.operation.clone(), why);
                    }
                }
            }
        }
        Ok(Self { handlers, routes, unavailable })
    }

    /// The operations this host serves.
    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The resilience stack serving `operation` (for metrics: breaker state, counters).
    pub fn stack(&self, operation: &str) -> Option<(&str, &ResilienceStack)> {
        self.routes.get(operation).map(|r| (&*r.node, &r.stack))
    }

    /// Whether the replies of `operation` are recorded (it is not idempotent).
    pub fn records_replies(&self, operation: &str) -> bool {
        self.routes.get(operation).is_some_and(|r| r.recorded)
    }

    /// Runs `request` through its node's stack and returns the reply: the handler's payload, or
    /// an error that names the envelope and operation.
    pub async fn dispatch(&self, request: &Envelope) -> Envelope {
        let Some(route) = self.routes.get(&request.operation) else {
            let message = match self.unavailable.get(&request.operation) {
                Some(why) => {
                    format!("envelope {}: `{}` cannot be served: {why}", request.envelope_id, request.operation)
                }
                None => format!("envelope {}: no node declares operation `{}`", request.envelope_id, request.operation),
            };
            return fail(request, ReplyError::new(codes::OPERATION_NOT_FOUND, message));
        };
        let mut call = request.clone();
        if let Some(header) = &route.idempotency_header {
            with_idempotency_header(&mut call, header);
        }
        match route.stack.service.clone().oneshot(call).await {
            Ok(payload) => request.reply_ok(new_uuid_v7(), payload, now_utc()),
            Err(e) => fail(request, e.to_reply_error()),
        }
    }

    /// Every handler's health.
    pub async fn health(&self) -> Vec<(String, Health)> {
        let mut out = Vec::with_capacity(self.handlers.len());
        for (name, handler) in &self.handlers {
            out.push((name.clone(), handler.health().await));
        }
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
