//! Reply records for effects that are not idempotent (`http.post`, `webhook.deliver`,
//! `db.execute`, …, as their handler describes them): an effect envelope delivered again after
//! its outcome was recorded gets the recorded reply and does not run again.
//!
//! Only final outcomes are recorded: a success, or a failure that trying again cannot change.
//! A retryable failure (timeout, unavailable) is not, so the next delivery tries again. The
//! record is written after the effect ran, so a crash in between runs it once more on
//! redelivery: effects are at-least-once, and the envelope id goes downstream as the
//! idempotency key where the protocol has one.

use std::sync::Arc;

use onex_core::envelope::Envelope;

use super::wire::{fail, spi_reply_error, stored_reply};
use super::{Dispatcher, RuntimeHost};

/// Dispatches `request` unless its reply is recorded; records the final outcome.
pub(super) async fn dispatch_recorded(
    host: &Arc<RuntimeHost>,
    dispatcher: &Dispatcher,
    request: &Arc<Envelope>,
) -> Envelope {
    let context = format!("envelope {} (`{}`)", request.envelope_id, request.operation);
    match host.store.processed_reply(request.envelope_id).await {
        Ok(Some(stored)) => return stored_reply(request, stored),
        Ok(None) => {}
        // Running it without knowing whether it ran could run it twice: try again later.
        Err(e) => return fail(request, spi_reply_error(&e, &format!("{context}: reading its recorded reply"))),
    }
    let reply = dispatcher.dispatch(request).await;
    let is_final = reply.error.as_ref().is_none_or(|e| !e.category.retryable());
    if !is_final {
        return reply;
    }
    let recorded = match serde_json::to_value(&reply) {
        Ok(json) => host.store.record_reply(request.envelope_id, &json).await,
        Err(e) => {
            tracing::error!(envelope_id = %request.envelope_id, error = %e, "cannot encode a reply to record");
            return reply;
        }
    };
    match recorded {
        Ok(true) => reply,
        // A concurrent delivery of the same envelope recorded first: its reply is the one.
        Ok(false) => match host.store.processed_reply(request.envelope_id).await {
            Ok(Some(stored)) => stored_reply(request, stored),
            _ => reply,
        },
        Err(e) => {
            tracing::warn!(envelope_id = %request.envelope_id, operation = %request.operation, error = %e,
                "the effect ran but its reply could not be recorded; a redelivery runs it again");
            reply
        }
    }
}
