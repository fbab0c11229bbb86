//! OpenTelemetry tracing in the runtime config, `telemetry:`; off unless an endpoint is set.
//!
//! ```yaml
//! telemetry:
//!   endpoint: http://127.0.0.1:4318      # OTLP over HTTP/protobuf; spans go to <endpoint>/v1/traces
//!   service_name: onex-runtime-host      # `service.name` of the resource
//!   sampling_ratio: 1.0                  # share of new traces kept; a sampled parent is always followed
//!   export_interval_ms: 5000             # how often finished spans are sent
//! ```

use super::decode::{Cx, Decode};
use super::fields::Fields;
use super::rules::{Broken, Rules, finish_checked};
use crate::error::codes;
use crate::yaml::Node;

/// `telemetry:` of the runtime config.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver; `None` turns tracing off.
    pub endpoint: Option<String>,
    /// `service.name` of the spans' resource.
    pub service_name: String,
    /// Share of traces started here that are recorded (0.0 to 1.0); a trace whose incoming
    /// `traceparent` is sampled is always recorded.
    pub sampling_ratio: f64,
    /// Most time a finished span waits before it is sent.
    pub export_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "onex-runtime-host".to_owned(),
            sampling_ratio: 1.0,
            export_interval_ms: 5_000,
        }
    }
}

impl Decode for TelemetryConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let config = Self {
            endpoint: f.opt(cx, "endpoint"),
            service_name: f.or(cx, "service_name", d.service_name),
            sampling_ratio: f.or(cx, "sampling_ratio", d.sampling_ratio),
            export_interval_ms: f.or(cx, "export_interval_ms", d.export_interval_ms),
        };
        finish_checked(cx, f, &config);
        Some(config)
    }
}

impl Rules for TelemetryConfig {
    fn broken(&self) -> Vec<Broken> {
        let endpoint_ok = self.endpoint.as_deref().is_none_or(is_http_url);
        let rules = [
            (!endpoint_ok, "endpoint", "must be an http:// or https:// URL (the OTLP/HTTP receiver)"),
            (!(0.0..=1.0).contains(&self.sampling_ratio), "sampling_ratio", "must be between 0.0 and 1.0"),
            (self.export_interval_ms == 0, "export_interval_ms", "must be at least 1 ms"),
        ];
        let broken = rules.into_iter().filter(|(bad, ..)| *bad);
        broken.map(|(_, key, message)| Broken::new(key, codes::CONTRACT_INVALID_VALUE, message)).collect()
    }
}

/// Whether `text` looks like an absolute http(s) URL with a host.
fn is_http_url(text: &str) -> bool {
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::load_runtime_config;

    #[test]
    fn telemetry_is_off_by_default_and_read_from_the_config_and_the_environment() {
        let config = load_runtime_config("rt", b"runtime_name: t\n").unwrap().value;
        assert_eq!(config.telemetry, TelemetryConfig::default());
        assert_eq!(config.telemetry.endpoint, None);

        let text = b"telemetry: {endpoint: 'http://otel:4318', sampling_ratio: 0.25, service_name: a}\n";
        let mut config = load_runtime_config("rt", text).unwrap().value;
        assert_eq!(config.telemetry.endpoint.as_deref(), Some("http://otel:4318"));
        assert_eq!((config.telemetry.sampling_ratio, config.telemetry.service_name.as_str()), (0.25, "a"));
        let problems = config.apply_overrides([
            ("ONEX_TELEMETRY_ENDPOINT", "https://collector.example"),
            ("ONEX_TELEMETRY_SAMPLING_RATIO", "1.5"),
            ("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "100"),
        ]);
        assert_eq!(config.telemetry.endpoint.as_deref(), Some("https://collector.example"));
        assert_eq!(config.telemetry.export_interval_ms, 100);
        let named: Vec<(&str, &str)> = problems.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect();
        assert_eq!(named, [("ONEX_TELEMETRY_SAMPLING_RATIO", "telemetry.sampling_ratio: must be between 0.0 and 1.0")]);
    }

    #[test]
    fn bad_settings_are_errors_naming_the_field() {
        let text = b"telemetry:\n  endpoint: otel:4318\n  sampling_ratio: 2\n";
        let errors = load_runtime_config("rt", text).unwrap_err();
        let fields: Vec<&str> = errors.diagnostics.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["telemetry.endpoint", "telemetry.sampling_ratio"], "{errors:?}");
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(is_http_url("http://127.0.0.1:4318"));
        assert!(is_http_url("https://otel.example/base"));
        for bad in ["127.0.0.1:4318", "grpc://x", "http://", "http:///v1"] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
