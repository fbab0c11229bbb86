//! The runtime configuration (`contracts/runtime/runtime_config.yaml`) and its `ONEX_*` overrides.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::admin::AdminConfig;
use super::decode::{Cx, Decode, decode_enum, join, to_json};
use super::delivery::{DeliveryConfig, RetentionConfig};
use super::fields::{Fields, key_text};
use super::rules::{Broken, Rules, finish_checked};
use super::telemetry::TelemetryConfig;
use crate::error::codes;
use crate::yaml::{Node, Value};

/// Which event bus the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// In-process, for the embedded default and tests.
    InMemory,
    /// Kafka (or a Kafka-protocol broker).
    Kafka,
}

decode_enum!(BusKind, "bus kind", {
    "inmemory" => BusKind::InMemory,
    "in_memory" => BusKind::InMemory,
    "memory" => BusKind::InMemory,
    "kafka" => BusKind::Kafka,
});

/// Where reducer state, idempotency records and journals live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local SQLite file.
    Sqlite,
    /// PostgreSQL (required for scale-out).
    Postgres,
}

decode_enum!(StoreKind, "state store kind", { "sqlite" => StoreKind::Sqlite, "postgres" => StoreKind::Postgres });

/// Event bus settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// Which bus.
    pub kind: BusKind,
    /// Kafka bootstrap servers.
    pub bootstrap_servers: Option<String>,
    /// Consumer group of this host.
    pub group_id: String,
    /// Topic requests are consumed from.
    pub request_topic: String,
    /// Topic replies are published to.
    pub reply_topic: String,
    /// Topic dead letters go to.
    pub dlq_topic: String,
    /// Partitions per topic (the in-memory bus's; on Kafka, of the topics the host creates).
    pub partitions: u32,
    /// Group members (lanes) this host runs, each processing its partitions in order, in
    /// parallel with the others; unset, one per partition. On Kafka each lane is a consumer the
    /// brokers see: hosts that share a group need fewer of them each.
    pub lanes: Option<std::num::NonZeroU32>,
    /// Messages buffered per partition before publishers wait (in-memory bus).
    pub capacity: u32,
    /// Replication factor of the topics the host creates on Kafka.
    pub replication_factor: u32,
    /// Client properties of the Kafka bus, handed to the bus as written (`security.protocol`, `sasl.*`,
    /// `session.timeout.ms`, ...); values may be `${env:…}` / `${vault:…}` references.
    pub kafka: BTreeMap<String, String>,
}

impl Decode for BusConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let bus = Self {
            kind: f.or(cx, "kind", BusKind::InMemory),
            bootstrap_servers: f.opt(cx, "bootstrap_servers"),
            group_id: f.or(cx, "group_id", "onex-runtime".to_owned()),
            request_topic: f.or(cx, "request_topic", "onex.cmd.runtime.envelope.v1".to_owned()),
            reply_topic: f.or(cx, "reply_topic", "onex.evt.runtime.reply.v1".to_owned()),
            dlq_topic: f.or(cx, "dlq_topic", "onex.dlq.runtime.envelope.v1".to_owned()),
            partitions: f.or(cx, "partitions", 8),
            lanes: f.opt(cx, "lanes"),
            capacity: f.or(cx, "capacity", 1024),
            replication_factor: f.or(cx, "replication_factor", 1),
            kafka: f.or(cx, "kafka", BTreeMap::new()),
        };
        if let Some(properties) = f.node("kafka") {
            check_secrets(cx, properties, &join(path, "kafka"));
        }
        finish_checked(cx, f, &bus);
        Some(bus)
    }
}

