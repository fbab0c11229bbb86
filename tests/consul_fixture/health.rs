//! The fixture's catalog reads: `GET /v1/health/service/<name>` (`passing`, `tag`; entries of
//! `Node`, `Service` and `Checks` as Consul documents them) and `GET /v1/catalog/services`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::agent::{Check, Service};
use super::query::{Query, format_go_duration};
use super::{DATACENTER, FixtureState, NODE_ADDRESS, NODE_ID, NODE_NAME, Shared, blocking, json, refuse, text};

fn node_json() -> Json {
    json!({
        "ID": NODE_ID,
        "Node": NODE_NAME,
        "Address": NODE_ADDRESS,
        "Datacenter": DATACENTER,
        "TaggedAddresses": { "lan": NODE_ADDRESS, "lan_ipv4": NODE_ADDRESS, "wan": NODE_ADDRESS, "wan_ipv4": NODE_ADDRESS },
        "Meta": { "consul-network-segment": "" },
        "CreateIndex": 5,
        "ModifyIndex": 5,
    })
}

/// The node's own check, always passing on a live agent.
fn serf_health() -> Json {
    json!({
        "Node": NODE_NAME,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": 5,
        "ModifyIndex": 5,
    })
}

fn check_json(service: &Service, check: &Check) -> Json {
    json!({
        "Node": NODE_NAME,
        "CheckID": check.id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": service.id,
        "ServiceName": service.name,
        "ServiceTags": service.tags,
        "Type": "http",
        "Interval": format_go_duration(check.interval),
        "Timeout": format_go_duration(check.timeout),
        "ExposedPort": 0,
        "Definition": {
            "HTTP": check.http,
            "Method": "",
            "Header": null,
            "Body": "",
            "TLSServerName": "",
            "TLSSkipVerify": false,
            "TCP": "",
            "Interval": format_go_duration(check.interval),
            "Timeout": format_go_duration(check.timeout),
            "DeregisterCriticalServiceAfter": format_go_duration(check.deregister_after.unwrap_or_default()),
        },
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    })
}

/// A service as the catalog shows it.
struct Instance<'a> {
    id: &'a str,
    name: &'a str,
    tags: &'a [String],
    address: &'a str,
    port: u64,
    meta: Map<String, Json>,
    indexes: (u64, u64),
    checks: Vec<Json>,
}

/// Every instance, the agent's own `consul` service (server port 8300, no checks) first.
fn instances(state: &FixtureState) -> Vec<Instance<'_>> {
    let consul = Instance {
        id: "consul",
        name: "consul",
        tags: &[],
        address: "",
        port: 8300,
        meta: Map::new(),
        indexes: (6, 6),
        checks: Vec::new(),
    };
    let registered = state.services.values().map(|s| Instance {
        id: &s.id,
        name: &s.name,
        tags: &s.tags,
        address: &s.address,
        port: s.port,
        meta: s.meta.clone(),
        indexes: (s.create_index, s.modify_index),
        checks: s.checks.iter().map(|c| check_json(s, c)).collect(),
    });
    std::iter::once(consul).chain(registered).collect()
}

fn entry_json(instance: Instance<'_>) -> Json {
    let mut checks = instance.checks;
    checks.push(serf_health());
    json!({
        "Node": node_json(),
        "Service": {
            "Kind": "",
            "ID": instance.id,
            "Service": instance.name,
            "Tags": instance.tags,
            "Address": instance.address,
            "Meta": instance.meta,
            "Port": instance.port,
            "Weights": { "Passing": 1, "Warning": 1 },
            "EnableTagOverride": false,
            "Proxy": { "Mode": "", "MeshGateway": {}, "Expose": {} },
            "Connect": {},
            "PeerName": "",
            "CreateIndex": instance.indexes.0,
            "ModifyIndex": instance.indexes.1,
        },
        "Checks": checks,
    })
}

fn all_passing(entry: &Json) -> bool {
    entry["Checks"].as_array().is_some_and(|checks| checks.iter().all(|c| c["Status"] == "passing"))
}

/// `GET /v1/health/service/<name>` (`passing`, `tag`; blocking).
pub async fn service(shared: &Shared, name: &str, query: &Query) -> Response {
    let passing = match query.flag("passing") {
        Ok(passing) => passing,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let tags: Vec<String> = query.all("tag").into_iter().map(str::to_owned).collect();
    let read = |state: &FixtureState| {
        let entries: Vec<Json> = instances(state)
            .into_iter()
            .filter(|i| i.name.eq_ignore_ascii_case(name))
            .filter(|i| tags.iter().all(|t| i.tags.iter().any(|have| have.eq_ignore_ascii_case(t))))
            .map(entry_json)
            .filter(|e| !passing || all_passing(e))
            .collect();
        (state.catalog_index, entries)
    };
    match blocking(shared, query, read).await {
        Ok((index, entries)) => json(StatusCode::OK, &Json::Array(entries), Some(index)),
        Err(refusal) => refuse(refusal),
    }
}

/// `GET /v1/catalog/services`: every service name with the union of its tags (blocking).
pub async fn catalog_services(shared: &Shared, query: &Query) -> Response {
    let read = |state: &FixtureState| {
        let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for instance in instances(state) {
            let tags = names.entry(instance.name.to_owned()).or_default();
            tags.extend(instance.tags.iter().cloned());
            tags.sort();
            tags.dedup();
        }
        (state.catalog_index, names)
    };
    match blocking(shared, query, read).await {
        Ok((index, names)) => json(StatusCode::OK, &json!(names), Some(index)),
        Err(refusal) => refuse(refusal),
    }
}
