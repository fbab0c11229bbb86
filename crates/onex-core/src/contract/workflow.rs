//! Workflow definitions (orchestrators) and the intent routing table.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::decode::{Cx, Decode, decode_enum, index, join};
use super::fields::{Fields, value_of};
use super::version::VersionText;
use crate::workflow::{PlanError, plan};
use crate::yaml::{Node, Pos, Value};

/// How the steps of a wave are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    /// One step at a time, in dependency then declaration order.
    Sequential,
    /// Every step of a wave at once.
    Parallel,
    /// Like parallel; kept as its own mode for upstream compatibility.
    Batch,
}

decode_enum!(ExecutionMode, "execution_mode", {
    "sequential" => ExecutionMode::Sequential,
    "parallel" => ExecutionMode::Parallel,
    "batch" => ExecutionMode::Batch,
});

/// What to do when a step fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Fail the workflow; steps not started are skipped.
    Stop,
    /// Record the failure and go on; dependants still run.
    Continue,
    /// Run the step again up to `retry_count` times, then stop.
    Retry,
    /// Run the compensations of every completed step in reverse order, then fail.
    Compensate,
}

decode_enum!(ErrorAction, "error_action", {
    "stop" => ErrorAction::Stop,
    "continue" => ErrorAction::Continue,
    "retry" => ErrorAction::Retry,
    "compensate" => ErrorAction::Compensate,
});

/// The kind of node a step drives (informational; dispatch is by operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepType {
    /// An effect operation.
    Effect,
    /// A compute node.
    Compute,
    /// A reducer event.
    Reducer,
    /// A nested orchestrator.
    Orchestrator,
    /// Anything else.
    Custom,
}

decode_enum!(StepType, "step_type", {
    "effect" => StepType::Effect,
    "compute" => StepType::Compute,
    "reducer" => StepType::Reducer,
    "orchestrator" => StepType::Orchestrator,
    "custom" => StepType::Custom,
    "parallel" => StepType::Custom,
    "effect_generic" => StepType::Effect,
    "compute_generic" => StepType::Compute,
    "reducer_generic" => StepType::Reducer,
    "orchestrator_generic" => StepType::Orchestrator,
});

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    /// Unique step name.
    pub name: String,
    /// Upstream step id (UUID string); `depends_on` may use it instead of the name.
    pub step_id: Option<String>,
    /// What kind of node it drives.
    pub step_type: StepType,
    /// The operation dispatched for the step.
    pub operation: String,
    /// Static payload of the dispatched envelope.
    pub payload: Json,
    /// Steps that must finish first.
    pub depends_on: Vec<String>,
    /// Step timeout.
    pub timeout_ms: Option<u64>,
    /// Attempts after the first when `error_action` is `retry`.
    pub retry_count: u32,
    /// What a final failure does.
    pub error_action: ErrorAction,
    /// Operation that undoes the step, run when a later step compensates.
    pub compensation: Option<String>,
    /// Disabled steps are planned but never run.
    pub enabled: bool,
    /// Where declared.
    pub pos: Pos,
}

const STEP_IGNORED: &[&str] = &[
    "skip_on_failure",
    "continue_on_error",
    "max_retries",
    "priority",
    "order_index",
    "parallel_group",
    "max_parallel_instances",
    "correlation_id",
    "metadata",
];

impl Decode for StepDef {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let name = f.req(cx, "step_name");
        let step_id = f.opt(cx, "step_id");
        let step_type = f.or(cx, "step_type", StepType::Effect);
        let operation: Option<String> = f.req(cx, "operation");
        let payload = f.or(cx, "payload", Json::Null);
        let depends_on = f.or(cx, "depends_on", Vec::new());
        let timeout_ms = f.opt(cx, "timeout_ms");
        let retry_count = f.or(cx, "retry_count", 0);
        let error_action = f.or(cx, "error_action", ErrorAction::Stop);
        let compensation: Option<String> = f.opt(cx, "compensation");
        let enabled = f.or(cx, "enabled", true);
        f.descriptive(&["description", "version"]);
        f.ignored(cx, STEP_IGNORED);
        f.finish(cx);
        // Whether the operations are served is checked with the whole set (`ContractSet::build`):
        // a step may name an operation a node binds by name.
        Some(Self {
            name: name?,
            step_id,
            step_type,
            operation: operation?,
            payload,
            depends_on,
            timeout_ms,
            retry_count,
            error_action,
            compensation,
            enabled,
            pos: node.pos,
        })
    }
}

/// Workflow identity and execution settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowMetadata {
    /// Unique workflow name (the target of intent routes).
    pub workflow_name: String,
    /// Workflow version.
    pub workflow_version: String,
    /// Human description.
    pub description: Option<String>,
    /// How waves are run.
    pub execution_mode: ExecutionMode,
    /// Whole-workflow timeout.
    pub timeout_ms: Option<u64>,
}

impl Decode for WorkflowMetadata {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let workflow_name = f.req(cx, "workflow_name");
        let workflow_version = f.opt(cx, "workflow_version").map_or_else(|| "1.0.0".to_owned(), |v: VersionText| v.0);
        let description = f.opt(cx, "description");
        let execution_mode = f.or(cx, "execution_mode", ExecutionMode::Sequential);
        let timeout_ms = f.opt(cx, "timeout_ms");
        f.descriptive(&["version", "author", "tags", "created", "updated", "metadata"]);
        f.finish(cx);
        Some(Self { workflow_name: workflow_name?, workflow_version, description, execution_mode, timeout_ms })
    }
}

/// A workflow: metadata and a DAG of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDefinition {
    /// Identity and execution settings.
    pub metadata: WorkflowMetadata,
    /// Steps in declaration order.
    pub steps: Vec<StepDef>,
    /// Where declared.
    pub pos: Pos,
}