impl Rules for BusConfig {
    fn broken(&self) -> Vec<Broken> {
        let topics = [
            ("request_topic", &self.request_topic),
            ("reply_topic", &self.reply_topic),
            ("dlq_topic", &self.dlq_topic),
        ];
        let mut broken: Vec<Broken> = topics
            .into_iter()
            .filter_map(|(key, topic)| {
                let refused = topic.parse::<crate::topic::TopicName>().err()?;
                Some(Broken::new(key, codes::CONTRACT_INVALID_VALUE, refused.to_string()))
            })
            .collect();
        if self.kind == BusKind::Kafka && self.bootstrap_servers.is_none() {
            let needed = "the kafka bus needs bootstrap_servers";
            broken.push(Broken::new("bootstrap_servers", codes::CONTRACT_MISSING_FIELD, needed));
        }
        broken
    }
}

/// State store settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StateStoreConfig {
    /// Which store.
    pub kind: StoreKind,
    /// SQLite file (relative to the data dir).
    pub path: String,
    /// PostgreSQL URL, usually a `${env:…}` reference.
    pub url: Option<String>,
    /// Pool size.
    pub max_connections: u32,
}

impl Decode for StateStoreConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let store = Self {
            kind: f.or(cx, "kind", StoreKind::Sqlite),
            path: f.or(cx, "path", "onex-state.db".to_owned()),
            url: f.opt(cx, "url"),
            max_connections: f.or(cx, "max_connections", 10),
        };
        finish_checked(cx, f, &store);
        Some(store)
    }
}

impl Rules for StateStoreConfig {
    fn broken(&self) -> Vec<Broken> {
        let needed = self.kind == StoreKind::Postgres && self.url.is_none();
        let broken = Broken::new("url", codes::CONTRACT_MISSING_FIELD, "the postgres store needs a url");
        needed.then_some(broken).into_iter().collect()
    }
}

/// One handler's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerConfig {
    /// Whether the host initialises it.
    pub enabled: bool,
    /// Handler-specific configuration (may hold secret references).
    pub config: Json,
}

impl Decode for HandlerConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let enabled = f.or(cx, "enabled", true);
        let config_node = f.node("config");
        let config = config_node.map_or(Json::Null, super::decode::to_json);
        f.finish(cx);
        if let Some(n) = config_node {
            check_secrets(cx, n, &join(path, "config"));
        }
        Some(Self { enabled, config })
    }
}

/// A reference to a secret, resolved by the host at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `${env:NAME}`
    Env(String),
    /// `${vault:mount/path#key}`
    Vault {
        /// `mount/path`.
        path: String,
        /// Key inside the secret.
        key: String,
    },
}

impl SecretRef {
    /// Parses `${env:NAME}` or `${vault:path#key}`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let inner = value.strip_prefix("${")?.strip_suffix('}')?;
        if let Some(name) = inner.strip_prefix("env:") {
            return (!name.is_empty()).then(|| Self::Env(name.to_owned()));
        }
        let (path, key) = inner.strip_prefix("vault:")?.split_once('#')?;
        (!path.is_empty() && !key.is_empty()).then(|| Self::Vault { path: path.to_owned(), key: key.to_owned() })
    }
}

const SECRET_KEYS: &[&str] = &["password", "token", "secret", "api_key", "secret_id", "private_key"];

/// Reports every string under a secret-like key that is not a secret reference, at the line
/// where it is written.
pub(super) fn check_secrets(cx: &mut Cx, node: &Node, path: &str) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let key = key_text(k);
                let field = join(path, &key);
                let secret_like = SECRET_KEYS.iter().any(|s| key.to_ascii_lowercase().contains(s));
                // A string (not a number, boolean or null) that is not a `${…}` reference.
                let literal = secret_like
                    && matches!(&v.value, Value::Scalar { text, .. } if SecretRef::parse(text).is_none())
                    && matches!(to_json(v), Json::String(_));
                if literal {
                    cx.error(
                        codes::LITERAL_SECRET,
                        v.pos,
                        &field,
                        "secrets are never written in contracts; use `${env:NAME}` or `${vault:mount/path#key}`",
                    );
                } else {
                    check_secrets(cx, v, &field);
                }
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| check_secrets(cx, i, path)),
        Value::Scalar { .. } | Value::Include(_) => {}
    }
}

