//! Envelopes on the wire: bus messages built from envelopes (written in their dialect, headers
//! mirroring the ids), the ids minted for a message that has none, and replies built from errors.

use std::sync::Arc;

use onex_core::envelope::{Envelope, Minted, ReplyError, bus_headers};
use onex_spi::{InboundMessage, OutboundMessage, SpiError};

use crate::ids::{new_uuid_v7, now_utc};

/// Header carrying the error code of a dead letter.
pub const HEADER_ERROR_CODE: &str = "onex-error-code";
/// Header carrying the error message of a dead letter.
pub const HEADER_ERROR_MESSAGE: &str = "onex-error-message";

/// `envelope` as a bus message on `topic` with partition key `key`, written in its dialect (a
/// reply in its request's), with this runtime's and the Python runtime's headers
/// ([`bus_headers::write`]).
pub fn to_message(topic: impl Into<Arc<str>>, key: Option<String>, envelope: &Envelope) -> OutboundMessage {
    let headers = bus_headers::write(envelope, key.as_deref(), 0, bus_headers::PYTHON_MAX_RETRIES);
    let payload = envelope.encode().into();
    OutboundMessage { topic: topic.into(), key, payload, headers: Arc::new(headers) }
}

/// The error of a failed reply from an spi error.
pub fn spi_reply_error(error: &SpiError, context: &str) -> ReplyError {
    let mut reply = error.to_reply_error();
    reply.message = format!("{context}: {}", reply.message);
    reply
}

/// A failed reply to `request`.
pub fn fail(request: &Envelope, error: ReplyError) -> Envelope {
    request.reply_err(new_uuid_v7(), error, now_utc())
}

/// The reply recorded for `request` (its idempotency record), in `request`'s dialect; a store
/// error naming the envelope if the record does not parse.
pub fn stored_reply(request: &Envelope, stored: serde_json::Value) -> Envelope {
    match serde_json::from_value::<Envelope>(stored) {
        Ok(reply) => reply.as_reply_to(request),
        Err(e) => {
            let message = format!("envelope {}: its stored reply does not parse: {e}", request.envelope_id);
            fail(request, ReplyError::new(crate::error::codes::STORE_FAILED, message))
        }
    }
}

/// What the host fills in for a consumed message whose envelope has no id, timestamp or
/// correlation id. The id is the message's own when its headers name one (`onex-envelope-id`, or
/// the Python bus's `message_id`), so a redelivery is the same envelope; else a fresh one. The
/// correlation id is the headers' when they carry one.
pub fn minted_for(message: &InboundMessage) -> Minted {
    let read = bus_headers::read(&message.headers);
    Minted {
        envelope_id: read.envelope_id.unwrap_or_else(new_uuid_v7),
        timestamp: now_utc(),
        correlation_id: read.correlation_id,
    }
}
