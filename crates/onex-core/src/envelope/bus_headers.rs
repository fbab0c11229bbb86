//! The headers an envelope carries on a bus: this runtime's own (`onex-*`, `traceparent`) and
//! the Python runtime's (`ModelEventHeaders`: `message_id`, `correlation_id`, `event_type`, …),
//! written on every message and read from every message, so the Python runtime and this host
//! can share topics during a migration.

use std::fmt::Write as _;

use uuid::Uuid;

use super::{Dialect, Envelope, HOST_NODE, HeaderMap};
use crate::rfc3339::{self, Fraction};

/// Header carrying the envelope id.
pub const ENVELOPE_ID: &str = "onex-envelope-id";
/// Header carrying the correlation id.
pub const CORRELATION_ID: &str = "onex-correlation-id";
/// Header carrying the causation id.
pub const CAUSATION_ID: &str = "onex-causation-id";
/// Header carrying the operation.
pub const OPERATION: &str = "onex-operation";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// The Python runtime's header names (`ModelEventHeaders`), every value UTF-8 text.
pub mod python {
    /// MIME type of the value.
    pub const CONTENT_TYPE: &str = "content_type";
    /// Correlation id.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The message's id: the envelope id.
    pub const MESSAGE_ID: &str = "message_id";
    /// Creation time, ISO 8601.
    pub const TIMESTAMP: &str = "timestamp";
    /// The service that produced it.
    pub const SOURCE: &str = "source";
    /// Dot-path type of the event.
    pub const EVENT_TYPE: &str = "event_type";
    /// Schema version of the value.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// `low`, `normal`, `high` or `critical`.
    pub const PRIORITY: &str = "priority";
    /// Message-level delivery attempts so far.
    pub const RETRY_COUNT: &str = "retry_count";
    /// Message-level attempts allowed.
    pub const MAX_RETRIES: &str = "max_retries";
    /// Target destination, when set.
    pub const DESTINATION: &str = "destination";
    /// Trace id, when traced.
    pub const TRACE_ID: &str = "trace_id";
    /// Span id, when traced.
    pub const SPAN_ID: &str = "span_id";
    /// Name of the traced operation.
    pub const OPERATION_NAME: &str = "operation_name";
    /// Partition key, when keyed.
    pub const PARTITION_KEY: &str = "partition_key";
}

/// `ModelEventHeaders`' defaults for what this runtime has no value of its own for.
const PYTHON_SCHEMA_VERSION: &str = "1.0.0";
const PYTHON_PRIORITY: &str = "normal";
/// `ModelEventHeaders.max_retries`' default, written unless the writer knows a budget.
pub const PYTHON_MAX_RETRIES: u32 = 3;

/// The headers of `envelope` on a bus message with partition key `key`: this runtime's and the
/// Python runtime's. `attempts` is the message-level delivery attempts so far (0 for a new
/// message) and `max_retries` the attempts allowed ([`PYTHON_MAX_RETRIES`] unless known).
/// Every value is written straight into the map's one text (see [`HeaderMap`]).
pub fn write(envelope: &Envelope, key: Option<&str>, attempts: u32, max_retries: u32) -> HeaderMap {
    let operation = envelope.operation.as_str();
    let source = envelope.source_node.as_deref().unwrap_or(HOST_NODE);
    let traceparent = envelope.metadata.traceparent.as_deref();
    let text = 5 * 36
        + 100
        + 3 * operation.len()
        + source.len()
        + envelope.target_node.as_ref().map_or(0, String::len)
        + key.map_or(0, str::len)
        + traceparent.map_or(0, |t| 2 * t.len());
    let mut headers = HeaderMap::with_capacity(20, text);
    let uuid =
        |id: Uuid| move |text: &mut String| text.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    let number = |n: u32| {
        move |text: &mut String| {
            // Writing into a `String` cannot fail.
            let _ = write!(text, "{n}");
        }
    };
    headers.insert_with(ENVELOPE_ID, uuid(envelope.envelope_id));
    headers.insert_with(CORRELATION_ID, uuid(envelope.correlation_id));
    headers.insert(OPERATION, operation);
    if let Some(causation) = envelope.causation_id {
        headers.insert_with(CAUSATION_ID, uuid(causation));
    }
    headers.insert(python::CONTENT_TYPE, "application/json");
    headers.insert_with(python::CORRELATION_ID, uuid(envelope.correlation_id));
    headers.insert_with(python::MESSAGE_ID, uuid(envelope.envelope_id));
    headers.insert_with(python::TIMESTAMP, |text| rfc3339::write(text, &envelope.timestamp, Fraction::Micros));
    headers.insert(python::SOURCE, source);
    let event_type = match (&envelope.event, envelope.dialect) {
        (Some(event), Dialect::UpstreamEvent) => event.event_type.as_deref(),
        _ => None,
    };
    headers.insert(python::EVENT_TYPE, event_type.unwrap_or(operation));
    headers.insert(python::SCHEMA_VERSION, PYTHON_SCHEMA_VERSION);
    headers.insert(python::PRIORITY, PYTHON_PRIORITY);
    headers.insert_with(python::RETRY_COUNT, number(attempts));
    headers.insert_with(python::MAX_RETRIES, number(max_retries));
    if !operation.is_empty() {
        headers.insert(python::OPERATION_NAME, operation);
    }
    if let Some(target) = &envelope.target_node {
        headers.insert(python::DESTINATION, target);
    }
    if let Some(key) = key {
        headers.insert(python::PARTITION_KEY, key);
    }
    if let Some(traceparent) = traceparent {
        // `00-<trace>-<span>-<flags>`: the Python headers carry the two ids apart.
        let mut parts = traceparent.split('-').skip(1);
        if let (Some(trace), Some(span)) = (parts.next(), parts.next()) {
            headers.insert(python::TRACE_ID, trace);
            headers.insert(python::SPAN_ID, span);
        }
        headers.insert(TRACEPARENT, traceparent);
    }
    headers
}

