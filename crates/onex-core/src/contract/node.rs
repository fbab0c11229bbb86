//! Node contracts: identity, events, I/O operations and resilience of one node.

use super::decode::{Cx, Decode, decode_enum};
use super::fields::Fields;
use super::fsm::FsmContract;
use super::resilience::Resilience;
use super::routing::{EventBusTopics, HandlerRouting};
use super::version::VersionText;
use super::workflow::WorkflowCoordination;
use crate::envelope::is_valid_operation;
use crate::error::codes;
use crate::yaml::{Node, Pos};

/// The four node kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// One I/O operation through a handler.
    Effect,
    /// A pure function of its input.
    Compute,
    /// A pure FSM step; state persisted by the host.
    Reducer,
    /// A declarative workflow.
    Orchestrator,
}

// Upstream's `*_GENERIC` spellings name the same four kinds.
decode_enum!(NodeKind, "node_type", {
    "effect" => NodeKind::Effect,
    "compute" => NodeKind::Compute,
    "reducer" => NodeKind::Reducer,
    "orchestrator" => NodeKind::Orchestrator,
    "effect_generic" => NodeKind::Effect,
    "compute_generic" => NodeKind::Compute,
    "reducer_generic" => NodeKind::Reducer,
    "orchestrator_generic" => NodeKind::Orchestrator,
});

/// A topic and the event type carried on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Topic name (`onex.<kind>.<producer>.<event>.v<N>`).
    pub topic: String,
    /// Event type (an FSM trigger, an intent type, ...).
    pub event_type: String,
    /// Where it was declared.
    pub pos: Pos,
}

impl Decode for EventSpec {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let topic: Option<String> = f.req(cx, "topic");
        let event_type = f.req(cx, "event_type");
        f.descriptive(&["description", "schema", "version"]);
        let topic_pos = f.pos_of("topic");
        f.finish(cx);
        if let Some(t) = &topic
            && let Err(e) = t.parse::<crate::topic::TopicName>()
        {
            cx.error(codes::CONTRACT_INVALID_VALUE, topic_pos, &super::decode::join(path, "topic"), e.to_string());
        }
        Some(Self { topic: topic?, event_type: event_type?, pos: node.pos })
    }
}

/// One I/O operation the node performs through a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct IoOperation {
    /// The operation: `handler.name` (bound to a built-in or registered handler type by its
    /// prefix), or any name the node's `handler_routing` binds to a handler by name.
    pub operation: String,
    /// Human description.
    pub description: Option<String>,
    /// Per-operation timeout overriding the node's.
    pub timeout_ms: Option<u64>,
    /// For `http.*` operations: a request header (e.g. `Idempotency-Key`) the host sets to the
    /// envelope id, so the receiving service can tell a redelivery from a new request.
    pub idempotency_header: Option<String>,
    /// Payload fields the operation reads (upstream's `input_fields`: names or field
    /// descriptions; informational).
    pub input_fields: Vec<serde_json::Value>,
    /// Reply fields it produces (upstream's `output_fields`; informational).
    pub output_fields: Vec<serde_json::Value>,
    /// Where it was declared.
    pub pos: Pos,
}

impl Decode for IoOperation {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        // Upstream's io model names it `operation`; a few files write `name`.
        let operation: Option<String> =
            if f.has("operation") || !f.has("name") { f.req(cx, "operation") } else { f.req(cx, "name") };
        let description = f.opt(cx, "description");
        let timeout_ms = f.opt(cx, "timeout_ms");
        let idempotency_header: Option<String> = f.opt(cx, "idempotency_header");
        let input_fields = f.or(cx, "input_fields", Vec::new());
        let output_fields = f.or(cx, "output_fields", Vec::new());
        f.descriptive(&["operation_type", "input_model", "output_model", "idempotent", "version"]);
        let header_pos = f.pos_of("idempotency_header");
        f.finish(cx);
        let operation = operation?;
        if let Some(header) = &idempotency_header {
            let field = super::decode::join(path, "idempotency_header");
            let token = !header.is_empty()
                && header.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !operation.starts_with("http.") {
                let message = format!("only http operations send headers; `{operation}` cannot carry `{header}`");
                cx.error(codes::CONTRACT_INVALID_VALUE, header_pos, &field, message);
            } else if !token {
                cx.error(codes::CONTRACT_INVALID_VALUE, header_pos, &field, format!("`{header}` is not a header name"));
            }
        }
        if operation.trim().is_empty() {
            cx.error(codes::CONTRACT_INVALID_VALUE, node.pos, &super::decode::join(path, "operation"), "is empty");
        }
        Some(Self {
            operation,
            description,
            timeout_ms,
            idempotency_header,
            input_fields,
            output_fields,
            pos: node.pos,
        })
    }
}

