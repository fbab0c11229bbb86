//! The envelope: the one message shape on the bus, over HTTP ingress and between host and handlers.
//!
//! It is read from any of the wire shapes clients of this runtime and of the Python system it
//! replaces send ([`Dialect`], told per message from its fields), and a reply is written in the
//! shape of its request ([`Envelope::encode`]). Upstream fields are kept and passed on.
//! Identifiers and timestamps are passed in: core generates no UUIDs and reads no clock.

pub mod bus_headers;
mod dialect;
mod error;
mod event;
mod header_map;
mod metadata;
mod minimal;
mod reply_error;
mod semver;
mod trace;
mod upstream;
mod wire;

#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use dialect::{Dialect, Minted};
pub use error::{EnvelopeError, is_valid_operation};
pub use event::{DEFAULT_EVENT_ENVELOPE_VERSION, DEFAULT_ONEX_VERSION, EventFields};
pub use header_map::HeaderMap;
pub use metadata::{EnvelopeMetadata, Tags};
pub use minimal::failure_class;
pub use reply_error::ReplyError;
pub use semver::SemVer;
pub use trace::{TraceParent, parse_traceparent, traceparent};
pub use upstream::{DEFAULT_ONEX_ENVELOPE_VERSION, HOST_NODE};

/// Capacity past which [`Envelope::encode`]'s buffer is let go rather than kept for the next.
const ENCODE_BUFFER_KEPT: usize = 64 * 1024;

thread_local! {
    /// Where [`Envelope::encode`] writes, reused by every envelope encoded on the thread.
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A request, event or reply.
///
/// Serialised with serde it is this runtime's own shape, which is also how envelopes are stored
/// (idempotency records, outbox, workflow triggers): the upstream fields and the dialect are
/// written only when set, so a stored reply parses back whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this envelope (UUIDv7 when minted by the host).
    pub envelope_id: Uuid,
    /// Id shared by a request, its reply and everything it causes.
    pub correlation_id: Uuid,
    /// The envelope that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// `prefix.name`; the prefix routes it. Free text in upstream dialects (an operation nothing
    /// serves is answered OPERATION_NOT_FOUND).
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
    /// Upstream `envelope_version`, echoed in replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_version: Option<SemVer>,
    /// Upstream `source_node_id`: the node instance that created the envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node_id: Option<Uuid>,
    /// Upstream `chunking`, passed on as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Value>,
    /// The fields of an upstream `ModelEventEnvelope` beyond these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Box<EventFields>>,
    /// The shape it came in; a reply carries its request's and is written in it.
    #[serde(default, skip_serializing_if = "Dialect::is_native")]
    pub dialect: Dialect,
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
            envelope_version: None,
            source_node_id: None,
            chunking: None,
            event: None,
            dialect: Dialect::Native,
        }
    }

    /// Reads an envelope of any [`Dialect`] from JSON bytes, refusing anything over `max_bytes`.
    ///
    /// A missing `envelope_id` or timestamp is taken from `minted`, a missing correlation id is
    /// the envelope id; upstream trace and span ids give the `traceparent`. This runtime's
    /// envelopes must name a `handler.name` operation; upstream operations are free text.
    pub fn decode(bytes: &[u8], max_bytes: usize, minted: Minted) -> Result<Self, EnvelopeError> {
        if bytes.len() > max_bytes {
            return Err(EnvelopeError::TooLarge { size: bytes.len(), limit: max_bytes });
        }
        wire::Wire::parse(bytes)?.into_envelope(minted)
    }

    /// The envelope as JSON in its dialect: a reply in its request's shape.
    pub fn encode(&self) -> Vec<u8> {
        // Written into this thread's buffer, then copied out at its exact size: one allocation
        // instead of a growing vector's several (and no spare capacity kept by whoever holds it).
        let copied = ENCODE_BUFFER.try_with(|buffer| {
            let mut buffer = buffer.try_borrow_mut().ok()?;
            buffer.clear();
            // Strings, numbers and JSON values with string keys: serialising cannot fail.
            let bytes = self.encode_into(&mut buffer).map_or_else(|_| Vec::new(), |()| buffer.as_slice().to_vec());
            if buffer.capacity() > ENCODE_BUFFER_KEPT {
                *buffer = Vec::new();
            }
            Some(bytes)
        });
        // Without the buffer (the thread is ending, or the buffer is in use): a vector of its own.
        copied.ok().flatten().unwrap_or_else(|| {
            let mut bytes = Vec::new();
            self.encode_into(&mut bytes).map_or_else(|_| Vec::new(), |()| bytes)
        })
    }

    /// Appends the envelope in its dialect to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self.dialect {
            Dialect::Native => serde_json::to_writer(&mut *out, self),
            Dialect::UpstreamOnex => upstream::encode(self, out),
            Dialect::UpstreamEvent => event::encode(self, out),
            Dialect::PythonRuntime => minimal::encode(self, out),
        }
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
            envelope_version: self.envelope_version.clone(),
            source_node_id: None,
            chunking: None,
            event: self.event.as_ref().map(|e| Box::new(e.for_reply())),
            dialect: self.dialect,
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

    /// This reply (a recorded one, say) as the answer to `request`: the same outcome, addressed
    /// to it (its correlation id, caused by it) in its dialect, with the fields a reply echoes
    /// (`envelope_version`, the event fields) taken from it. A duplicate gets its stored reply in
    /// the shape it asked in.
    pub fn as_reply_to(self, request: &Envelope) -> Self {
        Self {
            correlation_id: request.correlation_id,
            causation_id: Some(request.envelope_id),
            dialect: request.dialect,
            envelope_version: request.envelope_version.clone(),
            event: request.event.as_ref().map(|e| Box::new(e.for_reply())),
            ..self
        }
    }
}
