//! `ONEX_*` environment variables over a loaded runtime config: which setting each one sets,
//! and the diagnostics that name a bad value.

use super::decode::{Cx, Decode};
use super::diagnostic::Diagnostic;
use super::rules::Rules;
use super::runtime::{HandlerConfig, RuntimeConfig};
use crate::error::codes;
use crate::yaml::{Node, Pos};
use serde_json::Value as Json;

/// The `ONEX_*` variables that override runtime settings, and what each sets.
pub const OVERRIDES: &[(&str, &str)] = &[
    ("ONEX_RUNTIME_NAME", "runtime_name"),
    ("ONEX_CONTRACTS_DIR", "contracts_dir"),
    ("ONEX_DATA_DIR", "data_dir"),
    ("ONEX_BUS_KIND", "bus.kind"),
    ("ONEX_BUS_BOOTSTRAP_SERVERS", "bus.bootstrap_servers"),
    ("ONEX_BUS_GROUP_ID", "bus.group_id"),
    ("ONEX_BUS_PARTITIONS", "bus.partitions"),
    ("ONEX_BUS_LANES", "bus.lanes"),
    ("ONEX_BUS_REPLICATION_FACTOR", "bus.replication_factor"),
    ("ONEX_BUS_REQUEST_TOPIC", "bus.request_topic"),
    ("ONEX_BUS_REPLY_TOPIC", "bus.reply_topic"),
    ("ONEX_BUS_DLQ_TOPIC", "bus.dlq_topic"),
    ("ONEX_STATE_STORE_KIND", "state_store.kind"),
    ("ONEX_STATE_STORE_PATH", "state_store.path"),
    ("ONEX_STATE_STORE_URL", "state_store.url"),
    ("ONEX_ADMIN_ADDR", "admin_addr"),
    ("ONEX_DRAIN_TIMEOUT_MS", "drain_timeout_ms"),
    ("ONEX_MAX_IN_FLIGHT", "max_in_flight"),
    ("ONEX_MAX_WORKFLOW_RUNS", "max_workflow_runs"),
    ("ONEX_MAX_ENVELOPE_BYTES", "max_envelope_bytes"),
    ("ONEX_DELIVERY_MAX_ATTEMPTS", "delivery.max_attempts"),
    ("ONEX_DELIVERY_BACKOFF_MS", "delivery.backoff_ms"),
    ("ONEX_DELIVERY_MAX_BACKOFF_MS", "delivery.max_backoff_ms"),
    ("ONEX_DELIVERY_RUN_LEASE_MS", "delivery.run_lease_ms"),
    ("ONEX_RETENTION_PROCESSED_MS", "retention.processed_ms"),
    ("ONEX_RETENTION_PUBLISHED_OUTBOX_MS", "retention.published_outbox_ms"),
    ("ONEX_RETENTION_FINISHED_RUNS_MS", "retention.finished_runs_ms"),
    ("ONEX_RETENTION_SWEEP_INTERVAL_MS", "retention.sweep_interval_ms"),
    ("ONEX_TELEMETRY_ENDPOINT", "telemetry.endpoint"),
    ("ONEX_TELEMETRY_SERVICE_NAME", "telemetry.service_name"),
    ("ONEX_TELEMETRY_SAMPLING_RATIO", "telemetry.sampling_ratio"),
    ("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "telemetry.export_interval_ms"),
];

impl RuntimeConfig {
    /// Applies `ONEX_*` overrides from `vars` (the host passes the process environment).
    /// Variables not starting with `ONEX_` are ignored; unknown `ONEX_` settings and bad
    /// values are diagnostics naming the variable. `ONEX_HANDLER_<TYPE>_ENABLED` toggles a handler.
    pub fn apply_overrides<'a>(&mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Diagnostic> {
        let mut cx = Cx::new("environment");
        let mut set: Vec<(&str, &str)> = Vec::new();
        for (name, value) in vars {
            if !name.starts_with("ONEX_") {
                continue;
            }
            let pos = Pos::new(1, 1);
            if let Some(handler) = name.strip_prefix("ONEX_HANDLER_").and_then(|h| h.strip_suffix("_ENABLED")) {
                let node = scalar(value);
                if let Some(enabled) = bool::decode(&mut cx, &node, name) {
                    let key = handler.to_ascii_lowercase();
                    self.handlers.entry(key).or_insert(HandlerConfig { enabled, config: Json::Null }).enabled = enabled;
                }
                continue;
            }
            let Some(&(_, field)) = OVERRIDES.iter().find(|(var, _)| *var == name) else {
                // Other ONEX_ variables (test settings, log level) belong to other readers.
                continue;
            };
            self.set(&mut cx, name, field, value, pos);
            set.push((name, field));
        }
        self.check_rules(&mut cx, &set);
        let mut diagnostics = match cx.finish(Some(())) {
            Ok(loaded) => loaded.warnings,
            Err(errors) => errors.diagnostics,
        };
        for d in &mut diagnostics {
            d.code = codes::BAD_OVERRIDE;
        }
        diagnostics
    }

    /// Checks again the rules of each section an override in `set` (variable, field) changed,
    /// naming the variable that set the field a rule is on, else every variable that changed
    /// its section (`ONEX_DELIVERY_BACKOFF_MS` above the written `max_backoff_ms`).
    fn check_rules(&self, cx: &mut Cx, set: &[(&str, &str)]) {
        let sections = [
            ("bus", self.bus.broken()),
            ("state_store", self.state_store.broken()),
            ("delivery", self.delivery.broken()),
            ("retention", self.retention.broken()),
            ("telemetry", self.telemetry.broken()),
        ];
        for (section, broken) in sections {
            let in_section = |field: &str| field.split_once('.').is_some_and(|(s, _)| s == section);
            let vars: Vec<&str> = set.iter().filter(|(_, field)| in_section(field)).map(|(var, _)| *var).collect();
            if vars.is_empty() {
                continue;
            }
            for rule in broken {
                let field = format!("{section}.{}", rule.key);
                let var =
                    set.iter().find(|(_, f)| *f == field).map_or_else(|| vars.join(", "), |(v, _)| (*v).to_owned());
                cx.error(rule.code, Pos::new(1, 1), &var, format!("{field}: {}", rule.message));
            }
        }
    }

    fn set(&mut self, cx: &mut Cx, var: &str, field: &str, value: &str, pos: Pos) {
        let node = scalar(value);
        macro_rules! put {
            ($target:expr) => {
                if let Some(v) = Decode::decode(cx, &node, var) {
                    $target = v;
                }
            };
        }
        match field {
            "runtime_name" => self.runtime_name = value.to_owned(),
            "contracts_dir" => self.contracts_dir = value.to_owned(),
            "data_dir" => self.data_dir = value.to_owned(),
            "bus.kind" => put!(self.bus.kind),
            "bus.bootstrap_servers" => self.bus.bootstrap_servers = Some(value.to_owned()),
            "bus.group_id" => self.bus.group_id = value.to_owned(),
            "bus.partitions" => put!(self.bus.partitions),
            "bus.lanes" => {
                if let Some(lanes) = Decode::decode(cx, &node, var) {
                    self.bus.lanes = Some(lanes);
                }
            }
            "bus.replication_factor" => put!(self.bus.replication_factor),
            "bus.request_topic" => self.bus.request_topic = value.to_owned(),
            "bus.reply_topic" => self.bus.reply_topic = value.to_owned(),
            "bus.dlq_topic" => self.bus.dlq_topic = value.to_owned(),
            "state_store.kind" => put!(self.state_store.kind),
            "state_store.path" => self.state_store.path = value.to_owned(),
            "state_store.url" => self.state_store.url = Some(value.to_owned()),
            "admin_addr" => self.admin_addr = value.to_owned(),
            "drain_timeout_ms" => put!(self.drain_timeout_ms),
            "max_in_flight" => put!(self.max_in_flight),
            "max_workflow_runs" => put!(self.max_workflow_runs),
            "max_envelope_bytes" => put!(self.max_envelope_bytes),
            "delivery.max_attempts" => put!(self.delivery.max_attempts),
            "delivery.backoff_ms" => put!(self.delivery.backoff_ms),
            "delivery.max_backoff_ms" => put!(self.delivery.max_backoff_ms),
            "delivery.run_lease_ms" => put!(self.delivery.run_lease_ms),
            "retention.processed_ms" => put!(self.retention.processed_ms),
            "retention.published_outbox_ms" => put!(self.retention.published_outbox_ms),
            "retention.finished_runs_ms" => put!(self.retention.finished_runs_ms),
            "retention.sweep_interval_ms" => put!(self.retention.sweep_interval_ms),
            "telemetry.endpoint" => self.telemetry.endpoint = Some(value.to_owned()),
            "telemetry.service_name" => self.telemetry.service_name = value.to_owned(),
            "telemetry.sampling_ratio" => put!(self.telemetry.sampling_ratio),
            "telemetry.export_interval_ms" => put!(self.telemetry.export_interval_ms),
            _ => cx.error(codes::BAD_OVERRIDE, pos, var, format!("no setting `{field}`")),
        }
    }
}

