//! A set of loaded contracts checked together: unique names, resolvable routes, operations and
//! handler names the host's registry can serve.

use std::collections::{BTreeMap, HashMap};

use super::decode::Cx;
use super::diagnostic::{ContractErrors, Loaded};
use super::document::ContractDocument;
use super::fsm::FsmContract;
use super::handler_contract::HandlerContract;
use super::node::{NodeContract, NodeKind, OperationBinding};
use super::runtime::RuntimeConfig;
use super::workflow::WorkflowDefinition;
use super::workflow_contract::WorkflowContract;
use crate::envelope::is_valid_operation;
use crate::error::codes;
use crate::yaml::Pos;

/// What the host's handler registry can serve, asked while checking a set (core knows no
/// registry; the host implements this over its own).
pub trait HandlerCatalogue {
    /// Whether a registered handler type provides `operation` (`handler.name`).
    fn provides(&self, operation: &str) -> bool;
    /// Whether a handler type (`db`) is registered.
    fn has_type(&self, handler_type: &str) -> bool;
    /// Whether a handler is registered under `name` (a custom handler, or the upstream name of a
    /// built-in such as `HandlerDb`).
    fn has_name(&self, name: &str) -> bool;
}

/// Everything under a contracts directory, validated as a whole.
#[derive(Debug, Clone, Default)]
pub struct ContractSet {
    /// Node contracts by name, with their source.
    pub nodes: BTreeMap<String, (String, NodeContract)>,
    /// Bare FSMs, with their source.
    pub fsms: Vec<(String, FsmContract)>,
    /// Bare workflows, with their source.
    pub workflows: Vec<(String, WorkflowDefinition)>,
    /// Handler contracts, with their source.
    pub handler_contracts: Vec<(String, HandlerContract)>,
    /// Upstream event-chain workflows (`node_type: workflow`), with their source.
    pub workflow_contracts: Vec<(String, WorkflowContract)>,
    /// The runtime configuration, if one was among the documents.
    pub runtime: Option<(String, RuntimeConfig)>,
}

/// Diagnostics gathered per source while checking a set.
#[derive(Default)]
struct Reports(HashMap<String, Cx>);

impl Reports {
    fn cx(&mut self, source: &str) -> &mut Cx {
        self.0.entry(source.to_owned()).or_insert_with(|| Cx::new(source))
    }

    /// The diagnostics of `node`'s source, which know the files it includes.
    fn of(&mut self, source: &str, node: &NodeContract) -> &mut Cx {
        self.0.entry(source.to_owned()).or_insert_with(|| {
            let mut cx = Cx::new(source);
            for file in &node.included {
                cx.add_source(file);
            }
            cx
        })
    }
}

impl ContractSet {
    /// Every workflow by name: those of orchestrator nodes and the bare ones.
    pub fn workflow_names(&self) -> impl Iterator<Item = &str> {
        let from_nodes = self
            .nodes
            .values()
            .filter_map(|(_, n)| n.workflow_coordination.as_ref())
            .map(|w| w.workflow_definition.metadata.workflow_name.as_str());
        from_nodes.chain(self.workflows.iter().map(|(_, w)| w.metadata.workflow_name.as_str()))
    }

    /// The combined intent routing table: intent type -> workflow name.
    pub fn intent_routes(&self) -> BTreeMap<&str, &str> {
        self.nodes
            .values()
            .filter_map(|(_, n)| n.workflow_coordination.as_ref())
            .flat_map(|w| w.intent_routing.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect()
    }

    /// Handler names the handler contracts give handler types: `HandlerDb` -> `db`.
    pub fn handler_aliases(&self) -> BTreeMap<&str, &str> {
        self.handler_contracts.iter().flat_map(|(_, h)| h.aliases()).collect()
    }

    /// Every handler name a node binds, with the nodes binding it.
    pub fn bound_handler_names(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, node) in self.nodes.values() {
            for name in node.handler_routing.iter().flat_map(|r| r.handler_names()) {
                out.entry(name).or_default().push(&node.name);
            }
        }
        out
    }

