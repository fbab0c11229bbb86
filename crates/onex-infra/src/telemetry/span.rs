//! Spans of the host, and the W3C `traceparent` they are carried in.
//!
//! An envelope carries its trace in `metadata.traceparent` (on the bus also a header, on HTTP the
//! `traceparent` header): a span started for it takes that as its parent, and the envelope goes
//! on carrying the new span, so whatever it causes (a handler's outgoing request, a workflow
//! run, its steps' envelopes, emitted events, the reply) is a child of it.

use std::borrow::Cow;

use onex_core::envelope::{Envelope, parse_traceparent};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};

/// `traceparent` as a remote parent context; `None` when it is not a valid version-00 header
/// ([`parse_traceparent`]).
pub fn parent_from(traceparent: &str) -> Option<Context> {
    let parsed = parse_traceparent(traceparent)?;
    let trace_id = TraceId::from_hex(parsed.trace_id).ok()?;
    let span_id = SpanId::from_hex(parsed.span_id).ok()?;
    let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(parsed.flags & 1), true, TraceState::default());
    Some(Context::new().with_remote_span_context(remote))
}

/// The `traceparent` naming the span of `cx`, if it has a valid one.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The parent of a span for `envelope`: the span current in this task when there is one (HTTP
/// ingress, a consumed message), else the envelope's own `traceparent`, else none (a new trace).
pub fn parent_of(envelope: &Envelope) -> Context {
    let current = Context::current();
    if current.has_active_span() {
        return current;
    }
    envelope.metadata.traceparent.as_deref().and_then(parent_from).unwrap_or_default()
}

/// Starts a span `name` of `kind` under `parent` with `attributes`; the context holding it.
pub fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Context {
    let tracer = super::tracer();
    let span = tracer.span_builder(name).with_kind(kind).with_attributes(attributes).start_with_context(tracer, parent);
    parent.with_span(span)
}

/// A span for one envelope under its parent ([`parent_of`]); the envelope now carries it.
pub fn start_for(envelope: &mut Envelope, name: String, kind: SpanKind) -> Context {
    let attributes = vec![
        KeyValue::new("onex.envelope_id", envelope.envelope_id.to_string()),
        KeyValue::new("onex.correlation_id", envelope.correlation_id.to_string()),
        KeyValue::new("onex.operation", envelope.operation.clone()),
    ];
    let cx = start(name, kind, &parent_of(envelope), attributes);
    if let Some(traceparent) = traceparent_of(&cx) {
        envelope.metadata.traceparent = Some(traceparent);
    }
    cx
}

/// Ends the span of `cx` with the outcome `reply` tells: ok, or an error with its code.
pub fn end_with_reply(cx: &Context, reply: &Envelope) {
    let span = cx.span();
    match &reply.error {
        Some(error) if reply.success != Some(true) => {
            span.set_attribute(KeyValue::new("onex.error_code", error.code.clone()));
            span.set_status(Status::error(error.message.clone()));
        }
        _ => span.set_status(Status::Ok),
    }
    span.end();
}

/// Ends the span of `cx`, failed with `error` when given.
pub fn end(cx: &Context, error: Option<String>) {
    let span = cx.span();
    span.set_status(error.map_or(Status::Ok, Status::error));
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_and_written_back_unchanged() {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(traceparent_of(&parent_from(header).unwrap()).as_deref(), Some(header));
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert_eq!(traceparent_of(&parent_from(unsampled).unwrap()).as_deref(), Some(unsampled));
    }

    /// Which texts are traceparents is core's `parse_traceparent` (its tests hold the cases);
    /// here: what it refuses is no parent.
    #[test]
    fn what_core_refuses_as_a_traceparent_is_no_parent() {
        for bad in ["", "00-00000000000000000000000000000000-b7ad6b7169203331-01"] {
            assert!(parse_traceparent(bad).is_none() && parent_from(bad).is_none(), "{bad}");
        }
    }
}
