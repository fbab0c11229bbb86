//! `GET /v1/health/service/<name>?passing`: consulrs 0.1 has no `/health` endpoints, so this
//! one is declared as a rustify `Endpoint` and sent through consulrs' own executor (same
//! client, same token middleware), not through a second HTTP stack.

use consulrs::api::Features;
use consulrs::api::features::FeaturedEndpoint;
use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use rustify::errors::ClientError as RestError;
use serde::Deserialize;

/// The healthy instances of one service: entries whose checks (node checks included) all pass.
#[derive(Debug)]
pub struct PassingInstances {
    /// The service name (validated by the caller: non-empty, no `/`).
    pub service: String,
}

/// One entry of the answer (only the fields the handler reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceEntry {
    /// The node the instance runs on.
    pub node: NodeInfo,
    /// The instance.
    pub service: ServiceInfo,
}

/// The `Node` of an entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeInfo {
    /// The node's address, which an instance registered without one is reached at.
    #[serde(default)]
    pub address: String,
}

/// The `Service` of an entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceInfo {
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its address (empty: the node's).
    #[serde(default)]
    pub address: String,
    /// Its port.
    #[serde(default)]
    pub port: u16,
    /// Its tags (`null` when none).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl Endpoint for PassingInstances {
    type Response = Vec<ServiceEntry>;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("health/service/{}", self.service)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }

    fn query(&self) -> Result<Option<String>, RestError> {
        Ok(Some("passing=true".to_owned()))
    }
}

impl FeaturedEndpoint for PassingInstances {
    fn features(&self) -> Option<Features> {
        None
    }
}
