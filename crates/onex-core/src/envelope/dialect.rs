//! The wire shapes (dialects) an envelope may come in, recognised per message, and the values the
//! host mints for what a request leaves out.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The shape an envelope came in; its replies are written in the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Dialect {
    /// This runtime's own envelope.
    #[default]
    #[serde(rename = "onex")]
    Native,
    /// Upstream omnibase_core's `ModelOnexEnvelope`: `envelope_version` as a mapping, tags as a
    /// map, `error` as a string.
    #[serde(rename = "model_onex_envelope")]
    UpstreamOnex,
    /// Upstream omnibase_core's `ModelEventEnvelope`: `envelope_timestamp`, `event_type` and no
    /// `operation`, QoS and trace fields at the top level.
    #[serde(rename = "model_event_envelope")]
    UpstreamEvent,
    /// The Python runtime host's minimal request `{operation, payload[, correlation_id]}` and its
    /// `{status, payload, correlation_id}` replies.
    #[serde(rename = "python_runtime")]
    PythonRuntime,
}

impl Dialect {
    /// Whether this is this runtime's own shape (not written out when serialising an envelope).
    pub fn is_native(&self) -> bool {
        *self == Self::Native
    }

    /// The stable name (as serialised in stored envelopes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "onex",
            Self::UpstreamOnex => "model_onex_envelope",
            Self::UpstreamEvent => "model_event_envelope",
            Self::PythonRuntime => "python_runtime",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "this runtime's envelope",
            Self::UpstreamOnex => "a ModelOnexEnvelope",
            Self::UpstreamEvent => "a ModelEventEnvelope",
            Self::PythonRuntime => "a Python runtime request",
        })
    }
}

/// Values the host mints for a request that leaves them out (core generates no ids and reads no
/// clock). A missing correlation id is `correlation_id` when known (a bus message's header), else
/// the envelope id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minted {
    /// The envelope id, if the request has none.
    pub envelope_id: Uuid,
    /// The timestamp, if the request has none.
    pub timestamp: DateTime<Utc>,
    /// The correlation id, if the request has none (else the envelope id).
    pub correlation_id: Option<Uuid>,
}

/// The presence of the fields that tell the dialects apart.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Markers {
    /// `envelope_timestamp` (ModelEventEnvelope's timestamp).
    pub envelope_timestamp: bool,
    /// `onex_version` (ModelEventEnvelope only).
    pub onex_version: bool,
    /// `event_type`.
    pub event_type: bool,
    /// `operation`.
    pub operation: bool,
    /// `envelope_version` (required by ModelOnexEnvelope; this runtime's envelope has none).
    pub envelope_version: bool,
    /// `timestamp` (required by this runtime's envelope and ModelOnexEnvelope).
    pub timestamp: bool,
}

impl Markers {
    /// The dialect of an envelope with these fields:
    /// - `envelope_timestamp`, `onex_version`, or `event_type` without `operation`: ModelEventEnvelope;
    /// - else `envelope_version`: ModelOnexEnvelope;
    /// - else no `timestamp`: the Python runtime's minimal request (or reply);
    /// - else this runtime's envelope.
    pub(super) fn dialect(self) -> Dialect {
        if self.envelope_timestamp || self.onex_version || (self.event_type && !self.operation) {
            Dialect::UpstreamEvent
        } else if self.envelope_version {
            Dialect::UpstreamOnex
        } else if !self.timestamp {
            Dialect::PythonRuntime
        } else {
            Dialect::Native
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_are_told_apart_by_their_fields() {
        let m = Markers::default();
        assert_eq!(Markers { timestamp: true, operation: true, ..m }.dialect(), Dialect::Native);
        assert_eq!(Markers { operation: true, ..m }.dialect(), Dialect::PythonRuntime);
        assert_eq!(Markers { timestamp: true, envelope_version: true, ..m }.dialect(), Dialect::UpstreamOnex);
        assert_eq!(Markers { envelope_timestamp: true, envelope_version: true, ..m }.dialect(), Dialect::UpstreamEvent);
        assert_eq!(Markers { event_type: true, ..m }.dialect(), Dialect::UpstreamEvent);
        assert_eq!(Markers { event_type: true, operation: true, timestamp: true, ..m }.dialect(), Dialect::Native);
    }

    #[test]
    fn dialect_names_are_stable() {
        for d in [Dialect::Native, Dialect::UpstreamOnex, Dialect::UpstreamEvent, Dialect::PythonRuntime] {
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(d.as_str()));
        }
    }
}