impl Decode for WorkflowDefinition {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let metadata = f.req(cx, "workflow_metadata");
        // Upstream workflows may give an `execution_graph` of nodes instead of `steps`.
        let from_graph = !f.has("steps") && f.has("execution_graph");
        let steps: Option<Vec<StepDef>> =
            if from_graph { f.req::<ExecutionGraph>(cx, "execution_graph").map(|g| g.0) } else { f.req(cx, "steps") };
        f.descriptive(&["version"]);
        f.ignored(cx, if from_graph { &["coordination_rules"] } else { &["execution_graph", "coordination_rules"] });
        f.finish(cx);
        let definition = Self { metadata: metadata?, steps: steps?, pos: node.pos };
        if let Err(errors) = plan(&definition) {
            let steps_path = join(path, "steps");
            for e in errors {
                let (pos, field) = match &e {
                    PlanError::Cycle { steps } | PlanError::DuplicateStep { steps } => {
                        step_site(node, &definition, steps.first(), &steps_path, None)
                    }
                    PlanError::UnknownDependency { step, dependency } => {
                        step_site(node, &definition, Some(step), &steps_path, Some(dependency))
                    }
                    PlanError::Empty | PlanError::UnexpectedOutcome { .. } => (node.pos, steps_path.clone()),
                };
                cx.error(crate::error::Classified::error_code(&e), pos, &field, e.to_string());
            }
        }
        Some(definition)
    }
}

/// Upstream's `execution_graph`: `nodes[{node_id, node_type, depends_on, step_config}]`, read
/// as steps. A node's operation is `step_config.operation`, else its `node_name`, else its id:
/// whatever names it, a handler bound to that name serves it.
struct ExecutionGraph(Vec<StepDef>);

impl Decode for ExecutionGraph {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let nodes: Vec<GraphNode> = f.or(cx, "nodes", Vec::new());
        f.descriptive(&["description", "version", "edges"]);
        f.finish(cx);
        Some(Self(nodes.into_iter().map(|n| n.0).collect()))
    }
}

struct GraphNode(StepDef);

impl Decode for GraphNode {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let node_id: Option<String> = f.req(cx, "node_id");
        let step_type = f.or(cx, "node_type", StepType::Custom);
        let node_name: Option<String> = f.opt(cx, "node_name");
        let depends_on = f.or(cx, "depends_on", Vec::new());
        let step_config = f.or(cx, "step_config", Json::Null);
        let timeout_ms = f.opt(cx, "timeout_ms");
        f.descriptive(&["description", "target_node_type", "contract_ref", "metadata", "tags", "name", "type"]);
        f.finish(cx);
        let node_id = node_id?;
        let configured = step_config.get("operation").and_then(Json::as_str).map(str::to_owned);
        let operation = configured.or(node_name).unwrap_or_else(|| node_id.clone());
        Some(Self(StepDef {
            name: node_id,
            step_id: None,
            step_type,
            operation,
            payload: step_config,
            depends_on,
            timeout_ms,
            retry_count: 0,
            error_action: ErrorAction::Stop,
            compensation: None,
            enabled: true,
            pos: node.pos,
        }))
    }
}

/// Where a plan error about step `name` points: the (last) step of that name, or the entry of its
/// `depends_on` naming `dependency`. Indices are the source's (steps that failed to decode are
/// not in `def`).
fn step_site(
    node: &Node,
    def: &WorkflowDefinition,
    name: Option<&String>,
    steps_path: &str,
    dependency: Option<&String>,
) -> (Pos, String) {
    let Some((i, step)) = name.and_then(|n| def.steps.iter().enumerate().rev().find(|(_, s)| &s.name == n)) else {
        return (def.pos, steps_path.to_owned());
    };
    let source = match value_of(node, "steps").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().enumerate().find(|(_, n)| n.pos == step.pos),
        _ => None,
    };
    let Some((i, step_node)) = source else { return (step.pos, index(steps_path, i)) };
    let here = index(steps_path, i);
    let entry = match (dependency, value_of(step_node, "depends_on").map(|n| &n.value)) {
        (Some(dep), Some(Value::Seq(items))) => {
            items.iter().enumerate().find(|(_, n)| matches!(&n.value, Value::Scalar { text, .. } if text == dep))
        }
        _ => None,
    };
    match entry {
        Some((j, n)) => (n.pos, index(&join(&here, "depends_on"), j)),
        None => (step.pos, here),
    }
}

/// The orchestrator's `workflow_coordination` section.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowCoordination {
    /// The workflow this orchestrator runs.
    pub workflow_definition: WorkflowDefinition,
    /// Intent type -> workflow name.
    pub intent_routing: BTreeMap<String, String>,
    /// Where the routing table is declared.
    pub routing_pos: Pos,
}

impl Decode for WorkflowCoordination {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let workflow_definition = f.req(cx, "workflow_definition");
        let routing_pos = f.node("intent_routing").map_or(f.pos, |n| n.pos);
        let intent_routing = f.or(cx, "intent_routing", BTreeMap::new());
        f.ignored(
            cx,
            &[
                "subcontract_version",
                "max_concurrent_workflows",
                "default_workflow_timeout_ms",
                "node_coordination_timeout_ms",
                "checkpoint_interval_ms",
                "auto_retry_enabled",
                "parallel_execution_enabled",
                "workflow_monitoring_enabled",
                "error_recovery_enabled",
                "load_balancing_enabled",
            ],
        );
        f.descriptive(&["version"]);
        f.finish(cx);
        Some(Self { workflow_definition: workflow_definition?, intent_routing, routing_pos })
    }
}
