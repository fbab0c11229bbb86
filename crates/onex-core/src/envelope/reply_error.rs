//! The error part of a failed reply, and its upstream text form `"[CODE] message"`.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCategory, ErrorCode};

/// The error part of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// Stable error code string (catalogued, or a handler's own); empty when an upstream reply
    /// gave a message without one.
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

    /// The upstream string form: `[CODE] message` (the Python runtime's and ModelOnexEnvelope's
    /// `error`), or the message alone when there is no code.
    pub fn to_text(&self) -> String {
        if self.code.is_empty() { self.message.clone() } else { format!("[{}] {}", self.code, self.message) }
    }

    /// Reads the upstream string form back. A leading `[CODE]` names the code, whose category
    /// comes from the catalogue (internal when it is not catalogued); text without one is the
    /// message of an error with no code.
    pub fn from_text(text: &str) -> Self {
        let coded = text.strip_prefix('[').and_then(|rest| rest.split_once(']')).filter(|(code, _)| {
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        });
        match coded {
            Some((code, message)) => Self {
                code: code.to_owned(),
                category: ErrorCode::lookup(code).map_or(ErrorCategory::Internal, ErrorCode::category),
                message: message.strip_prefix(' ').unwrap_or(message).to_owned(),
            },
            None => Self { code: String::new(), category: ErrorCategory::Internal, message: text.to_owned() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn the_text_form_round_trips() {
        let error = ReplyError::new(codes::OPERATION_NOT_FOUND, "no node declares operation `x`");
        assert_eq!(error.to_text(), "[ONEX_CORE_052_OPERATION_NOT_FOUND] no node declares operation `x`");
        assert_eq!(ReplyError::from_text(&error.to_text()), error);
        let foreign = ReplyError::from_text("[ONEX_CORE_007_INVALID_INPUT] No handler registered for prefix: 'nope'");
        assert_eq!(foreign.code, "ONEX_CORE_007_INVALID_INPUT");
        assert_eq!(foreign.category, ErrorCategory::Internal, "not in this runtime's catalogue");
        assert_eq!(foreign.message, "No handler registered for prefix: 'nope'");
    }

    #[test]
    fn text_without_a_code_is_the_message() {
        let plain = ReplyError::from_text("boom");
        assert_eq!((plain.code.as_str(), plain.message.as_str()), ("", "boom"));
        assert_eq!(plain.to_text(), "boom");
        assert_eq!(ReplyError::from_text("[not a code] x").message, "[not a code] x");
        assert_eq!(ReplyError::from_text("[]").message, "[]");
    }
}