/// Everything the host needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Name the host reports.
    pub runtime_name: String,
    /// Directory of node contracts, relative to the config file.
    pub contracts_dir: String,
    /// Directory for local state (SQLite file).
    pub data_dir: String,
    /// Event bus.
    pub bus: BusConfig,
    /// State store.
    pub state_store: StateStoreConfig,
    /// Handlers by type (`db`, `vault`, ...).
    pub handlers: BTreeMap<String, HandlerConfig>,
    /// Admin HTTP listen address.
    pub admin_addr: String,
    /// Who may call the admin API and its read timeouts.
    pub admin: AdminConfig,
    /// Most time shutdown waits for in-flight work.
    pub drain_timeout_ms: u64,
    /// Most envelopes processed at once.
    pub max_in_flight: u32,
    /// Most workflow runs driven at once; a run beyond it waits for one to finish.
    pub max_workflow_runs: u32,
    /// Largest envelope accepted.
    pub max_envelope_bytes: u64,
    /// How the bus consumer retries failed envelopes in place and when it dead-letters them.
    pub delivery: DeliveryConfig,
    /// How long finished records are kept.
    pub retention: RetentionConfig,
    /// OpenTelemetry tracing (off unless an endpoint is set).
    pub telemetry: TelemetryConfig,
}

impl Decode for RuntimeConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let empty = Node { pos: f.pos, value: crate::yaml::Value::Scalar { text: String::new(), plain: true } };
        let bus = match f.node("bus") {
            Some(n) => BusConfig::decode(cx, n, &join(path, "bus")),
            None => BusConfig::decode(cx, &empty, &join(path, "bus")),
        };
        let state_store = match f.node("state_store") {
            Some(n) => StateStoreConfig::decode(cx, n, &join(path, "state_store")),
            None => StateStoreConfig::decode(cx, &empty, &join(path, "state_store")),
        };
        let delivery = match f.node("delivery") {
            Some(n) => DeliveryConfig::decode(cx, n, &join(path, "delivery")),
            None => Some(DeliveryConfig::default()),
        };
        let admin = match f.node("admin") {
            Some(n) => AdminConfig::decode(cx, n, &join(path, "admin")),
            None => Some(AdminConfig::default()),
        };
        let retention = match f.node("retention") {
            Some(n) => RetentionConfig::decode(cx, n, &join(path, "retention")),
            None => Some(RetentionConfig::default()),
        };
        let telemetry = match f.node("telemetry") {
            Some(n) => TelemetryConfig::decode(cx, n, &join(path, "telemetry")),
            None => Some(TelemetryConfig::default()),
        };
        let config = Self {
            runtime_name: f.or(cx, "runtime_name", "onex-runtime-host".to_owned()),
            contracts_dir: f.or(cx, "contracts_dir", "..".to_owned()),
            data_dir: f.or(cx, "data_dir", ".onex".to_owned()),
            bus: bus?,
            state_store: state_store?,
            handlers: f.or(cx, "handlers", BTreeMap::new()),
            admin_addr: f.or(cx, "admin_addr", "127.0.0.1:8085".to_owned()),
            admin: admin?,
            drain_timeout_ms: f.or(cx, "drain_timeout_ms", 10_000),
            max_in_flight: f.or(cx, "max_in_flight", 1024),
            max_workflow_runs: f.or(cx, "max_workflow_runs", 256),
            max_envelope_bytes: f.or(cx, "max_envelope_bytes", 1 << 20),
            delivery: delivery?,
            retention: retention?,
            telemetry: telemetry?,
        };
        f.finish(cx);
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs_parse() {
        assert_eq!(SecretRef::parse("${env:PGPASSWORD}"), Some(SecretRef::Env("PGPASSWORD".into())));
        assert_eq!(
            SecretRef::parse("${vault:secret/db#password}"),
            Some(SecretRef::Vault { path: "secret/db".into(), key: "password".into() })
        );
        for bad in ["hunter2", "${env:}", "${vault:secret/db}", "${file:x}"] {
            assert_eq!(SecretRef::parse(bad), None, "{bad}");
        }
    }
}
