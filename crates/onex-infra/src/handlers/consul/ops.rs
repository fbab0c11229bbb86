//! The consul operations: request payloads, their checks and the consulrs calls behind them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use consulrs::api::check::common::AgentServiceCheckBuilder;
use consulrs::api::kv::requests::{DeleteKeyRequest, SetKeyRequest};
use consulrs::api::service::requests::RegisterServiceRequest;
use consulrs::client::ConsulClient;
use onex_spi::SpiResult;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::errors::{Context, map};
use super::health::PassingInstances;
use crate::error::codes;
use crate::handlers::payload::put_bytes;

/// `consul.kv_get`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvGet {
    key: String,
}

/// `consul.kv_put`: `value` (text) or `value_base64` (bytes); `cas` makes it a check-and-set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvPut {
    key: String,
    value: Option<String>,
    value_base64: Option<String>,
    cas: Option<u64>,
}

/// `consul.kv_delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvDelete {
    key: String,
    cas: Option<u64>,
}

/// `consul.register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Service name.
    pub name: String,
    /// Instance ID (default: the name).
    pub id: Option<String>,
    /// Instance address (default: the agent's node address).
    pub address: Option<String>,
    /// Instance port.
    pub port: Option<u16>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Its HTTP health check.
    pub check: HttpCheck,
}

/// The HTTP health check of a registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `http(s)://…` URL Consul calls; 2xx is passing, 429 warning, anything else critical.
    pub http: String,
    /// How often (Go duration: `10s`, `1m`).
    pub interval: String,
    /// Per-call timeout (Go duration; Consul's default is 10s).
    pub timeout: Option<String>,
    /// Deregister the service after this long critical (Go duration; Consul's minimum is 1m).
    pub deregister_critical_after: Option<String>,
}

/// `consul.deregister`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deregister {
    id: String,
}

impl Deregister {
    /// Deregistration of service instance `id`.
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned() }
    }
}

/// `consul.discover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discover {
    service: String,
}

/// A KV key: non-empty, no leading `/`, no `.`/`..` segments (URLs would fold them away).
fn check_key(cx: &Context, key: &str) -> SpiResult<()> {
    let why = if key.is_empty() {
        "must not be empty"
    } else if key.starts_with('/') {
        "must not start with `/`"
    } else if key.split('/').any(|s| s == "." || s == "..") {
        "must not contain `.` or `..` segments"
    } else {
        return Ok(());
    };
    Err(cx.error(codes::BAD_PAYLOAD, format!("`key` {why} (got {key:?})")))
}

/// A path segment (service name or ID): non-empty, no `/`.
fn check_segment(cx: &Context, field: &str, value: &str) -> SpiResult<()> {
    if value.is_empty() || value.contains('/') || value == "." || value == ".." {
        return Err(
            cx.error(codes::BAD_PAYLOAD, format!("`{field}` must be a non-empty name without `/` (got {value:?})"))
        );
    }
    Ok(())
}

/// A Go duration (`10s`, `1m30s`, `500ms`), checked here so a typo is named by field.
fn check_duration(cx: &Context, field: &str, value: &str) -> SpiResult<()> {
    let mut rest = value;
    let mut ok = !rest.is_empty();
    while ok && !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        ok = number.parse::<f64>().is_ok() && matches!(unit, "ns" | "us" | "µs" | "ms" | "s" | "m" | "h");
        rest = &rest[digits + unit_len..];
    }
    if ok {
        Ok(())
    } else {
        Err(cx.error(codes::BAD_PAYLOAD, format!("`{field}` {value:?} is not a duration like `10s`, `1m` or `500ms`")))
    }
}

/// `consul.kv_get`: `{key, value | value_base64, modify_index, flags}`; a missing key is not_found.
pub async fn kv_get(client: &ConsulClient, cx: &Context, req: KvGet) -> SpiResult<Json> {
    check_key(cx, &req.key)?;
    let what = format!("reading key `{}`", req.key);
    let answer = consulrs::kv::read(client, &req.key, None).await.map_err(|e| map(cx, &what, e))?;
    let pair = answer
        .response
        .into_iter()
        .find(|p| p.key == req.key)
        .ok_or_else(|| cx.error(codes::CONSUL_NOT_FOUND, format!("{what}: no such key")))?;
    let bytes: Vec<u8> = match pair.value {
        None => Vec::new(),
        Some(encoded) => encoded.try_into().map_err(|e| map(cx, &what, e))?,
    };
    let mut out = Map::new();
    out.insert("key".into(), Json::String(pair.key));
    put_bytes(&mut out, "value", bytes);
    out.insert("modify_index".into(), json!(pair.modify_index));
    out.insert("flags".into(), json!(pair.flags));
    Ok(Json::Object(out))
}

/// `consul.kv_put`: `{ok: true}`; a `cas` that does not match is a conflict.
pub async fn kv_put(client: &ConsulClient, cx: &Context, req: KvPut) -> SpiResult<Json> {
    check_key(cx, &req.key)?;
    let value = match (req.value, req.value_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => BASE64
            .decode(b64)
            .map_err(|e| cx.error(codes::BAD_PAYLOAD, format!("`value_base64` is not base64: {e}")))?,
        (Some(_), Some(_)) => return Err(cx.error(codes::BAD_PAYLOAD, "give `value` or `value_base64`, not both")),
        (None, None) => return Err(cx.error(codes::BAD_PAYLOAD, "`value` or `value_base64` is required")),
    };
    let what = format!("writing key `{}`", req.key);
    let mut request = SetKeyRequest::builder();
    request.key(req.key.as_str()).value(value);
    if let Some(cas) = req.cas {
        request.cas(cas);
    }
    let endpoint = request.build().map_err(|e| cx.error(codes::CONSUL_UNEXPECTED, format!("{what}: {e}")))?;
    let written = consulrs::api::exec_with_result(client, endpoint).await.map_err(|e| map(cx, &what, e))?.response;
    match (written, req.cas) {
        (false, Some(cas)) => Err(cx.error(
            codes::CONSUL_CAS_CONFLICT,
            format!("{what}: check-and-set failed: the key's ModifyIndex is not {cas}{}", absent_hint(cas)),
        )),
        (ok, _) => Ok(json!({ "ok": ok })),
    }
}

