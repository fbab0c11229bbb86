//! Writing upstream's `ModelOnexEnvelope`: every field Pydantic emits, in its order, with
//! `envelope_version` echoed, tags as a map and `error` as `"[CODE] message"`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Envelope, EnvelopeMetadata, SemVer};

/// The `envelope_version` written when a request had none (upstream `create_request`'s default).
pub const DEFAULT_ONEX_ENVELOPE_VERSION: SemVer = SemVer::new(1, 0, 0);

/// The `source_node` of an envelope that names no node at either end (upstream requires one).
pub const HOST_NODE: &str = "onex-runtime-host";

/// Upstream's `ModelEnvelopeMetadata`, borrowed from an envelope's metadata.
#[derive(Serialize)]
pub(super) struct UpstreamMetadata<'a> {
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    parent_span_id: Option<&'a str>,
    request_id: Option<&'a str>,
    headers: &'a BTreeMap<String, String>,
    tags: BTreeMap<&'a str, &'a str>,
}

impl<'a> From<&'a EnvelopeMetadata> for UpstreamMetadata<'a> {
    fn from(m: &'a EnvelopeMetadata) -> Self {
        Self {
            trace_id: m.trace_id.as_deref(),
            span_id: m.span_id.as_deref(),
            parent_span_id: m.parent_span_id.as_deref(),
            request_id: m.request_id.as_deref(),
            headers: &m.headers,
            tags: m.tags.to_map(),
        }
    }
}

/// An upstream payload: a JSON object (`SerializedDict`), so a reply without one gets `{}`.
pub(super) fn payload_object(payload: &Value) -> &Value {
    static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| Value::Object(serde_json::Map::new()));
    if payload.is_null() { &EMPTY } else { payload }
}

#[derive(Serialize)]
struct OnexEnvelope<'a> {
    envelope_id: Uuid,
    envelope_version: &'a SemVer,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    source_node: &'a str,
    source_node_id: Option<Uuid>,
    target_node: Option<&'a str>,
    handler_type: Option<&'a str>,
    operation: &'a str,
    payload: &'a Value,
    metadata: UpstreamMetadata<'a>,
    timestamp: &'a DateTime<Utc>,
    is_response: bool,
    success: Option<bool>,
    error: Option<String>,
    chunking: Option<&'a Value>,
}

/// `envelope` as a `ModelOnexEnvelope`. Its `source_node` (required upstream) is its own, else
/// the node it answers (upstream `create_response`'s fallback), else [`HOST_NODE`].
pub(super) fn encode(envelope: &Envelope, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let source_node = envelope.source_node.as_deref().or(envelope.target_node.as_deref()).unwrap_or(HOST_NODE);
    serde_json::to_writer(
        &mut *out,
        &OnexEnvelope {
            envelope_id: envelope.envelope_id,
            envelope_version: envelope.envelope_version.as_ref().unwrap_or(&DEFAULT_ONEX_ENVELOPE_VERSION),
            correlation_id: envelope.correlation_id,
            causation_id: envelope.causation_id,
            source_node,
            source_node_id: envelope.source_node_id,
            target_node: envelope.target_node.as_deref(),
            handler_type: envelope.handler_type.as_deref(),
            operation: &envelope.operation,
            payload: payload_object(&envelope.payload),
            metadata: UpstreamMetadata::from(&envelope.metadata),
            timestamp: &envelope.timestamp,
            is_response: envelope.is_response,
            success: envelope.success,
            error: envelope.error.as_ref().map(super::ReplyError::to_text),
            chunking: envelope.chunking.as_ref(),
        },
    )
}
