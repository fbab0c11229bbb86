//! The Python runtime's `runtime_config.yaml`, read into this host's [`RuntimeConfig`]:
//! `input_topic`/`output_topic`/`group_id` become the bus settings, `event_bus.type` the bus
//! kind, `handlers.enabled` the enabled handlers, `shutdown.grace_period_seconds` the drain
//! timeout. Everything else keeps this host's defaults.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::decode::{Cx, Decode, join};
use super::fields::Fields;
use super::runtime::{HandlerConfig, RuntimeConfig};
use super::version::VersionText;
use crate::yaml::{Node, Value};

/// Keys only upstream's runtime config has: a document with one of them is read this way.
pub const MARKERS: &[&str] = &["input_topic", "output_topic", "local_ingress", "contract_registry", "shutdown"];

/// Reads an upstream runtime config.
pub fn decode_upstream_runtime(cx: &mut Cx, node: &Node, path: &str) -> Option<RuntimeConfig> {
    let empty = Node { pos: node.pos, value: Value::Map(Vec::new()) };
    let mut config = RuntimeConfig::decode(cx, &empty, path)?;
    let mut f = Fields::new(cx, node, path)?;
    let _: Option<VersionText> = f.opt(cx, "contract_version");
    if let Some(name) = f.opt::<String>(cx, "name") {
        config.runtime_name = name;
    }
    if let Some(topic) = f.opt(cx, "input_topic") {
        config.bus.request_topic = topic;
    }
    if let Some(topic) = f.opt(cx, "output_topic") {
        config.bus.reply_topic = topic;
    }
    if let Some(group) = f.opt(cx, "group_id") {
        config.bus.group_id = group;
    }
    if let Some(bus) = f.node("event_bus") {
        let mut b = Fields::new(cx, bus, &join(path, "event_bus"))?;
        config.bus.kind = b.or(cx, "type", config.bus.kind);
        config.bus.bootstrap_servers = b.opt(cx, "bootstrap_servers").or(config.bus.bootstrap_servers.take());
        b.ignored(cx, &["environment", "max_history", "circuit_breaker_threshold"]);
        b.finish(cx);
    }
    if let Some(handlers) = f.node("handlers") {
        let mut h = Fields::new(cx, handlers, &join(path, "handlers"))?;
        let enabled: Vec<String> = h.or(cx, "enabled", Vec::new());
        h.finish(cx);
        config.handlers = enabled_handlers(enabled);
    }
    if let Some(shutdown) = f.node("shutdown") {
        let mut s = Fields::new(cx, shutdown, &join(path, "shutdown"))?;
        let grace: Option<u64> = s.opt(cx, "grace_period_seconds");
        s.finish(cx);
        if let Some(seconds) = grace {
            config.drain_timeout_ms = seconds.saturating_mul(1000);
        }
    }
    f.descriptive(&["description"]);
    f.ignored(cx, &["contract_registry", "local_ingress", "pattern_b_broker", "logging"]);
    f.finish(cx);
    Some(config)
}

/// `handlers.enabled: [http, db]` as this host's handler table (no handler-specific config).
fn enabled_handlers(enabled: Vec<String>) -> BTreeMap<String, HandlerConfig> {
    enabled.into_iter().map(|name| (name, HandlerConfig { enabled: true, config: Json::Null })).collect()
}
