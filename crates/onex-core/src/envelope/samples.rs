//! The upstream samples (`../shared/upstream/envelopes`, real captures of the Python system) read
//! in their dialect, field by field, and their replies written in it, field by field.

use std::collections::BTreeSet;

use serde_json::{Value as Json, json};

use super::*;
use crate::error::codes;

macro_rules! sample {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/upstream/envelopes/", $name)).as_slice()
    };
}

const REPLY_ID: u128 = 0xBEEF;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-07-24T12:00:01.5Z").unwrap().with_timezone(&Utc)
}

fn minted() -> Minted {
    Minted { envelope_id: id(0xAAAA), timestamp: now(), correlation_id: None }
}

fn read(bytes: &[u8]) -> Envelope {
    Envelope::decode(bytes, 1 << 20, minted()).unwrap()
}

fn json_of(envelope: &Envelope) -> Json {
    serde_json::from_slice(&envelope.encode()).unwrap()
}

fn keys(value: &Json) -> BTreeSet<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

/// Replies to `request` (echo, and a failure), checks they survive being stored, returns them as JSON.
fn replies(request: &Envelope) -> (Json, Json) {
    let ok = request.reply_ok(id(REPLY_ID), request.payload.clone(), now());
    let error = ReplyError::new(codes::OPERATION_NOT_FOUND, "no node declares operation `x`");
    let failed = request.reply_err(id(REPLY_ID), error, now());
    for reply in [&ok, &failed] {
        let stored: Envelope = serde_json::from_value(serde_json::to_value(reply).unwrap()).unwrap();
        assert_eq!(&stored, reply, "a stored reply parses back whole");
        assert_eq!(stored.encode(), reply.encode());
    }
    (json_of(&ok), json_of(&failed))
}

const FAILED_TEXT: &str = "[ONEX_CORE_052_OPERATION_NOT_FOUND] no node declares operation `x`";

#[test]
fn model_onex_envelope_min_and_its_replies() {
    let bytes = sample!("upstream_onex_envelope_min.json");
    let e = read(bytes);
    assert_eq!(e.dialect, Dialect::UpstreamOnex);
    assert_eq!((e.envelope_id, e.correlation_id, e.causation_id), (id(1), id(2), None));
    assert_eq!(e.envelope_version, Some(SemVer::new(1, 0, 0)));
    assert_eq!(
        (e.operation.as_str(), e.source_node.as_deref(), e.target_node.as_deref()),
        ("local.echo", Some("client"), None)
    );
    assert_eq!(e.payload, json!({"hello": "world"}));
    assert_eq!(e.metadata.tags, Tags::Map(Default::default()));
    assert_eq!(e.metadata.traceparent, None, "no trace ids, no traceparent");
    assert_eq!(e.timestamp, DateTime::parse_from_rfc3339("2026-07-24T12:00:00Z").unwrap());
    assert!(!e.is_response && e.success.is_none() && e.error.is_none());
    let original: Json = serde_json::from_slice(bytes).unwrap();
    assert_eq!(json_of(&e), original, "written back as it came");

    let (ok, failed) = replies(&e);
    assert_eq!(keys(&ok), keys(&original), "every field ModelOnexEnvelope has");
    assert_eq!(ok["envelope_id"], json!(id(REPLY_ID)));
    assert_eq!(ok["envelope_version"], original["envelope_version"]);
    assert_eq!(ok["correlation_id"], json!(id(2)));
    assert_eq!(ok["causation_id"], json!(id(1)));
    assert_eq!(ok["source_node"], "client", "upstream create_response: target, else source");
    assert_eq!(ok["target_node"], "client");
    assert_eq!(ok["operation"], "local.echo");
    assert_eq!(ok["payload"], json!({"hello": "world"}));
    assert_eq!(ok["metadata"], original["metadata"]);
    assert_eq!(ok["timestamp"], "2026-07-24T12:00:01.500Z");
    assert_eq!((&ok["is_response"], &ok["success"], &ok["error"]), (&json!(true), &json!(true), &Json::Null));
    assert_eq!(ok["chunking"], Json::Null);
    assert_eq!(keys(&failed), keys(&original));
    assert_eq!((&failed["success"], &failed["error"]), (&json!(false), &json!(FAILED_TEXT)));
    assert_eq!(failed["payload"], json!({}), "upstream payloads are objects");
    assert_eq!(failed["envelope_version"], original["envelope_version"]);
}

