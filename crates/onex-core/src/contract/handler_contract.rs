//! Handler contracts (upstream's `contracts/handlers/*/handler_contract.yaml`): which handler
//! class does which job, and the operations it supports. Loaded so a team's handler names bind
//! to this host's handlers (`HandlerDb` is the built-in `db`).

use serde_json::Value as Json;

use super::decode::{Cx, Decode};
use super::fields::Fields;
use super::routing::HandlerRouting;
use super::version::VersionText;
use crate::yaml::{Node, Pos};

/// A handler contract.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerContract {
    /// `handler_id`, e.g. `effect.db.handler`.
    pub handler_id: String,
    /// The contract's name, e.g. `handler_db`.
    pub name: Option<String>,
    /// Version of the contract.
    pub contract_version: Option<String>,
    /// What the handler does.
    pub description: Option<String>,
    /// Upstream's descriptor (archetype, purity, idempotency, policies); informational.
    pub descriptor: Json,
    /// The handler classes and the handler type and operations each serves.
    pub handler_routing: Option<HandlerRouting>,
    /// Where the document starts.
    pub pos: Pos,
}

impl HandlerContract {
    /// `(handler name, handler type)` pairs: each handler class named here does the job of
    /// the handler type beside it (`("HandlerDb", "db")`).
    pub fn aliases(&self) -> Vec<(&str, &str)> {
        self.handler_routing
            .iter()
            .flat_map(|r| &r.handlers)
            .filter_map(|route| route.handler_type.as_deref().map(|ty| (route.handler.name.as_str(), ty)))
            .collect()
    }
}

impl Decode for HandlerContract {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let handler_id = f.req(cx, "handler_id");
        let name = f.opt(cx, "name");
        let contract_version: Option<VersionText> = f.opt(cx, "contract_version");
        let description = f.opt(cx, "description");
        let descriptor = f.or(cx, "descriptor", Json::Null);
        let handler_routing = f.opt(cx, "handler_routing");
        f.descriptive(&[
            "metadata",
            "tags",
            "author",
            "supports_health_check",
            "supports_lifecycle",
            "supports_provisioning",
        ]);
        f.ignored(
            cx,
            &["input_model", "output_model", "operation_bindings", "activation", "capability_outputs", "feature_flags"],
        );
        f.finish(cx);
        Some(Self {
            handler_id: handler_id?,
            name,
            contract_version: contract_version.map(|v| v.0),
            description,
            descriptor,
            handler_routing,
            pos: node.pos,
        })
    }
}
