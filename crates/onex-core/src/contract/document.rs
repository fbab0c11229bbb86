//! Loading one contract file: detect what kind of document it is, decode and validate it.

use super::decode::{Cx, Decode, parse_source};
use super::diagnostic::{ContractErrors, Diagnostic, Loaded};
use super::fsm::FsmContract;
use super::handler_contract::HandlerContract;
use super::include::{self, IncludeSource, NoIncludes};
use super::node::NodeContract;
use super::runtime::RuntimeConfig;
use super::runtime_upstream::{MARKERS, decode_upstream_runtime};
use super::workflow::WorkflowDefinition;
use super::workflow_contract::WorkflowContract;
use crate::error::codes;
use crate::yaml::{Node, Value};

/// Any document found under `contracts/`.
#[derive(Debug, Clone, PartialEq)]
pub enum ContractDocument {
    /// A node contract (`node_type` present).
    Node(Box<NodeContract>),
    /// A bare FSM subcontract (the seed's standalone FSM files).
    Fsm(Box<FsmContract>),
    /// A bare workflow definition.
    Workflow(Box<WorkflowDefinition>),
    /// The runtime configuration (this host's form or the Python runtime's).
    Runtime(Box<RuntimeConfig>),
    /// A handler contract: handler classes and the jobs they do.
    Handler(Box<HandlerContract>),
    /// An upstream event-chain workflow (`node_type: workflow`).
    WorkflowContract(Box<WorkflowContract>),
}

fn top_keys(node: &Node) -> Vec<&str> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, _)| match &k.value {
                Value::Scalar { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn decode_with<T>(
    source: &str,
    bytes: &[u8],
    includes: &dyn IncludeSource,
    decode: impl FnOnce(&mut Cx, &Node) -> Option<T>,
) -> (Cx, Option<T>) {
    let mut cx = Cx::new(source);
    let value = parse_source(&mut cx, bytes).and_then(|(mut node, _)| {
        include::resolve(&mut cx, &mut node, includes);
        decode(&mut cx, &node)
    });
    (cx, value)
}

fn load_with<T>(
    source: &str,
    bytes: &[u8],
    decode: impl FnOnce(&mut Cx, &Node) -> Option<T>,
) -> Result<Loaded<T>, ContractErrors> {
    let (cx, value) = decode_with(source, bytes, &NoIncludes, decode);
    cx.finish(value)
}

/// Checks any contract document and returns everything found: the document as far as it could
/// be decoded (present even with errors, so cross-file checks can still run on it) and every
/// diagnostic. Use [`load_document`] to get a document only when it is valid. An `!include`
/// is refused; [`check_document_with`] resolves them.
pub fn check_document(source: &str, bytes: &[u8]) -> (Option<ContractDocument>, Vec<Diagnostic>) {
    check_document_with(source, bytes, &NoIncludes)
}

/// [`check_document`], resolving `!include` through `includes`.
pub fn check_document_with(
    source: &str,
    bytes: &[u8],
    includes: &dyn IncludeSource,
) -> (Option<ContractDocument>, Vec<Diagnostic>) {
    let (cx, value) = decode_with(source, bytes, includes, decode_document);
    cx.into_parts(value)
}

/// Loads any contract document, telling its kind from its top-level keys.
pub fn load_document(source: &str, bytes: &[u8]) -> Result<Loaded<ContractDocument>, ContractErrors> {
    load_with(source, bytes, decode_document)
}

fn decode_document(cx: &mut Cx, node: &Node) -> Option<ContractDocument> {
    let keys = top_keys(node);
    let has = |k: &str| keys.contains(&k);
    let node_type = super::fields::value_of(node, "node_type").and_then(|n| match &n.value {
        Value::Scalar { text, .. } => Some(text.to_ascii_lowercase()),
        _ => None,
    });
    if node_type.as_deref() == Some("workflow") {
        WorkflowContract::decode(cx, node, "").map(|w| ContractDocument::WorkflowContract(Box::new(w)))
    } else if has("node_type") {
        NodeContract::decode(cx, node, "").map(|n| ContractDocument::Node(Box::new(n)))
    } else if has("handler_id") {
        HandlerContract::decode(cx, node, "").map(|h| ContractDocument::Handler(Box::new(h)))
    } else if has("state_machine_name") || (has("states") && has("transitions")) {
        FsmContract::decode(cx, node, "").map(|f| ContractDocument::Fsm(Box::new(f)))
    } else if has("workflow_metadata") {
        WorkflowDefinition::decode(cx, node, "").map(|w| ContractDocument::Workflow(Box::new(w)))
    } else if has("bus") || has("state_store") || has("runtime_name") || has("admin_addr") {
        RuntimeConfig::decode(cx, node, "").map(|r| ContractDocument::Runtime(Box::new(r)))
    } else if MARKERS.iter().any(|k| has(k)) {
        decode_upstream_runtime(cx, node, "").map(|r| ContractDocument::Runtime(Box::new(r)))
    } else {
        let found =
            if matches!(node.value, Value::Map(_)) { "a mapping without any of those keys" } else { node.type_name() };
        cx.error(
                codes::CONTRACT_UNKNOWN_KIND,
                node.pos,
                "",
                format!("not a contract: expected a mapping with `node_type` (node, or `workflow`), `handler_id` (handler contract), `state_machine_name` or `states`+`transitions` (FSM), `workflow_metadata` (workflow), `bus`/`state_store` (runtime config) or `input_topic`/`output_topic` (the Python runtime's config); found {found}"),
            );
        None
    }
}

/// Loads a node contract.
pub fn load_node_contract(source: &str, bytes: &[u8]) -> Result<Loaded<NodeContract>, ContractErrors> {
    load_with(source, bytes, |cx, node| NodeContract::decode(cx, node, ""))
}

/// Loads a bare FSM subcontract (either form).
pub fn load_fsm(source: &str, bytes: &[u8]) -> Result<Loaded<FsmContract>, ContractErrors> {
    load_with(source, bytes, |cx, node| FsmContract::decode(cx, node, ""))
}

/// Loads a bare workflow definition.
pub fn load_workflow(source: &str, bytes: &[u8]) -> Result<Loaded<WorkflowDefinition>, ContractErrors> {
    load_with(source, bytes, |cx, node| WorkflowDefinition::decode(cx, node, ""))
}

/// Loads the runtime configuration.
pub fn load_runtime_config(source: &str, bytes: &[u8]) -> Result<Loaded<RuntimeConfig>, ContractErrors> {
    load_with(source, bytes, |cx, node| RuntimeConfig::decode(cx, node, ""))
}
