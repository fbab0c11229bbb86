//! OpenTelemetry traces: a span for every envelope, handler call, reducer commit, workflow run
//! and step, exported over OTLP/HTTP (protobuf) when `telemetry.endpoint` is set.
//!
//! [`init`] installs the SDK's tracer provider as the global one; until then (tracing off) every
//! helper in [`span`] returns at once after one relaxed atomic load, and the host keeps writing
//! the W3C `traceparent` it always wrote. The exporter sends through the host's own HTTP client
//! ([`export`]), so no second HTTP stack is built in.

pub mod export;
pub mod span;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use onex_core::contract::TelemetryConfig;
use onex_core::error::{Classified, ErrorCode};
use opentelemetry::global::BoxedTracer;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};

use crate::error::codes;

/// Whether spans are recorded (a provider is installed).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The host's tracer, taken once from the provider [`init`] installed.
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// The host's tracer (the global one, a no-op, before [`init`]).
pub(crate) fn tracer() -> &'static BoxedTracer {
    TRACER.get_or_init(|| opentelemetry::global::tracer(SCOPE))
}

/// The instrumentation scope every span of the host is created under.
pub const SCOPE: &str = "onex-runtime-host";

/// Whether tracing is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter refused its settings.
    #[error("telemetry: the OTLP exporter for {endpoint}: {message}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
}

impl Classified for TelemetryError {
    fn error_code(&self) -> ErrorCode {
        codes::TELEMETRY_CONFIG
    }
}

/// The installed provider; [`Telemetry::shutdown`] sends what is still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Installs the tracer provider `config` describes, or nothing when no endpoint is set. Must be
/// called inside a tokio runtime: exports run on it.
pub fn init(config: &TelemetryConfig, data_dir: &std::path::Path) -> Result<Option<Telemetry>, TelemetryError> {
    let Some(endpoint) = &config.endpoint else { return Ok(None) };
    let failed = |message: String| TelemetryError::Exporter { endpoint: endpoint.clone(), message };
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = export::OtlpClient::new(data_dir).map_err(|e| failed(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let batch =
        BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(config.export_interval_ms)).build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio))))
        .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    if TRACER.set(opentelemetry::global::tracer(SCOPE)).is_err() {
        tracing::warn!("telemetry: a tracer was taken before the provider was installed; spans may go nowhere");
    }
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(endpoint = %endpoint, sampling_ratio = config.sampling_ratio, "OpenTelemetry traces on");
    Ok(Some(Telemetry { provider }))
}

impl Telemetry {
    /// Stops recording and sends every finished span still buffered, for at most `bound` (an
    /// unreachable receiver does not hold the exit up). It waits off the async workers: the
    /// export runs on them.
    pub async fn shutdown(self, bound: Duration) {
        ENABLED.store(false, Ordering::Relaxed);
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(bound)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "telemetry: the last spans could not be sent"),
            Err(e) => tracing::warn!(error = %e, "telemetry: shutting the exporter down failed"),
        }
    }
}