fn scalar(value: &str) -> Node {
    Node { pos: Pos::new(1, 1), value: crate::yaml::Value::Scalar { text: value.to_owned(), plain: true } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::BusKind;

    #[test]
    fn onex_variables_override_settings_and_bad_values_are_named() {
        let mut config = crate::contract::load_runtime_config("rt", b"bus: {kind: inmemory}\n").unwrap().value;
        let problems = config.apply_overrides([
            ("ONEX_ADMIN_ADDR", "0.0.0.0:9000"),
            ("ONEX_BUS_KIND", "kafka"),
            ("ONEX_BUS_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("ONEX_BUS_PARTITIONS", "32"),
            ("ONEX_BUS_LANES", "4"),
            ("ONEX_HANDLER_VAULT_ENABLED", "true"),
            ("ONEX_MAX_IN_FLIGHT", "lots"),
            ("ONEX_BUS_REQUEST_TOPIC", "onex.cmd.team.envelope.v1"),
            ("ONEX_BUS_DLQ_TOPIC", "not a topic!"),
            ("PATH", "/usr/bin"),
            ("ONEX_LOG_LEVEL", "debug"),
        ]);
        assert_eq!(config.admin_addr, "0.0.0.0:9000");
        assert_eq!((config.bus.kind, config.bus.partitions), (BusKind::Kafka, 32));
        assert_eq!(config.bus.lanes.map(std::num::NonZeroU32::get), Some(4));
        assert!(config.handlers["vault"].enabled);
        assert_eq!(config.max_in_flight, 1024, "a bad value leaves the setting alone");
        assert_eq!(config.bus.request_topic, "onex.cmd.team.envelope.v1");
        let named: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(named, ["ONEX_MAX_IN_FLIGHT", "ONEX_BUS_DLQ_TOPIC"], "{problems:?}");
        assert!(problems.iter().all(|p| p.code == codes::BAD_OVERRIDE));
    }

    #[test]
    fn a_host_without_lanes_is_refused_with_the_field_named() {
        let four = crate::contract::load_runtime_config("rt.yaml", b"bus:\n  lanes: 4\n").unwrap().value;
        assert_eq!(four.bus.lanes.map(std::num::NonZeroU32::get), Some(4));
        let errors = crate::contract::load_runtime_config("rt.yaml", b"bus:\n  lanes: 0\n").unwrap_err();
        assert_eq!(errors.diagnostics[0].field, "bus.lanes", "{errors:?}");
        let mut config = crate::contract::load_runtime_config("rt", b"{}\n").unwrap().value;
        let problems = config.apply_overrides([("ONEX_BUS_LANES", "0")]);
        assert_eq!((problems.len(), config.bus.lanes), (1, None), "{problems:?}");
    }

    #[test]
    fn an_override_that_breaks_a_rule_of_its_section_is_refused_naming_the_variable() {
        let mut config = crate::contract::load_runtime_config("rt", b"{}\n").unwrap().value;
        let problems = config.apply_overrides([
            ("ONEX_DELIVERY_MAX_ATTEMPTS", "0"),
            ("ONEX_RETENTION_SWEEP_INTERVAL_MS", "0"),
            ("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "0"),
            ("ONEX_STATE_STORE_KIND", "postgres"),
        ]);
        let named: Vec<(&str, &str)> = problems.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect();
        assert_eq!(
            named,
            [
                ("ONEX_STATE_STORE_KIND", "state_store.url: the postgres store needs a url"),
                ("ONEX_DELIVERY_MAX_ATTEMPTS", "delivery.max_attempts: must be at least 1 (the first attempt)"),
                ("ONEX_RETENTION_SWEEP_INTERVAL_MS", "retention.sweep_interval_ms: must be above 0"),
                ("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "telemetry.export_interval_ms: must be at least 1 ms"),
            ],
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.code == codes::BAD_OVERRIDE));

        // A rule between two fields names the variable that changed the section.
        let written = b"delivery: {backoff_ms: 100, max_backoff_ms: 1000}\n";
        let mut config = crate::contract::load_runtime_config("rt", written).unwrap().value;
        let problems = config.apply_overrides([("ONEX_DELIVERY_BACKOFF_MS", "2000")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "ONEX_DELIVERY_BACKOFF_MS");
        assert_eq!(problems[0].message, "delivery.max_backoff_ms: must not be below backoff_ms");

        // Overrides that keep every rule are no problem.
        let mut config = crate::contract::load_runtime_config("rt", b"{}\n").unwrap().value;
        let fine = [("ONEX_STATE_STORE_KIND", "postgres"), ("ONEX_STATE_STORE_URL", "postgres://db/onex")];
        assert_eq!(config.apply_overrides(fine), Vec::new());
    }
}