    /// Assembles and cross-checks documents against what `catalogue` (the host's registry) serves.
    pub fn build(
        documents: Vec<(String, ContractDocument)>,
        catalogue: &dyn HandlerCatalogue,
    ) -> Result<Loaded<ContractSet>, ContractErrors> {
        let mut reports = Reports::default();
        let set = Self::assemble(documents, &mut reports);
        set.check_operations(catalogue, &mut reports);
        set.check_steps_and_routes(catalogue, &mut reports);
        set.check_intents(&mut reports);
        let mut diagnostics: Vec<_> = Vec::new();
        for (_, cx) in reports.0 {
            match cx.finish(Some(())) {
                Ok(l) => diagnostics.extend(l.warnings),
                Err(e) => diagnostics.extend(e.diagnostics),
            }
        }
        diagnostics.sort_by(|a, b| (&a.source, a.pos).cmp(&(&b.source, b.pos)));
        if diagnostics.iter().any(|d| d.severity == super::Severity::Error) {
            Err(ContractErrors { diagnostics })
        } else {
            Ok(Loaded { value: set, warnings: diagnostics })
        }
    }

    fn assemble(documents: Vec<(String, ContractDocument)>, reports: &mut Reports) -> Self {
        let mut set = ContractSet::default();
        for (source, doc) in documents {
            match doc {
                ContractDocument::Node(node) => {
                    // A missing name was reported by the loader; do not report it again here.
                    if let Some((first, _)) = set.nodes.get(&node.name).filter(|_| !node.name.is_empty()) {
                        let message = format!("node name `{}` is already used by {first}", node.name);
                        reports.cx(&source).error(codes::DUPLICATE_NODE, node.pos, "name", message);
                        continue;
                    }
                    set.nodes.insert(node.name.clone(), (source, *node));
                }
                ContractDocument::Fsm(f) => set.fsms.push((source, *f)),
                ContractDocument::Workflow(w) => set.workflows.push((source, *w)),
                ContractDocument::Handler(h) => set.handler_contracts.push((source, *h)),
                ContractDocument::WorkflowContract(w) => set.workflow_contracts.push((source, *w)),
                ContractDocument::Runtime(r) => {
                    if let Some((first, _)) = &set.runtime {
                        let message = format!("a runtime config was already loaded from {first}");
                        reports.cx(&source).error(codes::CONTRACT_UNKNOWN_KIND, Pos::new(1, 1), "", message);
                        continue;
                    }
                    set.runtime = Some((source, *r));
                }
            }
        }
        set
    }

