//! The one error type every SPI implementation returns: a stable code, a category and a message.

use std::borrow::Cow;
use std::fmt;

use onex_core::error::{ErrorCategory, ErrorCode};

/// A failure reported by a handler, bus or store.
///
/// The message must never contain secrets: implementations describe what failed, not with what.
#[derive(thiserror::Error)]
#[error("{code} ({category}): {message}")]
pub struct SpiError {
    code: Cow<'static, str>,
    category: ErrorCategory,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SpiError {
    /// An error with a catalogued code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code: Cow::Borrowed(code.as_str()), category: code.category(), message: message.into(), source: None }
    }

    /// An error with an implementation's own stable code (e.g. `ONEX_DB_023_UNIQUE_VIOLATION`).
    pub fn custom(code: impl Into<Cow<'static, str>>, category: ErrorCategory, message: impl Into<String>) -> Self {
        Self { code: code.into(), category, message: message.into(), source: None }
    }

    /// Attaches the underlying cause (walked by `source()` for classification and logs).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The error part of a failed reply envelope: this error's code, category and message.
    pub fn to_reply_error(&self) -> onex_core::envelope::ReplyError {
        onex_core::envelope::ReplyError {
            code: self.code.clone().into_owned(),
            category: self.category,
            message: self.message.clone(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The category, which decides retries and breaker accounting.
    pub fn category(&self) -> ErrorCategory {
        self.category
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the operation may succeed if tried again.
    pub fn retryable(&self) -> bool {
        self.category.retryable()
    }
}

impl fmt::Debug for SpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiError")
            .field("code", &self.code)
            .field("category", &self.category)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(ToString::to_string))
            .finish()
    }
}

/// Result alias for SPI calls.
pub type SpiResult<T> = Result<T, SpiError>;