/// What a consumed message's headers say of its envelope, whichever runtime wrote them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
    /// The envelope id (`onex-envelope-id`, else the Python `message_id`).
    pub envelope_id: Option<Uuid>,
    /// The correlation id (`onex-correlation-id`, else the Python `correlation_id`).
    pub correlation_id: Option<Uuid>,
    /// Delivery attempts so far (the Python `retry_count`).
    pub attempts: u32,
}

/// Reads `headers` (ids that do not parse are left out).
pub fn read(headers: &HeaderMap) -> Read {
    let uuid = |names: [&str; 2]| names.iter().find_map(|n| Uuid::parse_str(headers.get(n)?.trim()).ok());
    Read {
        envelope_id: uuid([ENVELOPE_ID, python::MESSAGE_ID]),
        correlation_id: uuid([CORRELATION_ID, python::CORRELATION_ID]),
        attempts: headers.get(python::RETRY_COUNT).and_then(|v| v.trim().parse().ok()).unwrap_or(0),
    }
}

/// The trace a consumed message's headers name: its W3C `traceparent`, else the Python runtime's
/// `trace_id` and `span_id` (for an envelope whose body names none).
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    let given = headers.get(TRACEPARENT).map(|t| t.trim()).filter(|t| super::trace::parse_traceparent(t).is_some());
    given.map(str::to_owned).or_else(|| {
        let (trace, span) = (headers.get(python::TRACE_ID)?, headers.get(python::SPAN_ID)?);
        super::trace::traceparent(trace, span)
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn envelope() -> Envelope {
        let now = Utc.with_ymd_and_hms(2026, 7, 24, 12, 0, 0).unwrap();
        let mut e = Envelope::request(Uuid::from_u128(1), "report_error", json!({}), now);
        e.correlation_id = Uuid::from_u128(2);
        e.metadata.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        e
    }

    #[test]
    fn every_message_carries_the_python_runtimes_headers_beside_this_runtimes() {
        let headers = write(&envelope(), Some("entity-7"), 0, PYTHON_MAX_RETRIES);
        let get = |k: &str| headers.get(k);
        assert_eq!(get(ENVELOPE_ID), Some("00000000-0000-0000-0000-000000000001"));
        assert_eq!(get(python::MESSAGE_ID), get(ENVELOPE_ID));
        assert_eq!(get(python::CORRELATION_ID), Some("00000000-0000-0000-0000-000000000002"));
        assert_eq!(get(python::TIMESTAMP), Some("2026-07-24T12:00:00.000000Z"));
        assert_eq!(get(python::SOURCE), Some(HOST_NODE));
        assert_eq!(get(python::EVENT_TYPE), Some("report_error"));
        assert_eq!(get(python::CONTENT_TYPE), Some("application/json"));
        assert_eq!((get(python::RETRY_COUNT), get(python::MAX_RETRIES)), (Some("0"), Some("3")));
        assert_eq!(get(python::PARTITION_KEY), Some("entity-7"));
        assert_eq!(get(python::TRACE_ID), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(traceparent(&headers), envelope().metadata.traceparent, "read back as written");
        let mut python_only = headers.clone();
        python_only.remove(TRACEPARENT);
        assert_eq!(traceparent(&python_only), envelope().metadata.traceparent, "from trace_id and span_id");
        assert_eq!(get(python::SPAN_ID), Some("00f067aa0ba902b7"));
        assert_eq!(get(python::DESTINATION), None, "written only when set");
    }

    #[test]
    fn the_ids_and_attempts_are_read_from_either_runtimes_headers() {
        let ours = write(&envelope(), None, 2, 5);
        assert_eq!(
            read(&ours),
            Read { envelope_id: Some(Uuid::from_u128(1)), correlation_id: Some(Uuid::from_u128(2)), attempts: 2 }
        );
        let python = HeaderMap::from([
            ("message_id", "00000000-0000-0000-0000-000000000009"),
            ("correlation_id", "not a uuid"),
            ("retry_count", "1"),
        ]);
        assert_eq!(read(&python), Read { envelope_id: Some(Uuid::from_u128(9)), correlation_id: None, attempts: 1 });
    }
}