#[test]
fn model_onex_envelope_full_keeps_its_upstream_fields() {
    let bytes = sample!("upstream_onex_envelope_full.json");
    let e = read(bytes);
    assert_eq!(e.dialect, Dialect::UpstreamOnex);
    assert_eq!(e.source_node_id, Some(id(3)));
    assert_eq!((e.target_node.as_deref(), e.handler_type.as_deref()), (Some("onex-runtime-host"), Some("local")));
    assert_eq!(e.metadata.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(e.metadata.span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(e.metadata.request_id.as_deref(), Some("req-1"));
    assert_eq!(e.metadata.traceparent.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(e.metadata.headers.get("x-a").map(String::as_str), Some("1"));
    assert_eq!(e.metadata.tags.to_map().get("env"), Some(&"dev"));
    let original: Json = serde_json::from_slice(bytes).unwrap();
    assert_eq!(json_of(&e), original, "written back as it came");

    let (ok, _) = replies(&e);
    assert_eq!(keys(&ok), keys(&original));
    assert_eq!((&ok["source_node"], &ok["target_node"]), (&json!("onex-runtime-host"), &json!("client")));
    assert_eq!(ok["handler_type"], "local");
    assert_eq!(ok["source_node_id"], Json::Null, "the reply's creator is not the request's");
    assert_eq!(ok["metadata"], original["metadata"], "trace ids, request id, headers and tags echoed");
    assert_eq!(ok["payload"], json!({"hello": "world"}));
}

#[test]
fn model_onex_envelope_error_reply_reads_as_a_failed_reply() {
    let bytes = sample!("upstream_onex_envelope_error_reply.json");
    let e = read(bytes);
    assert_eq!(e.dialect, Dialect::UpstreamOnex);
    assert!(e.is_response);
    assert_eq!((e.envelope_id, e.correlation_id, e.causation_id), (id(4), id(2), Some(id(1))));
    assert_eq!(e.success, Some(false));
    let error = e.error.as_ref().unwrap();
    assert_eq!((error.code.as_str(), error.message.as_str()), ("", "boom"), "an upstream error has no code");
    assert_eq!(e.source_node.as_deref(), Some("svc"));
    assert_eq!(json_of(&e), serde_json::from_slice::<Json>(bytes).unwrap(), "written back as it came");
}

#[test]
fn model_event_envelope_and_its_replies() {
    let bytes = sample!("upstream_event_envelope.json");
    let e = read(bytes);
    assert_eq!(e.dialect, Dialect::UpstreamEvent);
    assert_eq!((e.envelope_id, e.correlation_id), (id(5), id(2)));
    assert_eq!(e.operation, "local.echo", "payload.operation");
    assert_eq!(e.timestamp, DateTime::parse_from_rfc3339("2026-07-24T12:00:00Z").unwrap(), "envelope_timestamp");
    assert_eq!(e.envelope_version, Some(SemVer::new(2, 1, 0)));
    let event = e.event.as_deref().unwrap();
    assert_eq!(event.event_type.as_deref(), Some("local.echo"));
    assert_eq!((event.priority, event.retry_count, event.timeout_seconds), (Some(5), Some(0), None));
    assert_eq!(event.onex_version, Some(SemVer::new(1, 0, 0)));
    assert_eq!((&event.trace_id, &event.span_id, &event.request_id), (&None, &None, &None));
    let original: Json = serde_json::from_slice(bytes).unwrap();
    assert_eq!(json_of(&e), original, "written back as it came");

    let (ok, failed) = replies(&e);
    let reply_extras = BTreeSet::from(["causation_id", "is_response", "success"]);
    assert_eq!(
        keys(&ok),
        keys(&original).union(&reply_extras).copied().collect(),
        "the model's fields and the reply's"
    );
    assert_eq!(ok["payload"], json!({"operation": "local.echo"}));
    assert_eq!(ok["envelope_id"], json!(id(REPLY_ID)));
    assert_eq!(ok["envelope_timestamp"], "2026-07-24T12:00:01.500Z");
    assert_eq!((&ok["correlation_id"], &ok["causation_id"]), (&json!(id(2)), &json!(id(5))));
    assert_eq!(ok["event_type"], "local.echo");
    for echoed in ["envelope_version", "onex_version", "priority", "retry_count", "metadata", "security_context"] {
        assert_eq!(ok[echoed], original[echoed], "{echoed}");
    }
    assert_eq!((&ok["is_response"], &ok["success"]), (&json!(true), &json!(true)));
    assert_eq!((&failed["success"], &failed["error"]), (&json!(false), &json!(FAILED_TEXT)));
    assert_eq!(failed["payload"], json!({}));
}

#[test]
fn python_runtime_request_and_its_replies() {
    let e = read(sample!("python_runtime_request_min.json"));
    assert_eq!(e.dialect, Dialect::PythonRuntime);
    assert_eq!(e.operation, "echo.ping");
    assert_eq!(e.payload, json!({"message": "hello", "seq": 1}));
    assert_eq!(e.correlation_id, "59bc39d5-5a92-49fe-827c-e5e6cbe4dd5a".parse::<Uuid>().unwrap());
    assert_eq!((e.envelope_id, e.timestamp), (minted().envelope_id, minted().timestamp), "minted");

    let (ok, failed) = replies(&e);
    let success_sample: Json = serde_json::from_slice(sample!("python_runtime_reply_success.json")).unwrap();
    assert_eq!(keys(&ok), keys(&success_sample));
    assert_eq!(ok, json!({"status": "success", "payload": e.payload, "correlation_id": e.correlation_id}));

    let error_sample: Json = serde_json::from_slice(sample!("python_runtime_reply_error.json")).unwrap();
    assert_eq!(keys(&failed), keys(&error_sample));
    assert_eq!((&failed["success"], &failed["status"]), (&json!(false), &json!("error")));
    assert_eq!((&failed["error"], &failed["correlation_id"]), (&json!(FAILED_TEXT), &json!(e.correlation_id)));
    let record = &failed["payload"];
    let sample_record: BTreeSet<&str> =
        keys(&error_sample["payload"]).into_iter().filter(|k| *k != "origin_topic").collect();
    assert_eq!(keys(record), sample_record, "the failure record's fields (no origin topic off the bus)");
    assert_eq!((&record["correlation_id"], &record["status"]), (&json!(e.correlation_id), &json!("failed")));
    assert_eq!(
        (&record["failure_class"], &record["failure_code"]),
        (&json!("NotFoundError"), &json!("ONEX_CORE_052_OPERATION_NOT_FOUND"))
    );
    assert_eq!((&record["retryable"], &record["failure_reason"]), (&json!(false), &json!(FAILED_TEXT)));
    assert_eq!(record["terminalized_at"], "2026-07-24T12:00:01.500Z");
}

#[test]
fn python_runtime_replies_read_as_replies_and_are_written_back_as_they_came() {
    for bytes in [sample!("python_runtime_reply_success.json"), sample!("python_runtime_reply_error.json")] {
        let e = read(bytes);
        assert_eq!(e.dialect, Dialect::PythonRuntime);
        assert!(e.is_response);
        assert_eq!(e.correlation_id.to_string(), serde_json::from_slice::<Json>(bytes).unwrap()["correlation_id"]);
        assert_eq!(json_of(&e), serde_json::from_slice::<Json>(bytes).unwrap());
    }
    let ok = read(sample!("python_runtime_reply_success.json"));
    assert_eq!((ok.success, &ok.payload), (Some(true), &json!({"a": 1})));
    let failed = read(sample!("python_runtime_reply_error.json"));
    assert_eq!(failed.success, Some(false));
    let error = failed.error.unwrap();
    assert_eq!(error.code, "ONEX_CORE_007_INVALID_INPUT");
    assert_eq!(error.message, "No handler registered for prefix: 'nope'");
    assert_eq!(failed.payload["failure_class"], "UnknownHandlerTypeError", "the failure record is kept");
}