/// How one operation of a node reaches a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationBinding<'a> {
    /// `handler_routing` names the handler serving it.
    Named(&'a str),
    /// `handler.name`: the handler type registered under the prefix serves it.
    Prefix(&'a str),
    /// Neither: nothing can serve it (the Python runtime fails the same way when it is called).
    Unbound,
}

/// A node contract.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeContract {
    /// Unique node name (`name`, else upstream's `node_name` or `contract_name`).
    pub name: String,
    /// Version of the contract format.
    pub contract_version: String,
    /// Version of the node (optional upstream).
    pub node_version: Option<String>,
    /// Kind of node.
    pub node_type: NodeKind,
    /// Human description.
    pub description: Option<String>,
    /// Events the node consumes.
    pub consumed_events: Vec<EventSpec>,
    /// Events the node publishes.
    pub published_events: Vec<EventSpec>,
    /// Handler operations the node performs.
    pub io_operations: Vec<IoOperation>,
    /// Upstream's `event_bus`: topics the node subscribes and publishes to.
    pub event_bus: Option<EventBusTopics>,
    /// Upstream's `handler_routing`: operations and event models bound to handlers by name.
    pub handler_routing: Option<HandlerRouting>,
    /// Resilience around its handler calls.
    pub resilience: Resilience,
    /// The state machine (reducers only; `state_machine` or upstream's `state_transitions`).
    pub state_machine: Option<FsmContract>,
    /// The workflow and intent routing (orchestrators only).
    pub workflow_coordination: Option<WorkflowCoordination>,
    /// Where the document starts.
    pub pos: Pos,
    /// Files its source `!include`s: a `Pos::file` of n names `included[n - 1]`.
    pub included: Vec<String>,
}

/// Top-level keys of upstream node contracts that only describe the node: accepted silently.
const NODE_DESCRIPTIVE: &[&str] = &[
    "author",
    "tags",
    "metadata",
    "node_name",
    "contract_name",
    "node_id",
    "fingerprint",
    "golden_path",
    "created",
    "updated",
    "changelog",
    "documentation_url",
    "status",
];

/// Top-level keys upstream defines that this runtime accepts and does not act on (warnings).
const NODE_IGNORED: &[&str] = &[
    "input_model",
    "output_model",
    "dependencies",
    "feature_flags",
    "config",
    "capabilities",
    "descriptor",
    "handlers",
    "runtime_profiles",
    "error_handling",
    "health_check",
];

impl NodeContract {
    /// Every operation the node serves: its `io_operations`, then operations only its
    /// `handler_routing` names, each once.
    pub fn operations(&self) -> Vec<(&str, Pos)> {
        let mut out: Vec<(&str, Pos)> = self.io_operations.iter().map(|o| (o.operation.as_str(), o.pos)).collect();
        for route in self.handler_routing.iter().flat_map(|r| &r.handlers) {
            if let Some(op) = route.operation.as_deref()
                && !out.iter().any(|(o, _)| *o == op)
            {
                out.push((op, route.pos));
            }
        }
        out
    }

