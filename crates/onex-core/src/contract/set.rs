//! A set of loaded contracts checked together: unique names, resolvable routes, known operations.

use std::collections::{BTreeMap, HashMap};

use super::decode::Cx;
use super::diagnostic::{ContractErrors, Loaded};
use super::document::ContractDocument;
use super::fsm::FsmContract;
use super::node::{NodeContract, NodeKind};
use super::runtime::RuntimeConfig;
use super::workflow::WorkflowDefinition;
use crate::error::codes;

/// Everything under a contracts directory, validated as a whole.
#[derive(Debug, Clone, Default)]
pub struct ContractSet {
    /// Node contracts by name, with their source.
    pub nodes: BTreeMap<String, (String, NodeContract)>,
    /// Bare FSMs, with their source.
    pub fsms: Vec<(String, FsmContract)>,
    /// Bare workflows, with their source.
    pub workflows: Vec<(String, WorkflowDefinition)>,
    /// The runtime configuration, if one was among the documents.
    pub runtime: Option<(String, RuntimeConfig)>,
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

    /// Assembles and cross-checks documents. `is_known_operation` answers whether a registered
    /// handler provides an operation (the host knows its registry; core does not).
    pub fn build(
        documents: Vec<(String, ContractDocument)>,
        is_known_operation: &dyn Fn(&str) -> bool,
    ) -> Result<Loaded<ContractSet>, ContractErrors> {
        let mut set = ContractSet::default();
        let mut cxs: HashMap<String, Cx> = HashMap::new();
        let mut report = |source: &str, f: &mut dyn FnMut(&mut Cx)| {
            let cx = cxs.entry(source.to_owned()).or_insert_with(|| Cx::new(source));
            f(cx);
        };
        for (source, doc) in documents {
            match doc {
                ContractDocument::Node(node) => {
                    // A missing name was reported by the loader; do not report it again here.
                    if let Some((first, _)) = set.nodes.get(&node.name).filter(|_| !node.name.is_empty()) {
                        let message = format!("node name `{}` is already used by {first}", node.name);
                        report(&source, &mut |cx| cx.error(codes::DUPLICATE_NODE, node.pos, "name", message.clone()));
                        continue;
                    }
                    set.nodes.insert(node.name.clone(), (source, *node));
                }
                ContractDocument::Fsm(f) => set.fsms.push((source, *f)),
                ContractDocument::Workflow(w) => set.workflows.push((source, *w)),
                ContractDocument::Runtime(r) => {
                    if let Some((first, _)) = &set.runtime {
                        let message = format!("a runtime config was already loaded from {first}");
                        report(&source, &mut |cx| {
                            cx.error(
                                codes::CONTRACT_UNKNOWN_KIND,
                                crate::yaml::Pos { line: 1, column: 1 },
                                "",
                                message.clone(),
                            )
                        });
                        continue;
                    }
                    set.runtime = Some((source, *r));
                }
            }
        }
        let workflows: Vec<String> = set.workflow_names().map(str::to_owned).collect();
        let mut served_by: HashMap<&str, &str> = HashMap::new();
        for (source, node) in set.nodes.values().filter(|(_, n)| n.node_type == NodeKind::Effect) {
            for op in &node.io_operations {
                match served_by.insert(&op.operation, &node.name) {
                    Some(first) if first != node.name => {
                        let message =
                            format!("`{}` is already served by node `{first}`; one operation, one node", op.operation);
                        report(source, &mut |cx| {
                            cx.error(codes::OPERATION_DECLARED_TWICE, op.pos, "io_operations", message.clone())
                        });
                    }
                    _ => {}
                }
            }
        }
        for (source, node) in set.nodes.values() {
            for op in &node.io_operations {
                if !is_known_operation(&op.operation) {
                    let message = format!("no registered handler provides `{}`", op.operation);
                    report(source, &mut |cx| {
                        cx.error(codes::UNKNOWN_OPERATION, op.pos, "io_operations", message.clone())
                    });
                }
            }
            let Some(wc) = &node.workflow_coordination else { continue };
            for step in &wc.workflow_definition.steps {
                for op in std::iter::once(&step.operation).chain(&step.compensation) {
                    if !is_known_operation(op) {
                        let message = format!("step `{}`: no registered handler provides `{op}`", step.name);
                        report(source, &mut |cx| {
                            cx.error(
                                codes::UNKNOWN_OPERATION,
                                step.pos,
                                "workflow_coordination.workflow_definition.steps",
                                message.clone(),
                            )
                        });
                    }
                }
            }
            for (intent, target) in &wc.intent_routing {
                if !workflows.contains(target) {
                    let message = format!(
                        "intent `{intent}` routes to `{target}`, which no contract defines (known: {})",
                        workflows.join(", ")
                    );
                    report(source, &mut |cx| {
                        cx.error(
                            codes::WORKFLOW_UNKNOWN_ROUTE,
                            wc.routing_pos,
                            "workflow_coordination.intent_routing",
                            message.clone(),
                        )
                    });
                }
            }
        }
        let mut diagnostics: Vec<_> = Vec::new();
        for (_, cx) in cxs {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::load_document;

    fn node(name: &str) -> (String, ContractDocument) {
        let yaml = format!(
            "name: {name}\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: db.query\n"
        );
        (format!("{name}.yaml"), load_document(name, yaml.as_bytes()).unwrap().value)
    }

    #[test]
    fn one_operation_one_node() {
        let err = ContractSet::build(vec![node("a"), node("b")], &|_| true).unwrap_err();
        let d = err.errors().next().unwrap();
        assert_eq!((d.code, d.source.as_str()), (codes::OPERATION_DECLARED_TWICE, "b.yaml"));
        assert!(d.message.contains("already served by node `a`"), "{}", d.message);
        assert!(ContractSet::build(vec![node("a")], &|_| true).is_ok());
    }
}
