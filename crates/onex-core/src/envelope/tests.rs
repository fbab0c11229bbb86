//! Unit tests of decoding and replies across dialects (the upstream samples are in `samples.rs`).

use serde_json::json;

use super::*;
use crate::error::{Classified, ErrorCategory, codes};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn minted() -> Minted {
    Minted { envelope_id: Uuid::from_u128(0xAAAA), timestamp: at(99), correlation_id: None }
}

fn decode(value: serde_json::Value) -> Result<Envelope, EnvelopeError> {
    Envelope::decode(&serde_json::to_vec(&value).unwrap(), 1 << 20, minted())
}

#[test]
fn reply_keeps_correlation_and_sets_causation() {
    let req = Envelope::request(Uuid::from_u128(1), "db.query", json!({"sql": "select 1"}), at(10));
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
    assert_eq!(Envelope::decode(&bytes, 1 << 20, minted()).unwrap(), req);
    assert_eq!(req.encode(), bytes, "this runtime's envelope is written as it always was");
    assert_eq!(req.handler_key(), "vault");
    req.handler_type = Some("custom".into());
    assert_eq!(req.handler_key(), "custom");
}

#[test]
fn bad_envelopes_name_the_problem() {
    let err = Envelope::decode(b"{\"envelope_id\": \"nope\"}", 1024, minted()).unwrap_err();
    assert!(matches!(err, EnvelopeError::Json { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("UUID") || err.to_string().contains("uuid"), "{err}");
    let err = Envelope::decode(&[b' '; 2048], 1024, minted()).unwrap_err();
    assert_eq!(err.error_code(), codes::ENVELOPE_TOO_LARGE);
    let mut req = Envelope::request(Uuid::from_u128(3), "DB query", Value::Null, at(0));
    let err = Envelope::decode(&serde_json::to_vec(&req).unwrap(), 1 << 20, minted()).unwrap_err();
    assert!(err.to_string().contains("00000000-0000-0000-0000-000000000003"), "{err}");
    req.operation = "db.".into();
    assert!(req.validate().is_err());
    let err = Envelope::decode(b"[1, 2]", 1024, minted()).unwrap_err();
    assert!(err.to_string().contains("an envelope (a JSON object)"), "{err}");
}

#[test]
fn a_wrong_field_is_named_with_its_position() {
    let text = "{\n  \"operation\": \"local.echo\",\n  \"envelope_version\": \"one\"\n}";
    let err = Envelope::decode(text.as_bytes(), 1024, minted()).unwrap_err();
    let EnvelopeError::Json { line, message, .. } = &err else { panic!("{err}") };
    assert_eq!(*line, 3, "{err}");
    assert!(message.contains("semantic version"), "{err}");
    let err = decode(json!({"operation": "x.y", "timestamp": "yesterday"})).unwrap_err();
    assert!(err.to_string().contains("ISO 8601 timestamp"), "{err}");
}

#[test]
fn a_request_without_an_operation_is_refused_naming_the_field() {
    let err = decode(json!({"payload": {}, "correlation_id": Uuid::from_u128(5)})).unwrap_err();
    assert_eq!(err.error_code(), codes::ENVELOPE_INVALID);
    let text = err.to_string();
    assert!(text.contains("envelope without an envelope_id") && text.contains("missing field `operation`"), "{text}");
    assert!(text.contains("a Python runtime request"), "{text}");
    let err = decode(json!({"envelope_id": Uuid::from_u128(6), "envelope_timestamp": "2026-07-24T12:00:00Z",
        "payload": {"n": 1}}))
    .unwrap_err()
    .to_string();
    assert!(err.contains("envelope 00000000-0000-0000-0000-000000000006"), "{err}");
    assert!(
        err.contains("`payload.operation` (or `event_type`, or `payload_type`)") && err.contains("ModelEventEnvelope"),
        "{err}"
    );
}

#[test]
fn what_a_request_leaves_out_is_minted() {
    let e = decode(json!({"operation": "local.echo", "timestamp": "2026-07-24T12:00:00Z"})).unwrap();
    assert_eq!(
        (e.envelope_id, e.correlation_id, e.dialect),
        (minted().envelope_id, minted().envelope_id, Dialect::Native)
    );
    let e = decode(json!({"operation": "local.echo", "payload": {"n": 1}})).unwrap();
    assert_eq!((e.envelope_id, e.timestamp, e.dialect), (minted().envelope_id, at(99), Dialect::PythonRuntime));
    assert_eq!(e.correlation_id, e.envelope_id, "a missing correlation id is the envelope id");
}

#[test]
fn upstream_operations_are_free_text_and_naive_timestamps_are_utc() {
    let e = decode(json!({"envelope_version": {"major": 1, "minor": 0, "patch": 0}, "operation": "report_error",
        "timestamp": "2026-07-24T12:00:00.250"}))
    .unwrap();
    assert_eq!((e.operation.as_str(), e.dialect), ("report_error", Dialect::UpstreamOnex));
    assert_eq!(e.timestamp, DateTime::parse_from_rfc3339("2026-07-24T12:00:00.25Z").unwrap());
    let err = decode(json!({"operation": "report_error", "timestamp": "2026-07-24T12:00:00Z"})).unwrap_err();
    assert!(matches!(err, EnvelopeError::BadOperation { .. }), "this runtime's own envelopes are still checked");
}

#[test]
fn an_event_names_its_operation_by_payload_then_type_then_model_and_top_level_trace_ids_win() {
    let base = json!({"envelope_timestamp": "2026-07-24T12:00:00Z", "event_type": "user.created",
        "trace_id": "0af76519-16cd-43dd-8448-eb211c80319c", "span_id": "b7ad6b71-6920-3331-8000-000000000000",
        "metadata": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}});
    let e = decode(base.clone()).unwrap();
    assert_eq!(e.operation, "user.created");
    assert_eq!(e.metadata.traceparent.as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_eq!(e.metadata.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "both are kept");
    let mut with_op = base.clone();
    with_op["payload"] = json!({"operation": "local.echo"});
    assert_eq!(decode(with_op).unwrap().operation, "local.echo");
    let mut by_model = base;
    by_model["event_type"] = json!(null);
    by_model["payload_type"] = json!("ModelRoutingCommand");
    assert_eq!(decode(by_model).unwrap().operation, "ModelRoutingCommand", "an event names at least its model");
}

#[test]
fn a_given_traceparent_is_kept_and_a_string_error_is_read() {
    let e = decode(json!({"operation": "x.y", "timestamp": "2026-07-24T12:00:00Z",
        "metadata": {"traceparent": "00-aa-bb-01", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7"}, "is_response": true, "success": false,
        "error": "[ONEX_CORE_082_OPERATION_TIMEOUT] slow"}))
    .unwrap();
    assert_eq!(e.metadata.traceparent.as_deref(), Some("00-aa-bb-01"));
    let error = e.error.unwrap();
    assert_eq!((error.code.as_str(), error.category), ("ONEX_CORE_082_OPERATION_TIMEOUT", ErrorCategory::Timeout));
}

#[test]
fn a_stored_reply_parses_back_whole_and_answers_in_the_duplicates_dialect() {
    let request = decode(json!({"envelope_version": {"major": 3, "minor": 1, "patch": 4}, "operation": "local.echo",
        "timestamp": "2026-07-24T12:00:00Z", "envelope_id": Uuid::from_u128(1), "source_node": "client",
        "metadata": {"tags": {"env": "dev"}}}))
    .unwrap();
    let reply = request.reply_ok(Uuid::from_u128(2), json!({"n": 1}), at(5));
    let stored = serde_json::to_value(&reply).unwrap();
    assert_eq!(stored["dialect"], "model_onex_envelope");
    let back: Envelope = serde_json::from_value(stored).unwrap();
    assert_eq!(back, reply);
    assert_eq!(back.encode(), reply.encode());

    let mut duplicate = Envelope::request(Uuid::from_u128(1), "local.echo", json!({}), at(6));
    duplicate.dialect = Dialect::PythonRuntime;
    let again: serde_json::Value = serde_json::from_slice(&back.clone().as_reply_to(&duplicate).encode()).unwrap();
    assert_eq!(again, json!({"status": "success", "payload": {"n": 1}, "correlation_id": Uuid::from_u128(1)}));
    let native = back.as_reply_to(&Envelope::request(Uuid::from_u128(1), "local.echo", json!({}), at(6)));
    assert_eq!((native.dialect, native.envelope_version), (Dialect::Native, None));
}

#[test]
fn a_json_error_column_is_one_based_even_at_the_end_of_input() {
    // Found by the fuzz target `envelope_decode`: the empty input (minimal already).
    let column = |bytes: &[u8]| match Envelope::decode(bytes, 1024, minted()) {
        Err(EnvelopeError::Json { line, column, .. }) => (line, column),
        other => panic!("{other:?}"),
    };
    assert_eq!(column(b""), (1, 1));
    assert_eq!(column(b"{\n"), (2, 1));
}

#[test]
fn a_payload_number_keeps_its_value_through_a_re_encoding() {
    // Found by the fuzz target `envelope_decode` (minimised): without serde_json's
    // float_roundtrip the first decode rounded this to 8.88888888888889e43, which encodes and
    // decodes again as 8.888888888888889e43.
    let digits = "88888888888888888888888888888888888888888888";
    let json = format!(
        "{{\"envelope_id\":\"0192f1a4-7b3c-7d2e-8f00-000000000005\",\"correlation_id\":\"0192f1a4-7b3c-7d2e-8f00-000000000001\",\"operation\":\"t.t\",\"payload\":{{\"\":{{\"\":{digits}}}}},\"timestamp\":\"2026-11-22T00:00:00Z\"}}"
    );
    let decoded = Envelope::decode(json.as_bytes(), 1 << 20, minted()).unwrap();
    assert_eq!(decoded.payload[""][""].as_f64(), Some(digits.parse::<f64>().unwrap()), "correctly rounded");
    let again = Envelope::decode(&decoded.encode(), 1 << 20, minted()).unwrap();
    assert_eq!(again, decoded);
}
