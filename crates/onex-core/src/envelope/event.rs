//! Upstream's `ModelEventEnvelope`: the fields it has beyond this runtime's envelope, and writing
//! one. A reply also carries `causation_id`, `is_response`, `success` and `error` (as
//! `"[CODE] message"`), which the model does not define and Pydantic ignores on reading.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::upstream::{UpstreamMetadata, payload_object};
use super::{Envelope, SemVer};

/// ModelEventEnvelope's `onex_version` default.
pub const DEFAULT_ONEX_VERSION: SemVer = SemVer::new(1, 0, 0);
/// ModelEventEnvelope's `envelope_version` default (its current schema version).
pub const DEFAULT_EVENT_ENVELOPE_VERSION: SemVer = SemVer::new(2, 1, 0);
/// ModelEventEnvelope's `priority` default.
pub const DEFAULT_PRIORITY: i64 = 5;

/// The fields of a `ModelEventEnvelope` with no counterpart in this runtime's envelope, kept as
/// they came and passed on. (`source_tool`/`target_tool` are the envelope's `source_node` /
/// `target_node`, `envelope_timestamp` its `timestamp`, `envelope_version` its own.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFields {
    /// Dot-path routing key; the operation when the payload names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The payload's model class name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<String>,
    /// The payload's schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_schema_version: Option<SemVer>,
    /// The security context, passed on (never echoed in a reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Value>,
    /// Priority, 1 to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Retry attempts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
    /// Top-level request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Top-level trace id (with `span_id`, the envelope's `traceparent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Top-level span id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The ONEX standard version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onex_version: Option<SemVer>,
}

impl EventFields {
    /// What a reply echoes: the type, QoS, trace and version fields; not the security context,
    /// nor the payload's type and schema (the reply's payload is another).
    pub fn for_reply(&self) -> Self {
        Self { security_context: None, payload_type: None, payload_schema_version: None, ..self.clone() }
    }
}

#[derive(Serialize)]
struct EventEnvelope<'a> {
    payload: &'a Value,
    envelope_id: Uuid,
    envelope_timestamp: &'a DateTime<Utc>,
    correlation_id: Uuid,
    source_tool: Option<&'a str>,
    target_tool: Option<&'a str>,
    metadata: UpstreamMetadata<'a>,
    security_context: Option<&'a Value>,
    event_type: Option<&'a str>,
    payload_type: Option<&'a str>,
    payload_schema_version: Option<&'a SemVer>,
    priority: i64,
    timeout_seconds: Option<i64>,
    retry_count: i64,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    onex_version: &'a SemVer,
    envelope_version: &'a SemVer,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_response: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `envelope` as a `ModelEventEnvelope` (defaults for what it does not carry).
pub(super) fn encode(envelope: &Envelope, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let none = EventFields::default();
    let event = envelope.event.as_deref().unwrap_or(&none);
    serde_json::to_writer(
        &mut *out,
        &EventEnvelope {
            payload: payload_object(&envelope.payload),
            envelope_id: envelope.envelope_id,
            envelope_timestamp: &envelope.timestamp,
            correlation_id: envelope.correlation_id,
            source_tool: envelope.source_node.as_deref(),
            target_tool: envelope.target_node.as_deref(),
            metadata: UpstreamMetadata::from(&envelope.metadata),
            security_context: event.security_context.as_ref(),
            event_type: event.event_type.as_deref(),
            payload_type: event.payload_type.as_deref(),
            payload_schema_version: event.payload_schema_version.as_ref(),
            priority: event.priority.unwrap_or(DEFAULT_PRIORITY),
            timeout_seconds: event.timeout_seconds,
            retry_count: event.retry_count.unwrap_or(0),
            request_id: event.request_id.as_deref(),
            trace_id: event.trace_id.as_deref(),
            span_id: event.span_id.as_deref(),
            onex_version: event.onex_version.as_ref().unwrap_or(&DEFAULT_ONEX_VERSION),
            envelope_version: envelope.envelope_version.as_ref().unwrap_or(&DEFAULT_EVENT_ENVELOPE_VERSION),
            causation_id: envelope.causation_id,
            is_response: envelope.is_response,
            success: envelope.success,
            error: envelope.error.as_ref().map(super::ReplyError::to_text),
        },
    )
}
