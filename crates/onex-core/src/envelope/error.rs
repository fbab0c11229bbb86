//! Why an envelope was refused at decode time, with a stable code.

use uuid::Uuid;

use super::Dialect;
use crate::error::{Classified, ErrorCode, codes};

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
    /// `operation` is empty or not `prefix.name` (this runtime's own envelopes only: upstream
    /// operations are free text).
    #[error("envelope {envelope_id}: operation `{operation}` is not of the form `handler.name` ([a-z0-9_] segments)")]
    BadOperation {
        /// The envelope concerned.
        envelope_id: Uuid,
        /// The operation given.
        operation: String,
    },
    /// A request that does not say which operation it asks for.
    #[error("{}: missing field {field}: a request names its operation (read as {dialect})", envelope_name(envelope_id))]
    MissingOperation {
        /// The envelope concerned, when it gave its id.
        envelope_id: Option<Uuid>,
        /// The shape it was read as.
        dialect: Dialect,
        /// The field (or fields) that would have named the operation.
        field: &'static str,
    },
}

fn envelope_name(id: &Option<Uuid>) -> String {
    id.map_or_else(|| "envelope without an envelope_id".to_owned(), |id| format!("envelope {id}"))
}

impl EnvelopeError {
    /// The error of a `serde_json` failure, with its position.
    pub(super) fn json(e: &serde_json::Error) -> Self {
        // serde_json says column 0 for an end of input right at a line's start.
        Self::Json { line: e.line(), column: e.column().max(1), message: e.to_string() }
    }

    /// A JSON error with no position (`message` says what was expected).
    pub(super) fn json_text(message: &str) -> Self {
        Self::Json { line: 1, column: 1, message: message.to_owned() }
    }
}

impl Classified for EnvelopeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => codes::ENVELOPE_TOO_LARGE,
            Self::Json { .. } | Self::BadOperation { .. } | Self::MissingOperation { .. } => codes::ENVELOPE_INVALID,
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
