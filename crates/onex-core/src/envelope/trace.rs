//! Upstream trace and span ids as a W3C `traceparent` (`00-<trace_id>-<span_id>-01`), the trace
//! context this runtime carries downstream.

/// The `traceparent` for an upstream trace id and span id, or `None` when they are not usable.
///
/// Ids are hex, with or without UUID dashes (ModelEventEnvelope's ids are UUIDs), in either case;
/// the trace id must be 32 digits, the span id 16 (a 32-digit span id, a UUID, gives its first
/// 16). All-zero ids are invalid in W3C trace context and give `None` too.
pub fn traceparent(trace_id: &str, span_id: &str) -> Option<String> {
    let trace = hex_digits(trace_id, 32)?;
    let span = match hex_digits(span_id, 16) {
        Some(span) => span,
        None => hex_digits(span_id, 32)?[..16].to_owned(),
    };
    Some(format!("00-{trace}-{span}-01"))
}

/// `id` without dashes, lowercased, if it is exactly `len` hex digits and not all zeros.
fn hex_digits(id: &str, len: usize) -> Option<String> {
    let digits: String = id.chars().filter(|c| *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    let valid =
        digits.len() == len && digits.bytes().all(|b| b.is_ascii_hexdigit()) && digits.bytes().any(|b| b != b'0');
    valid.then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_and_span_ids_become_a_traceparent() {
        assert_eq!(
            traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            traceparent("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", "00f067aa-0ba9-02b7-8000-000000000001").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "UUID ids (ModelEventEnvelope) are read as hex; a UUID span gives its first half"
        );
    }

    #[test]
    fn unusable_ids_give_none() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(traceparent("abc", "00f067aa0ba902b7"), None);
        assert_eq!(traceparent(trace, "xyz"), None);
        assert_eq!(traceparent(trace, "0000000000000000"), None);
        assert_eq!(traceparent("00000000000000000000000000000000", "00f067aa0ba902b7"), None);
        assert_eq!(traceparent(trace, "00f067aa0ba902b"), None);
    }
}
