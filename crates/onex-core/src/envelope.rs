//! The envelope: the one message shape on the bus, over HTTP ingress and between host and handlers.
//!
//! Identifiers and timestamps are passed in: core generates no UUIDs and reads no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Classified, ErrorCategory, ErrorCode, codes};

/// Tracing and routing metadata carried beside the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeMetadata {
    /// W3C trace context, propagated unchanged to replies and downstream envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Free-form string headers (mirrored as Kafka headers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The error part of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// Stable error code string (catalogued, or a handler's own).
    pub code: String,
    /// The category that decides retries.
    pub category: ErrorCategory,
    /// Human-readable message; never contains secrets.
    pub message: String,
}

impl ReplyError {
    /// A reply error from a catalogued code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code: code.as_str().to_owned(), category: code.category(), message: message.into() }
    }
}

/// A request, event or reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this envelope (UUIDv7 when minted by the host).
    pub envelope_id: Uuid,
    /// Id shared by a request, its reply and everything it causes.
    pub correlation_id: Uuid,
    /// The envelope that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// `prefix.name`; the prefix selects the handler unless `handler_type` is set.
    pub operation: String,
    /// Explicit handler selection, overriding the operation prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_type: Option<String>,
    /// Operation input or result.
    #[serde(default)]
    pub payload: Value,
    /// Trace context, headers and tags.
    #[serde(default)]
    pub metadata: EnvelopeMetadata,
    /// When the envelope was created.
    pub timestamp: DateTime<Utc>,
    /// The node that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node: Option<String>,
    /// The node it is addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
    /// Set on replies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_response: bool,
    /// Set on replies: whether the operation succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// Set on failed replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not a JSON envelope.
    #[error("malformed envelope JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description, which names the field.
        message: String,
    },
    /// The envelope is larger than the cap.
    #[error("envelope of {size} bytes exceeds the {limit}-byte cap")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Configured cap.
        limit: usize,
    },
    /// `operation` is empty or not `prefix.name`.
    #[error("envelope {envelope_id}: operation `{operation}` is not of the form `handler.name` ([a-z0-9_] segments)")]
    BadOperation {
        /// The envelope concerned.
        envelope_id: Uuid,
        /// The operation given.
        operation: String,
    },
}

impl Classified for EnvelopeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => codes::ENVELOPE_TOO_LARGE,
            Self::Json { .. } | Self::BadOperation { .. } => codes::ENVELOPE_INVALID,
        }
    }
}

/// Whether `operation` is `prefix.name` with lowercase `[a-z0-9_]` segments.
pub fn is_valid_operation(operation: &str) -> bool {
    let segment =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match operation.split_once('.') {
        Some((prefix, name)) => segment(prefix) && name.split('.').all(segment),
        None => false,
    }
}

impl Envelope {
    /// A new request envelope; `envelope_id` doubles as the correlation id.
    pub fn request(envelope_id: Uuid, operation: impl Into<String>, payload: Value, now: DateTime<Utc>) -> Self {
        Self {
            envelope_id,
            correlation_id: envelope_id,
            causation_id: None,
            operation: operation.into(),
            handler_type: None,
            payload,
            metadata: EnvelopeMetadata::default(),
            timestamp: now,
            source_node: None,
            target_node: None,
            is_response: false,
            success: None,
            error: None,
        }
    }

