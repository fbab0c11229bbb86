//! Envelopes on the wire: bus messages built from envelopes (written in their dialect, headers
//! mirroring the ids), the ids minted for a message that has none, and replies built from errors.

use std::collections::BTreeMap;

use onex_core::envelope::{Envelope, Minted, ReplyError};
use onex_spi::{InboundMessage, OutboundMessage, SpiError};
use uuid::Uuid;

use crate::ids::{new_uuid_v7, now_utc};

/// Header carrying the envelope id.
pub const HEADER_ENVELOPE_ID: &str = "onex-envelope-id";
/// Header carrying the correlation id.
pub const HEADER_CORRELATION_ID: &str = "onex-correlation-id";
/// Header carrying the operation.
pub const HEADER_OPERATION: &str = "onex-operation";
/// Header the Python runtime's Kafka bus gives every message: its id.
pub const HEADER_MESSAGE_ID: &str = "message_id";
/// Header carrying the error code of a dead letter.
pub const HEADER_ERROR_CODE: &str = "onex-error-code";
/// Header carrying the error message of a dead letter.
pub const HEADER_ERROR_MESSAGE: &str = "onex-error-message";

/// `envelope` as a bus message on `topic` with partition key `key`, written in its dialect (a
/// reply in its request's).
pub fn to_message(topic: &str, key: Option<String>, envelope: &Envelope) -> OutboundMessage {
    let mut headers = BTreeMap::new();
    headers.insert(HEADER_ENVELOPE_ID.to_owned(), envelope.envelope_id.to_string());
    headers.insert(HEADER_CORRELATION_ID.to_owned(), envelope.correlation_id.to_string());
    headers.insert(HEADER_OPERATION.to_owned(), envelope.operation.clone());
    if let Some(causation) = envelope.causation_id {
        headers.insert("onex-causation-id".to_owned(), causation.to_string());
    }
    if let Some(traceparent) = &envelope.metadata.traceparent {
        headers.insert("traceparent".to_owned(), traceparent.clone());
    }
    let payload = envelope.encode();
    OutboundMessage { topic: topic.to_owned(), key, payload, headers }
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

/// What the host fills in for a consumed message whose envelope has no id or timestamp. The id
/// is the message's own when its headers name one (`onex-envelope-id`, or the Python bus's
/// `message_id`), so a redelivery is the same envelope; else a fresh one.
pub fn minted_for(message: &InboundMessage) -> Minted {
    let from_headers = [HEADER_ENVELOPE_ID, HEADER_MESSAGE_ID]
        .iter()
        .find_map(|h| message.headers.get(*h).and_then(|v| Uuid::parse_str(v.trim()).ok()));
    Minted { envelope_id: from_headers.unwrap_or_else(new_uuid_v7), timestamp: now_utc() }
}
