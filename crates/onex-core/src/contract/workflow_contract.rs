//! Upstream's event-chain workflow documents (`node_type: workflow`): a command that starts the
//! chain, the event that ends it, and the handlers each event is routed to. They load (their
//! topics and handler names are checked like a node's); this host does not run them yet.

use super::decode::{Cx, Decode};
use super::fields::Fields;
use super::routing::{EventBusTopics, HandlerRouting};
use super::version::VersionText;
use crate::error::codes;
use crate::yaml::{Node, Pos};

/// A `node_type: workflow` document.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowContract {
    /// `workflow_id`.
    pub workflow_id: String,
    /// Version of the contract.
    pub contract_version: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// The command topic that starts the chain.
    pub initial_command: Option<String>,
    /// The event topic that ends it.
    pub terminal_event: Option<String>,
    /// Topics it subscribes and publishes to.
    pub event_bus: Option<EventBusTopics>,
    /// Which handler each event model goes to.
    pub handler_routing: Option<HandlerRouting>,
    /// Where the document starts.
    pub pos: Pos,
}

impl Decode for WorkflowContract {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let workflow_id = f.req(cx, "workflow_id");
        let contract_version: Option<VersionText> = f.opt(cx, "contract_version");
        let _node_type: Option<String> = f.opt(cx, "node_type");
        let description = f.opt(cx, "description");
        let initial_command = f.opt(cx, "initial_command");
        let terminal_event = f.opt(cx, "terminal_event");
        let event_bus = f.opt(cx, "event_bus");
        let handler_routing = f.opt(cx, "handler_routing");
        f.descriptive(&["name", "metadata", "tags", "author"]);
        f.ignored(cx, &["handler", "nodes", "event_flow", "feature_flags"]);
        f.finish(cx);
        cx.warn(
            codes::NOT_RUN,
            node.pos,
            "node_type",
            "a `node_type: workflow` event chain loads and is checked, but this host does not run it yet",
        );
        Some(Self {
            workflow_id: workflow_id?,
            contract_version: contract_version.map(|v| v.0),
            description,
            initial_command,
            terminal_event,
            event_bus,
            handler_routing,
            pos: node.pos,
        })
    }
}
