//! The Python runtime host's shapes: the minimal request `{operation, payload, correlation_id}`,
//! the success reply `{status: "success", payload, correlation_id}` and the error reply
//! `{success: false, status: "error", error: "[CODE] message", correlation_id, payload}` whose
//! payload is a failure record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Envelope, ReplyError};
use crate::error::ErrorCategory;

#[derive(Serialize)]
struct Request<'a> {
    operation: &'a str,
    payload: &'a Value,
    correlation_id: Uuid,
}

#[derive(Serialize)]
struct Success<'a> {
    status: &'static str,
    payload: &'a Value,
    correlation_id: Uuid,
}

#[derive(Serialize)]
struct Failure<'a> {
    success: bool,
    status: &'static str,
    error: String,
    correlation_id: Uuid,
    payload: FailurePayload<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum FailurePayload<'a> {
    /// The payload the failed reply carries (a failure record read from a Python reply).
    Given(&'a Value),
    /// A failure record built from the error.
    Built(FailureRecord<'a>),
}

/// The Python runtime's failure record.
#[derive(Serialize)]
struct FailureRecord<'a> {
    correlation_id: Uuid,
    status: &'static str,
    failure_class: &'static str,
    failure_code: &'a str,
    retryable: bool,
    failure_reason: String,
    terminalized_at: &'a DateTime<Utc>,
}

/// The failure class named for an error of `category` (the Python runtime names the exception
/// class; this runtime's errors are classified by category).
pub fn failure_class(category: ErrorCategory) -> &'static str {
    match category {
        ErrorCategory::Validation => "ValidationError",
        ErrorCategory::NotFound => "NotFoundError",
        ErrorCategory::Conflict => "ConflictError",
        ErrorCategory::Timeout => "TimeoutError",
        ErrorCategory::Unavailable => "UnavailableError",
        ErrorCategory::Auth => "AuthError",
        ErrorCategory::Internal => "InternalError",
    }
}

/// `envelope` in the Python runtime's shape: a reply as a success or error reply, anything else
/// as the minimal request.
pub(super) fn encode(envelope: &Envelope, out: &mut Vec<u8>) -> serde_json::Result<()> {
    if !envelope.is_response {
        let request = Request {
            operation: &envelope.operation,
            payload: &envelope.payload,
            correlation_id: envelope.correlation_id,
        };
        return serde_json::to_writer(&mut *out, &request);
    }
    if envelope.success == Some(true) {
        let success =
            Success { status: "success", payload: &envelope.payload, correlation_id: envelope.correlation_id };
        return serde_json::to_writer(&mut *out, &success);
    }
    let unknown;
    let error = match &envelope.error {
        Some(error) => error,
        None => {
            unknown = ReplyError { code: String::new(), category: ErrorCategory::Internal, message: "failed".into() };
            &unknown
        }
    };
    let payload = if envelope.payload.is_null() {
        FailurePayload::Built(FailureRecord {
            correlation_id: envelope.correlation_id,
            status: "failed",
            failure_class: failure_class(error.category),
            failure_code: &error.code,
            retryable: error.category.retryable(),
            failure_reason: error.to_text(),
            terminalized_at: &envelope.timestamp,
        })
    } else {
        FailurePayload::Given(&envelope.payload)
    };
    let failure = Failure {
        success: false,
        status: "error",
        error: error.to_text(),
        correlation_id: envelope.correlation_id,
        payload,
    };
    serde_json::to_writer(&mut *out, &failure)
}
