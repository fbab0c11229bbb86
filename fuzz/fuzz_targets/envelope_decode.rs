//! `Envelope::decode`, every dialect: never panics; an envelope of this runtime's dialect has a
//! valid operation; a decoded envelope's stored form (its serde JSON, what idempotency records
//! and the outbox keep) parses back to an equal value and is a fixed point; writing it in its
//! dialect never panics and decodes again; a refusal points inside the input; the size cap is
//! exact.
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use onex_core::envelope::{Dialect, Envelope, EnvelopeError, Minted, is_valid_operation};
use uuid::Uuid;

/// The cap the target decodes under: larger than any input libFuzzer makes here.
const MAX_BYTES: usize = 1 << 20;

fn minted() -> Minted {
    Minted {
        envelope_id: Uuid::from_u128(1),
        timestamp: DateTime::from_timestamp(0, 0).unwrap_or_default(),
        correlation_id: None,
    }
}

fuzz_target!(|bytes: &[u8]| {
    match Envelope::decode(bytes, MAX_BYTES, minted()) {
        Ok(envelope) => {
            if envelope.dialect == Dialect::Native {
                assert!(is_valid_operation(&envelope.operation), "decoded with a bad operation: {envelope:?}");
            }
            let stored = serde_json::to_vec(&envelope).expect("a decoded envelope serialises");
            let back: Envelope = match serde_json::from_slice(&stored) {
                Ok(back) => back,
                Err(e) => panic!("a stored envelope does not parse back: {e}\n{}", String::from_utf8_lossy(&stored)),
            };
            assert_eq!(back, envelope, "a stored envelope parses back to another value");
            assert_eq!(serde_json::to_vec(&back).expect("serialises"), stored, "the stored form is not a fixed point");
            let wire = envelope.encode();
            if let Err(e) = Envelope::decode(&wire, usize::MAX, minted()) {
                panic!("an envelope written in its dialect does not decode: {e}\n{}", String::from_utf8_lossy(&wire));
            }
        }
        // Matched one kind at a time, so a new kind of refusal needs no change here.
        Err(e) => {
            assert!(
                !matches!(e, EnvelopeError::TooLarge { .. }),
                "refused {} bytes under a {MAX_BYTES}-byte cap: {e}",
                bytes.len()
            );
            if let EnvelopeError::Json { line, column, message } = &e {
                // serde_json counts lines by `\n` and columns in bytes, both from 1.
                let line_len = bytes.split(|b| *b == b'\n').nth(line.wrapping_sub(1)).map(<[u8]>::len);
                assert!(
                    line_len.is_some_and(|len| (1..=len + 1).contains(column)),
                    "JSON error at {line}:{column}, outside the input: {message}"
                );
            }
            if let EnvelopeError::BadOperation { operation, .. } = &e {
                assert!(!is_valid_operation(operation), "refused a valid operation `{operation}`");
            }
        }
    }
    if let Some(under) = bytes.len().checked_sub(1) {
        assert!(
            matches!(Envelope::decode(bytes, under, minted()), Err(EnvelopeError::TooLarge { .. })),
            "{} bytes accepted under a cap of {under}",
            bytes.len()
        );
    }
});
