//! The headers an envelope carries on a bus: this runtime's own (`onex-*`, `traceparent`) and
//! the Python runtime's (`ModelEventHeaders`: `message_id`, `correlation_id`, `event_type`, …),
//! written on every message and read from every message, so the Python runtime and this host
//! can share topics during a migration.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use uuid::Uuid;

use super::{Dialect, Envelope, HOST_NODE};

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
pub fn write(envelope: &Envelope, key: Option<&str>, attempts: u32, max_retries: u32) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let mut put = |name: &str, value: String| {
        headers.insert(name.to_owned(), value);
    };
    put(ENVELOPE_ID, envelope.envelope_id.to_string());
    put(CORRELATION_ID, envelope.correlation_id.to_string());
    put(OPERATION, envelope.operation.clone());
    if let Some(causation) = envelope.causation_id {
        put(CAUSATION_ID, causation.to_string());
    }
    put(python::CONTENT_TYPE, "application/json".to_owned());
    put(python::CORRELATION_ID, envelope.correlation_id.to_string());
    put(python::MESSAGE_ID, envelope.envelope_id.to_string());
    put(python::TIMESTAMP, envelope.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true));
    put(python::SOURCE, envelope.source_node.clone().unwrap_or_else(|| HOST_NODE.to_owned()));
    let event_type = match (&envelope.event, envelope.dialect) {
        (Some(event), Dialect::UpstreamEvent) => event.event_type.clone(),
        _ => None,
    };
    put(python::EVENT_TYPE, event_type.unwrap_or_else(|| envelope.operation.clone()));
    put(python::SCHEMA_VERSION, PYTHON_SCHEMA_VERSION.to_owned());
    put(python::PRIORITY, PYTHON_PRIORITY.to_owned());
    put(python::RETRY_COUNT, attempts.to_string());
    put(python::MAX_RETRIES, max_retries.to_string());
    if !envelope.operation.is_empty() {
        put(python::OPERATION_NAME, envelope.operation.clone());
    }
    if let Some(target) = &envelope.target_node {
        put(python::DESTINATION, target.clone());
    }
    if let Some(key) = key {
        put(python::PARTITION_KEY, key.to_owned());
    }
    if let Some(traceparent) = &envelope.metadata.traceparent {
        // `00-<trace>-<span>-<flags>`: the Python headers carry the two ids apart.
        let mut parts = traceparent.split('-').skip(1);
        if let (Some(trace), Some(span)) = (parts.next(), parts.next()) {
            put(python::TRACE_ID, trace.to_owned());
            put(python::SPAN_ID, span.to_owned());
        }
        put(TRACEPARENT, traceparent.clone());
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
pub fn read(headers: &BTreeMap<String, String>) -> Read {
    let uuid = |names: [&str; 2]| names.iter().find_map(|n| Uuid::parse_str(headers.get(*n)?.trim()).ok());
    Read {
        envelope_id: uuid([ENVELOPE_ID, python::MESSAGE_ID]),
        correlation_id: uuid([CORRELATION_ID, python::CORRELATION_ID]),
        attempts: headers.get(python::RETRY_COUNT).and_then(|v| v.trim().parse().ok()).unwrap_or(0),
    }
}

/// The trace a consumed message's headers name: its W3C `traceparent`, else the Python runtime's
/// `trace_id` and `span_id` (for an envelope whose body names none).
pub fn traceparent(headers: &BTreeMap<String, String>) -> Option<String> {
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
        let get = |k: &str| headers.get(k).map(String::as_str);
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
        let python_only: BTreeMap<String, String> =
            headers.iter().filter(|(k, _)| k.as_str() != TRACEPARENT).map(|(k, v)| (k.clone(), v.clone())).collect();
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
        let python: BTreeMap<String, String> = [
            ("message_id", "00000000-0000-0000-0000-000000000009"),
            ("correlation_id", "not a uuid"),
            ("retry_count", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(read(&python), Read { envelope_id: Some(Uuid::from_u128(9)), correlation_id: None, attempts: 1 });
    }
}