    /// The event models and event types the node's `handler_routing` routes to named handlers
    /// (`payload_type_match`), each once: an envelope whose `payload_type` or `event_type` is
    /// one of them is served by that route's handler.
    pub fn routed_messages(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for route in self.handler_routing.iter().flat_map(|r| &r.handlers) {
            for key in [&route.event_model, &route.event_type].into_iter().filter_map(|k| k.as_deref()) {
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
        out
    }

    /// How `operation` (or a routed event model or type) reaches a handler.
    pub fn binding<'a>(&'a self, operation: &'a str) -> OperationBinding<'a> {
        if let Some(name) = self.handler_routing.as_ref().and_then(|r| r.handler_for(operation)) {
            OperationBinding::Named(name)
        } else if is_valid_operation(operation) {
            OperationBinding::Prefix(operation.split_once('.').map_or(operation, |(p, _)| p))
        } else {
            OperationBinding::Unbound
        }
    }

    /// Topics the node consumes: `consumed_events` then `event_bus.subscribe_topics`, each once.
    pub fn subscribe_topics(&self) -> Vec<&str> {
        let declared = self.consumed_events.iter().map(|e| e.topic.as_str());
        dedup(declared.chain(self.event_bus.iter().flat_map(|b| b.subscribe_topics.iter().map(String::as_str))))
    }

    /// Topics the node publishes to: `published_events` then `event_bus.publish_topics`.
    pub fn publish_topics(&self) -> Vec<&str> {
        let declared = self.published_events.iter().map(|e| e.topic.as_str());
        dedup(declared.chain(self.event_bus.iter().flat_map(|b| b.publish_topics.iter().map(String::as_str))))
    }
}

/// The file name of `source` without directories and extension (`contract` for `a/contract.yaml`).
fn file_stem(source: &str) -> String {
    let mut parts = source.rsplit(['/', '\\']);
    let file = parts.next().unwrap_or(source);
    let stem = file.split_once('.').map_or(file, |(stem, _)| stem);
    // `nodes/node_x/contract.yaml` is the contract of `node_x`.
    match parts.next() {
        Some(dir) if stem == "contract" && !dir.is_empty() => dir.to_owned(),
        _ => stem.to_owned(),
    }
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

impl Decode for NodeContract {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        // Upstream files name the node in `name`, `node_name` or `contract_name`.
        let name_key = ["name", "node_name", "contract_name"].into_iter().find(|k| f.has(k));
        let name: Option<String> = match name_key {
            Some(key) => f.req(cx, key),
            // Upstream loads a contract without a name; it is then known by its file's name.
            None => {
                let stem = file_stem(cx.source());
                let message =
                    format!("no `name`, `node_name` or `contract_name`: the node is called `{stem}`, after its file");
                cx.warn(codes::CONTRACT_MISSING_FIELD, f.pos, "name", message);
                Some(stem)
            }
        };
        let contract_version: Option<VersionText> = f.req(cx, "contract_version");
        let node_version: Option<VersionText> = f.opt(cx, "node_version");
        let node_type: Option<NodeKind> = f.req(cx, "node_type");
        let description = f.opt(cx, "description");
        let consumed_events = f.or(cx, "consumed_events", Vec::new());
        let published_events = f.or(cx, "published_events", Vec::new());
        let io_operations: Vec<IoOperation> = f.or(cx, "io_operations", Vec::new());
        let event_bus = f.opt(cx, "event_bus");
        let handler_routing: Option<HandlerRouting> = f.opt(cx, "handler_routing");
        let resilience = f.or(cx, "resilience", Resilience::default());
        // `state_transitions` is upstream's alias of `state_machine`.
        let fsm_key =
            if f.has("state_transitions") && !f.has("state_machine") { "state_transitions" } else { "state_machine" };
        let state_machine: Option<FsmContract> = f.opt(cx, fsm_key);
        let workflow_coordination: Option<WorkflowCoordination> = f.opt(cx, "workflow_coordination");
        f.descriptive(NODE_DESCRIPTIVE);
        f.ignored(cx, NODE_IGNORED);
        let pos = f.pos;
        // (kind, section only that kind has, whether present, where written)
        let kind_rules = [
            (NodeKind::Reducer, fsm_key, "REDUCER"),
            (NodeKind::Orchestrator, "workflow_coordination", "ORCHESTRATOR"),
        ]
        .map(|(kind, key, kind_name)| (kind, key, kind_name, f.has(key), f.pos_of(key)));
        f.finish(cx);
        let node_type = node_type?;
        for (kind, key, kind_name, present, key_pos) in kind_rules {
            if present && node_type != kind {
                cx.error(
                    codes::CONTRACT_INVALID_VALUE,
                    key_pos,
                    key,
                    format!("`{key}` is only allowed on {kind_name} nodes"),
                );
            } else if !present && node_type == kind {
                // The Python runtime loads such a node (it wires its handlers by hand); here it
                // has nothing to run.
                let article = if kind == NodeKind::Reducer { "a" } else { "an" };
                let message =
                    format!("{article} {kind_name} node without `{key}` loads, but runs nothing on this host");
                cx.warn(codes::CONTRACT_MISSING_FIELD, pos, key, message);
            }
        }
        let routed = handler_routing.as_ref().is_some_and(|r| !r.handlers.is_empty());
        if node_type == NodeKind::Effect && io_operations.is_empty() && !routed {
            cx.warn(
                codes::CONTRACT_MISSING_FIELD,
                pos,
                "io_operations",
                "an EFFECT node without operations (in `io_operations` or `handler_routing`) loads, but serves nothing",
            );
        }
        // Missing scalars were reported; placeholders keep the cross-contract checks running.
        let contract = Self {
            name: name.unwrap_or_default(),
            contract_version: contract_version.map(|v| v.0).unwrap_or_default(),
            node_version: node_version.map(|v| v.0),
            node_type,
            description,
            consumed_events,
            published_events,
            io_operations,
            event_bus,
            handler_routing,
            resilience,
            state_machine,
            workflow_coordination,
            pos,
            included: cx.included().to_vec(),
        };
        for (operation, op_pos) in contract.operations() {
            if contract.binding(operation) == OperationBinding::Unbound {
                cx.warn(
                    codes::OPERATION_UNBOUND,
                    op_pos,
                    "io_operations",
                    format!(
                        "`{operation}` is bound to no handler: it is not `handler.name` and no `handler_routing` \
                         entry names it; calling it answers OPERATION_NOT_FOUND"
                    ),
                );
            }
        }
        Some(contract)
    }
}
