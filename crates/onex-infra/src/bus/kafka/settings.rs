//! The librdkafka settings of the Kafka bus: what the host sets because delivery depends on it
//! (idempotent producer, offsets stored by hand, cooperative rebalancing), the defaults a user may
//! change, and the user's own `bus.kafka` properties with their secrets resolved.

use std::collections::BTreeMap;

use onex_core::contract::{BusConfig, SecretRef};
use onex_spi::{SecretStore, SpiError, SpiResult};
use rdkafka::ClientConfig;

use crate::error::codes;

/// Properties the host sets and `bus.kafka` may not change, with why.
const FIXED: &[(&str, &str, &str)] = &[
    ("bootstrap.servers", "", "it is `bus.bootstrap_servers`"),
    ("group.id", "", "it is `bus.group_id`"),
    ("enable.idempotence", "true", "a retried publish must not be written twice"),
    ("acks", "all", "a publish is done only when every in-sync replica has it"),
    ("enable.auto.offset.store", "false", "an offset is stored only once its message is acknowledged"),
    ("enable.auto.commit", "true", "stored offsets are committed on a timer and on revocation"),
    ("partition.assignment.strategy", "cooperative-sticky", "the bus releases partitions one by one"),
];

/// Defaults `bus.kafka` may change.
const DEFAULTS: &[(&str, &str)] = &[
    // The partition a keyed message goes to is the one the Java client and the Python
    // runtime's aiokafka pick, so both runtimes keep an entity on one partition.
    ("partitioner", "murmur2_random"),
    // A new group starts at the beginning: nothing published before it existed is skipped.
    ("auto.offset.reset", "earliest"),
    // Lag per partition for `/metrics`.
    ("statistics.interval.ms", "5000"),
];

/// The resolved settings every client of the bus is made from.
pub struct KafkaSettings {
    /// `bus.bootstrap_servers`.
    pub(super) bootstrap_servers: String,
    /// Properties in effect (defaults, then the user's), secrets resolved.
    properties: BTreeMap<String, String>,
    /// Partitions and replication factor of the topics the bus creates.
    pub(super) partitions: i32,
    pub(super) replication_factor: i32,
}

impl std::fmt::Debug for KafkaSettings {
    // Property values may be secrets (`sasl.password`): only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KafkaSettings {
    /// The settings of `bus`, its `${env:…}` / `${vault:…}` property values resolved through
    /// `secrets`. Refuses a property the host sets itself, naming it and why.
    pub async fn resolve(bus: &BusConfig, secrets: &dyn SecretStore) -> SpiResult<Self> {
        let bootstrap_servers = bus.bootstrap_servers.clone().ok_or_else(|| {
            SpiError::new(codes::KAFKA_CONFIG, "the kafka bus needs `bus.bootstrap_servers` (host:port, ...)")
        })?;
        let number = |what: &str, n: u32| {
            i32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                SpiError::new(codes::KAFKA_CONFIG, format!("`bus.{what}` must be between 1 and {}", i32::MAX))
            })
        };
        let partitions = number("partitions", bus.partitions)?;
        let replication_factor = number("replication_factor", bus.replication_factor)?;
        let settings = Self::client(bootstrap_servers, &bus.kafka, "bus.kafka", secrets).await?;
        Ok(Self { partitions, replication_factor, ..settings })
    }

    /// Settings of a client of the brokers at `bootstrap_servers` (the kafka handler's), with
    /// the librdkafka `properties` written under `field`, resolved and checked like the bus's.
    pub async fn client(
        bootstrap_servers: String,
        properties: &BTreeMap<String, String>,
        field: &str,
        secrets: &dyn SecretStore,
    ) -> SpiResult<Self> {
        let mut resolved: BTreeMap<String, String> =
            DEFAULTS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        for (key, value) in properties {
            if let Some((_, fixed, why)) = FIXED.iter().find(|(k, _, _)| k == key) {
                let set = if fixed.is_empty() { String::new() } else { format!(" (the host sets `{fixed}`)") };
                let message = format!("`{field}.{key}` cannot be set{set}: {why}");
                return Err(SpiError::new(codes::KAFKA_CONFIG, message));
            }
            let value = match SecretRef::parse(value) {
                Some(reference) => secrets.resolve(&reference).await?.expose().to_owned(),
                None => value.clone(),
            };
            resolved.insert(key.clone(), value);
        }
        Ok(Self { bootstrap_servers, properties: resolved, partitions: 1, replication_factor: 1 })
    }

    /// A client config with the user's properties and the fixed ones of `role`.
    fn config(&self, role: Role, group: Option<&str>) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.properties {
            let applies = match role {
                Role::Producer => key != "auto.offset.reset",
                Role::Consumer => key != "partitioner",
                Role::Admin => !matches!(key.as_str(), "auto.offset.reset" | "partitioner" | "statistics.interval.ms"),
            };
            if applies {
                config.set(key, value);
            }
        }
        let fixed: &[&str] = match role {
            Role::Producer => &["enable.idempotence", "acks"],
            Role::Consumer => &["enable.auto.offset.store", "enable.auto.commit", "partition.assignment.strategy"],
            Role::Admin => &[],
        };
        for (key, value, _) in FIXED.iter().filter(|(k, _, _)| fixed.contains(k)) {
            config.set(*key, *value);
        }
        if let Some(group) = group {
            config.set("group.id", group);
        }
        config
    }

    /// The producer's config.
    pub(crate) fn producer(&self) -> ClientConfig {
        self.config(Role::Producer, None)
    }

    /// A consumer's config, as a member of `group`.
    pub(super) fn consumer(&self, group: &str) -> ClientConfig {
        self.config(Role::Consumer, Some(group))
    }

    /// The admin client's config (topic creation).
    pub(super) fn admin(&self) -> ClientConfig {
        self.config(Role::Admin, None)
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Producer,
    Consumer,
    Admin,
}

