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

/// A version-00 W3C `traceparent` read apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'a> {
    /// 32 hex digits, not all zeros.
    pub trace_id: &'a str,
    /// 16 hex digits, not all zeros.
    pub span_id: &'a str,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

/// `text` read as a version-00 W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), or `None`
/// when it is not one: the one check of a `traceparent` that came from outside (HTTP, bus
/// headers) before it is carried on.
pub fn parse_traceparent(text: &str) -> Option<TraceParent<'_>> {
    let mut parts = text.trim().split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let id = |id: &str, len: usize| {
        id.len() == len && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0')
    };
    if version != "00" || parts.next().is_some() || !id(trace_id, 32) || !id(span_id, 16) || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceParent { trace_id, span_id, flags })
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
    fn a_traceparent_is_read_apart_and_invalid_ones_are_none() {
        let parsed = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            (parsed.trace_id, parsed.span_id, parsed.flags),
            ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
        );
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
            "00-xyz7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
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