    fn check_operations(&self, catalogue: &dyn HandlerCatalogue, reports: &mut Reports) {
        // A handler bound by name is served when registered under that name, or when a handler
        // contract names it as doing the job of a registered handler type.
        let aliases = self.handler_aliases();
        let name_served =
            |name: &str| catalogue.has_name(name) || aliases.get(name).is_some_and(|ty| catalogue.has_type(ty));
        let mut served_by: HashMap<&str, &str> = HashMap::new();
        for (source, node) in self.nodes.values().filter(|(_, n)| n.node_type == NodeKind::Effect) {
            for (operation, pos) in node.operations() {
                let Some(first) = served_by.insert(operation, &node.name).filter(|first| *first != node.name) else {
                    continue;
                };
                served_by.insert(operation, first);
                if is_valid_operation(operation) && node.handler_routing.is_none() {
                    let message = format!("`{operation}` is already served by node `{first}`; one operation, one node");
                    reports.of(source, node).error(codes::OPERATION_DECLARED_TWICE, pos, "io_operations", message);
                } else {
                    // Upstream operations are per node (`health_check` in many): envelopes naming
                    // one go to the first node, unless `target_node` names another.
                    let message = format!(
                        "`{operation}` is also served by node `{first}`: an envelope naming it goes to `{first}` \
                         unless its `target_node` is `{}`",
                        node.name
                    );
                    reports.of(source, node).warn(codes::OPERATION_DECLARED_TWICE, pos, "io_operations", message);
                }
            }
        }
        for (source, node) in self.nodes.values() {
            for (operation, pos) in node.operations() {
                match node.binding(operation) {
                    OperationBinding::Prefix(ty) if catalogue.has_type(ty) && !catalogue.provides(operation) => {
                        let message = format!("handler `{ty}` has no operation `{operation}`");
                        reports.of(source, node).error(codes::UNKNOWN_OPERATION, pos, "io_operations", message);
                    }
                    OperationBinding::Prefix(ty) if !catalogue.has_type(ty) => {
                        let message = format!(
                            "no handler type `{ty}` is registered: `{operation}` answers OPERATION_NOT_FOUND until \
                             one is (or `handler_routing` binds it to a handler by name)"
                        );
                        reports.of(source, node).warn(codes::HANDLER_UNBOUND, pos, "io_operations", message);
                    }
                    OperationBinding::Named(name) if !name_served(name) => {
                        let message = format!(
                            "`{operation}` is bound to handler `{name}`, which is not registered: register a handler \
                             under that name; until then the node's operation answers OPERATION_NOT_FOUND"
                        );
                        reports.of(source, node).warn(codes::HANDLER_UNBOUND, pos, "handler_routing", message);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Warns of every FSM action whose intent nothing takes: no orchestrator routes it and the
    /// reducer's `published_events` do not declare it, so the host drops it when emitted.
    fn check_intents(&self, reports: &mut Reports) {
        let routed = self.intent_routes();
        for (source, node) in self.nodes.values().filter(|(_, n)| n.node_type == NodeKind::Reducer) {
            let Some(fsm) = &node.state_machine else { continue };
            let taken = |intent: &str| {
                routed.contains_key(intent) || node.published_events.iter().any(|e| e.event_type == intent)
            };
            let mut warn = |state: &str, action: &str, pos: Pos, field: &str| {
                let message = format!(
                    "state `{state}`: action `{action}` emits an intent that no orchestrator routes and no \
                     `published_events` entry declares; it is dropped (counted in onex_intents_dropped_total)"
                );
                reports.of(source, node).warn(codes::INTENT_DROPPED, pos, field, message);
            };
            for state in &fsm.states {
                for action in state.entry_actions.iter().chain(&state.exit_actions).filter(|a| !taken(a)) {
                    warn(&state.name, action, state.pos, "state_machine.states");
                }
            }
            for t in &fsm.transitions {
                for action in t.actions.iter().filter(|a| !taken(&a.name)) {
                    warn(&t.to, &action.name, action.pos, "state_machine.transitions");
                }
            }
        }
    }

    fn check_steps_and_routes(&self, catalogue: &dyn HandlerCatalogue, reports: &mut Reports) {
        let workflows: Vec<String> = self.workflow_names().map(str::to_owned).collect();
        let node_operations: Vec<&str> =
            self.nodes.values().flat_map(|(_, n)| n.operations().into_iter().map(|(op, _)| op)).collect();
        for (source, node) in self.nodes.values() {
            let Some(wc) = &node.workflow_coordination else { continue };
            for step in &wc.workflow_definition.steps {
                for op in std::iter::once(&step.operation).chain(&step.compensation) {
                    let field = "workflow_coordination.workflow_definition.steps";
                    let ty = op.split_once('.').map_or(op.as_str(), |(p, _)| p);
                    if node_operations.contains(&op.as_str()) {
                        continue;
                    } else if is_valid_operation(op) && catalogue.has_type(ty) {
                        if !catalogue.provides(op) {
                            let message = format!("step `{}`: handler `{ty}` has no operation `{op}`", step.name);
                            reports.of(source, node).error(codes::UNKNOWN_OPERATION, step.pos, field, message);
                        }
                    } else {
                        let message = format!(
                            "step `{}`: no node or registered handler serves `{op}`; the step fails with \
                             OPERATION_NOT_FOUND when run",
                            step.name
                        );
                        reports.of(source, node).warn(codes::HANDLER_UNBOUND, step.pos, field, message);
                    }
                }
            }
            for (intent, target) in &wc.intent_routing {
                if !workflows.contains(target) {
                    let message = format!(
                        "intent `{intent}` routes to `{target}`, which no contract defines (known: {})",
                        workflows.join(", ")
                    );
                    let field = "workflow_coordination.intent_routing";
                    reports.of(source, node).error(codes::WORKFLOW_UNKNOWN_ROUTE, wc.routing_pos, field, message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::load_document;

    /// A registry serving every operation and name.
    pub(crate) struct Everything;

    impl HandlerCatalogue for Everything {
        fn provides(&self, _: &str) -> bool {
            true
        }
        fn has_type(&self, _: &str) -> bool {
            true
        }
        fn has_name(&self, _: &str) -> bool {
            true
        }
    }

    fn node(name: &str) -> (String, ContractDocument) {
        let yaml = format!(
            "name: {name}\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: db.query\n"
        );
        (format!("{name}.yaml"), load_document(name, yaml.as_bytes()).unwrap().value)
    }

    #[test]
    fn one_operation_one_node() {
        let err = ContractSet::build(vec![node("a"), node("b")], &Everything).unwrap_err();
        let d = err.errors().next().unwrap();
        assert_eq!((d.code, d.source.as_str()), (codes::OPERATION_DECLARED_TWICE, "b.yaml"));
        assert!(d.message.contains("already served by node `a`"), "{}", d.message);
        assert!(ContractSet::build(vec![node("a")], &Everything).is_ok());
    }
}