fn absent_hint(cas: u64) -> &'static str {
    if cas == 0 { " (cas 0 writes only a key that does not exist yet)" } else { "" }
}

/// `consul.kv_delete`: `{ok: true}` (also for a key that was not there); a `cas` that does not
/// match is a conflict.
pub async fn kv_delete(client: &ConsulClient, cx: &Context, req: KvDelete) -> SpiResult<Json> {
    check_key(cx, &req.key)?;
    let what = format!("deleting key `{}`", req.key);
    let mut options = DeleteKeyRequest::builder();
    if let Some(cas) = req.cas {
        options.cas(cas);
    }
    let deleted =
        consulrs::kv::delete(client, &req.key, Some(&mut options)).await.map_err(|e| map(cx, &what, e))?.response;
    match (deleted, req.cas) {
        (false, Some(cas)) => Err(cx.error(
            codes::CONSUL_CAS_CONFLICT,
            format!("{what}: check-and-set failed: the key's ModifyIndex is not {cas}"),
        )),
        (ok, _) => Ok(json!({ "ok": ok })),
    }
}

/// `consul.register`: `{id}` (the instance ID, the name when none was given).
pub async fn register(client: &ConsulClient, cx: &Context, req: Register) -> SpiResult<Json> {
    check_segment(cx, "name", &req.name)?;
    let id = req.id.unwrap_or_else(|| req.name.clone());
    check_segment(cx, "id", &id)?;
    let check = req.check;
    if !(check.http.starts_with("http://") || check.http.starts_with("https://")) {
        return Err(
            cx.error(codes::BAD_PAYLOAD, format!("`check.http` must be an http(s):// URL (got {:?})", check.http))
        );
    }
    check_duration(cx, "check.interval", &check.interval)?;
    let mut definition = AgentServiceCheckBuilder::default();
    definition.http(check.http.as_str()).interval(check.interval.as_str());
    if let Some(timeout) = &check.timeout {
        check_duration(cx, "check.timeout", timeout)?;
        definition.timeout(timeout.as_str());
    }
    if let Some(after) = &check.deregister_critical_after {
        check_duration(cx, "check.deregister_critical_after", after)?;
        definition.deregister_critical_service_after(after.as_str());
    }
    let what = format!("registering service `{}` (id `{id}`)", req.name);
    let definition = definition.build().map_err(|e| cx.error(codes::CONSUL_UNEXPECTED, format!("{what}: {e}")))?;
    let mut options = RegisterServiceRequest::builder();
    options.id(id.as_str()).check(definition);
    if let Some(address) = req.address {
        options.address(address);
    }
    if let Some(port) = req.port {
        options.port(u64::from(port));
    }
    if let Some(tags) = req.tags {
        options.tags(tags);
    }
    consulrs::service::register(client, &req.name, Some(&mut options)).await.map_err(|e| map(cx, &what, e))?;
    Ok(json!({ "id": id }))
}

/// `consul.deregister`: `{ok: true}` (Consul takes no action for an unknown ID).
pub async fn deregister(client: &ConsulClient, cx: &Context, req: Deregister) -> SpiResult<Json> {
    check_segment(cx, "id", &req.id)?;
    let what = format!("deregistering service id `{}`", req.id);
    consulrs::service::deregister(client, &req.id, None).await.map_err(|e| map(cx, &what, e))?;
    Ok(json!({ "ok": true }))
}

/// `consul.discover`: `[{id, address, port, tags}]` of the instances whose checks all pass,
/// sorted by ID; an instance without an address is reached at its node's.
pub async fn discover(client: &ConsulClient, cx: &Context, req: Discover) -> SpiResult<Json> {
    check_segment(cx, "service", &req.service)?;
    let what = format!("discovering service `{}`", req.service);
    let endpoint = PassingInstances { service: req.service };
    let entries = consulrs::api::exec_with_result(client, endpoint).await.map_err(|e| map(cx, &what, e))?.response;
    let mut instances: Vec<(String, Json)> = entries
        .into_iter()
        .map(|entry| {
            let service = entry.service;
            let address = if service.address.is_empty() { entry.node.address } else { service.address };
            let tags = service.tags.unwrap_or_default();
            (service.id.clone(), json!({ "id": service.id, "address": address, "port": service.port, "tags": tags }))
        })
        .collect();
    instances.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json::Array(instances.into_iter().map(|(_, i)| i).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_checks_name_the_field() {
        let cx = Context("envelope e1: consul.kv_put".into());
        assert!(check_key(&cx, "a/b").is_ok());
        for bad in ["", "/a", "a/../b", "./a"] {
            let e = check_key(&cx, bad).unwrap_err();
            assert!(e.message().starts_with("envelope e1: consul.kv_put: `key`"), "{e}");
        }
        for good in ["10s", "1m30s", "500ms", "1.5s", "2h"] {
            assert!(check_duration(&cx, "check.interval", good).is_ok(), "{good}");
        }
        for bad in ["", "10", "ten", "10x", "s"] {
            let e = check_duration(&cx, "check.interval", bad).unwrap_err();
            assert!(e.message().contains("`check.interval`"), "{e}");
        }
        assert!(check_segment(&cx, "id", "a/b").is_err());
    }
}