#[cfg(test)]
mod tests {
    use onex_core::secret::Secret;
    use onex_spi::async_trait;

    use super::*;

    struct Secrets;

    #[async_trait]
    impl SecretStore for Secrets {
        async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
            match reference {
                SecretRef::Env(name) if name == "KAFKA_PASSWORD" => Ok(Secret::new("hunter2".to_owned())),
                _ => Err(SpiError::new(codes::SECRET_UNRESOLVED, "unknown")),
            }
        }
    }

    fn bus(kafka: &[(&str, &str)]) -> BusConfig {
        let text = "bus:\n  kind: kafka\n  bootstrap_servers: 127.0.0.1:9092\n";
        let mut config = onex_core::contract::load_runtime_config("r.yaml", text.as_bytes()).unwrap().value.bus;
        config.kafka = kafka.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        config
    }

    #[tokio::test]
    async fn delivery_settings_are_fixed_and_user_properties_pass_through_with_secrets_resolved() {
        let bus = bus(&[("sasl.password", "${env:KAFKA_PASSWORD}"), ("auto.offset.reset", "latest")]);
        let settings = KafkaSettings::resolve(&bus, &Secrets).await.unwrap();
        let consumer = settings.consumer("g");
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("partition.assignment.strategy"), Some("cooperative-sticky"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("latest"), "a default the user changed");
        assert_eq!(consumer.get("sasl.password"), Some("hunter2"));
        let producer = settings.producer();
        assert_eq!((producer.get("enable.idempotence"), producer.get("acks")), (Some("true"), Some("all")));
        assert_eq!(producer.get("partitioner"), Some("murmur2_random"));
        assert!(!format!("{settings:?}").contains("hunter2"), "{settings:?}");
    }

    #[tokio::test]
    async fn a_property_the_host_sets_is_refused_naming_it() {
        let err = KafkaSettings::resolve(&bus(&[("enable.auto.offset.store", "true")]), &Secrets).await.unwrap_err();
        assert_eq!(err.code(), codes::KAFKA_CONFIG.as_str());
        assert!(err.message().contains("bus.kafka.enable.auto.offset.store"), "{err}");
        let err = KafkaSettings::resolve(&bus(&[("sasl.password", "${env:NOPE}")]), &Secrets).await.unwrap_err();
        assert_eq!(err.code(), codes::SECRET_UNRESOLVED.as_str());
    }
}