    /// Parses an envelope from JSON bytes, refusing anything over `max_bytes`.
    pub fn from_json(bytes: &[u8], max_bytes: usize) -> Result<Self, EnvelopeError> {
        if bytes.len() > max_bytes {
            return Err(EnvelopeError::TooLarge { size: bytes.len(), limit: max_bytes });
        }
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json {
            line: e.line(),
            // serde_json says column 0 for an end of input right at a line's start.
            column: e.column().max(1),
            message: e.to_string(),
        })?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks what serde cannot: the operation's shape.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if is_valid_operation(&self.operation) {
            Ok(())
        } else {
            Err(EnvelopeError::BadOperation { envelope_id: self.envelope_id, operation: self.operation.clone() })
        }
    }

    /// The handler this envelope is for: `handler_type`, else the operation's prefix.
    pub fn handler_key(&self) -> &str {
        match &self.handler_type {
            Some(h) => h,
            None => self.operation.split_once('.').map_or(self.operation.as_str(), |(p, _)| p),
        }
    }

    fn reply(&self, reply_id: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            envelope_id: reply_id,
            correlation_id: self.correlation_id,
            causation_id: Some(self.envelope_id),
            operation: self.operation.clone(),
            handler_type: self.handler_type.clone(),
            payload: Value::Null,
            metadata: self.metadata.clone(),
            timestamp: now,
            source_node: self.target_node.clone(),
            target_node: self.source_node.clone(),
            is_response: true,
            success: None,
            error: None,
        }
    }

    /// A successful reply: keeps the correlation id, sets the causation id to this envelope.
    pub fn reply_ok(&self, reply_id: Uuid, payload: Value, now: DateTime<Utc>) -> Self {
        Self { payload, success: Some(true), ..self.reply(reply_id, now) }
    }

    /// A failed reply carrying `error`.
    pub fn reply_err(&self, reply_id: Uuid, error: ReplyError, now: DateTime<Utc>) -> Self {
        Self { success: Some(false), error: Some(error), ..self.reply(reply_id, now) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn reply_keeps_correlation_and_sets_causation() {
        let req = Envelope::request(Uuid::from_u128(1), "db.query", serde_json::json!({"sql": "select 1"}), at(10));
        let reply = req.reply_err(Uuid::from_u128(2), ReplyError::new(codes::OPERATION_TIMEOUT, "slow"), at(11));
        assert_eq!(reply.correlation_id, req.correlation_id);
        assert_eq!(reply.causation_id, Some(req.envelope_id));
        assert!(reply.is_response);
        assert_eq!(reply.success, Some(false));
        assert_eq!(reply.error.as_ref().unwrap().category, ErrorCategory::Timeout);
    }

    #[test]
    fn json_round_trip_and_handler_key() {
        let mut req = Envelope::request(Uuid::from_u128(7), "vault.read_secret", Value::Null, at(0));
        let bytes = serde_json::to_vec(&req).unwrap();
        assert_eq!(Envelope::from_json(&bytes, 1 << 20).unwrap(), req);
        assert_eq!(req.handler_key(), "vault");
        req.handler_type = Some("custom".into());
        assert_eq!(req.handler_key(), "custom");
    }

    #[test]
    fn bad_envelopes_name_the_problem() {
        let err = Envelope::from_json(b"{\"envelope_id\": \"nope\"}", 1024).unwrap_err();
        assert!(matches!(err, EnvelopeError::Json { line: 1, .. }), "{err}");
        assert!(err.to_string().contains("UUID") || err.to_string().contains("uuid"), "{err}");
        let err = Envelope::from_json(&[b' '; 2048], 1024).unwrap_err();
        assert_eq!(err.error_code(), codes::ENVELOPE_TOO_LARGE);
        let mut req = Envelope::request(Uuid::from_u128(3), "DB query", Value::Null, at(0));
        let err = Envelope::from_json(&serde_json::to_vec(&req).unwrap(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("00000000-0000-0000-0000-000000000003"), "{err}");
        req.operation = "db.".into();
        assert!(req.validate().is_err());
    }

    #[test]
    fn a_json_error_column_is_one_based_even_at_the_end_of_input() {
        // Found by the fuzz target `envelope_from_json`: the empty input (minimal already).
        let column = |bytes: &[u8]| match Envelope::from_json(bytes, 1024) {
            Err(EnvelopeError::Json { line, column, .. }) => (line, column),
            other => panic!("{other:?}"),
        };
        assert_eq!(column(b""), (1, 1));
        assert_eq!(column(b"{\n"), (2, 1));
        assert_eq!(column(b"{\"a\""), (1, 4));
    }

    #[test]
    fn a_payload_number_keeps_its_value_through_a_re_encoding() {
        // Found by the fuzz target `envelope_from_json` (minimised): without serde_json's
        // float_roundtrip the first decode rounded this to 8.88888888888889e43, which encodes
        // and decodes again as 8.888888888888889e43.
        let digits = "88888888888888888888888888888888888888888888";
        let json = format!(
            "{{\"envelope_id\":\"0192f1a4-7b3c-7d2e-8f00-000000000005\",\"correlation_id\":\"0192f1a4-7b3c-7d2e-8f00-000000000001\",\"operation\":\"t.t\",\"payload\":{{\"\":{{\"\":{digits}}}}},\"timestamp\":\"2026-11-22T00:00:00Z\"}}"
        );
        let decoded = Envelope::from_json(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(decoded.payload[""][""].as_f64(), Some(digits.parse::<f64>().unwrap()), "correctly rounded");
        let again = Envelope::from_json(&serde_json::to_vec(&decoded).unwrap(), 1 << 20).unwrap();
        assert_eq!(again, decoded);
    }
}
