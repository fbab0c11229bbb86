//! Decoding: one pass of serde over the union of every dialect's fields, then the dialect is told
//! from which are present and the envelope built from them, minted values filling the gaps.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

use super::dialect::Markers;
use super::event::EventFields;
use super::{Dialect, Envelope, EnvelopeError, EnvelopeMetadata, Minted, ReplyError, SemVer, trace};

/// Every field any dialect defines; unknown fields are ignored, as they always were.
#[derive(Deserialize)]
#[serde(expecting = "an envelope (a JSON object)")]
pub(super) struct Wire {
    envelope_id: Option<Uuid>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    operation: Option<String>,
    handler_type: Option<String>,
    payload: Option<Value>,
    metadata: Option<EnvelopeMetadata>,
    #[serde(default, deserialize_with = "lenient_time")]
    timestamp: Option<DateTime<Utc>>,
    source_node: Option<String>,
    source_node_id: Option<Uuid>,
    target_node: Option<String>,
    is_response: Option<bool>,
    success: Option<bool>,
    error: Option<WireError>,
    envelope_version: Option<SemVer>,
    chunking: Option<Value>,
    /// The Python runtime's reply status (`success` / `error`).
    status: Option<String>,
    // ModelEventEnvelope.
    #[serde(default, deserialize_with = "lenient_time")]
    envelope_timestamp: Option<DateTime<Utc>>,
    source_tool: Option<String>,
    target_tool: Option<String>,
    event_type: Option<String>,
    payload_type: Option<String>,
    payload_schema_version: Option<SemVer>,
    security_context: Option<Value>,
    priority: Option<i64>,
    timeout_seconds: Option<i64>,
    retry_count: Option<i64>,
    request_id: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    onex_version: Option<SemVer>,
}

impl Wire {
    /// Parses `bytes` (any dialect).
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        // Derived struct decoding would also take a JSON list, field by field: refuse anything
        // but an object first, with serde_json's description and position of what is there.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let e = serde_json::from_slice::<ObjectOnly>(bytes).err();
            return Err(e.map_or_else(
                || EnvelopeError::json_text("expected an envelope (a JSON object)"),
                |e| EnvelopeError::json(&e),
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::json(&e))
    }

    /// The envelope, in the dialect its fields tell; `minted` fills a missing id and timestamp.
    pub(super) fn into_envelope(self, minted: Minted) -> Result<Envelope, EnvelopeError> {
        let dialect = Markers {
            envelope_timestamp: self.envelope_timestamp.is_some(),
            onex_version: self.onex_version.is_some(),
            event_type: self.event_type.is_some(),
            operation: self.operation.is_some(),
            envelope_version: self.envelope_version.is_some(),
            timestamp: self.timestamp.is_some(),
        }
        .dialect();
        let is_response = self.is_response.unwrap_or(dialect == Dialect::PythonRuntime && self.status.is_some());
        let payload = self.payload.unwrap_or(Value::Null);
        let operation = match dialect {
            // The operation of an event is its payload's `operation`, else its type, else its
            // payload's model (the dispatcher routes events by the last two as well).
            Dialect::UpstreamEvent => payload
                .get("operation")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| self.event_type.clone())
                .or_else(|| self.payload_type.clone()),
            _ => self.operation,
        };
        let operation = match operation {
            Some(operation) => operation,
            None if is_response => String::new(),
            None => {
                let field = match dialect {
                    Dialect::UpstreamEvent => "`payload.operation` (or `event_type`, or `payload_type`)",
                    _ => "`operation`",
                };
                return Err(EnvelopeError::MissingOperation { envelope_id: self.envelope_id, dialect, field });
            }
        };
        let mut metadata = self.metadata.unwrap_or_default();
        if metadata.traceparent.is_none() {
            let ids = match (&self.trace_id, &self.span_id) {
                (Some(trace), Some(span)) => Some((trace, span)),
                _ => metadata.trace_id.as_ref().zip(metadata.span_id.as_ref()),
            };
            metadata.traceparent = ids.and_then(|(trace, span)| trace::traceparent(trace, span));
        }
        let event = (dialect == Dialect::UpstreamEvent).then(|| {
            Box::new(EventFields {
                event_type: self.event_type,
                payload_type: self.payload_type,
                payload_schema_version: self.payload_schema_version,
                security_context: self.security_context,
                priority: self.priority,
                timeout_seconds: self.timeout_seconds,
                retry_count: self.retry_count,
                request_id: self.request_id,
                trace_id: self.trace_id,
                span_id: self.span_id,
                onex_version: self.onex_version,
            })
        });
        let envelope_id = self.envelope_id.unwrap_or(minted.envelope_id);
        let envelope = Envelope {
            envelope_id,
            correlation_id: self.correlation_id.or(minted.correlation_id).unwrap_or(envelope_id),
            causation_id: self.causation_id,
            operation,
            handler_type: self.handler_type,
            payload,
            metadata,
            timestamp: self.timestamp.or(self.envelope_timestamp).unwrap_or(minted.timestamp),
            source_node: self.source_node.or(self.source_tool),
            target_node: self.target_node.or(self.target_tool),
            is_response,
            success: self.success.or_else(|| self.status.map(|s| s == "success")),
            error: self.error.map(WireError::into_reply_error),
            envelope_version: self.envelope_version,
            source_node_id: self.source_node_id,
            chunking: self.chunking.filter(|c| !c.is_null()),
            event,
            dialect,
        };
        if dialect == Dialect::Native {
            envelope.validate()?;
        }
        Ok(envelope)
    }
}

/// Accepts a JSON object and nothing else.
struct ObjectOnly;

impl<'de> Deserialize<'de> for ObjectOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = ObjectOnly;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an envelope (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectOnly, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(ObjectOnly)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// `error`: this runtime's `{code, category, message}` or upstream's string.
enum WireError {
    Text(String),
    Structured(ReplyError),
}

impl WireError {
    fn into_reply_error(self) -> ReplyError {
        match self {
            Self::Text(text) => ReplyError::from_text(&text),
            Self::Structured(error) => error,
        }
    }
}

impl<'de> Deserialize<'de> for WireError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ErrorVisitor;
        impl<'de> Visitor<'de> for ErrorVisitor {
            type Value = WireError;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error: {code, category, message} or a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WireError, E> {
                Ok(WireError::Text(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireError, A::Error> {
                ReplyError::deserialize(de::value::MapAccessDeserializer::new(map)).map(WireError::Structured)
            }
        }
        deserializer.deserialize_any(ErrorVisitor)
    }
}

/// A timestamp: RFC 3339, or an ISO 8601 date-time without an offset (Python's naive
/// `datetime.now()`), read as UTC; null is absent. Parsed from the text where it lies.
fn lenient_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct TimeVisitor;
    impl<'de> Visitor<'de> for TimeVisitor {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an ISO 8601 timestamp (2026-07-24T12:00:00Z)")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Ok(Some(at.with_timezone(&Utc)));
            }
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|naive| Some(naive.and_utc()))
                .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(text), &self))
        }
    }
    deserializer.deserialize_option(TimeVisitor)
}
