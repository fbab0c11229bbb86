//! `Envelope::from_json`: never panics; an envelope that decodes has a valid operation,
//! serialises, and decodes from that to an equal value whose serialisation is the same bytes;
//! a refusal points inside the input; the size cap is exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_core::envelope::{Envelope, EnvelopeError, is_valid_operation};

/// The cap the target decodes under: larger than any input libFuzzer makes here.
const MAX_BYTES: usize = 1 << 20;

fuzz_target!(|bytes: &[u8]| {
    match Envelope::from_json(bytes, MAX_BYTES) {
        Ok(envelope) => {
            assert!(is_valid_operation(&envelope.operation), "decoded with a bad operation: {envelope:?}");
            let json = serde_json::to_vec(&envelope).expect("a decoded envelope serialises");
            let again = match Envelope::from_json(&json, usize::MAX) {
                Ok(again) => again,
                Err(e) => panic!("a re-serialised envelope does not decode: {e}\n{}", String::from_utf8_lossy(&json)),
            };
            assert_eq!(again, envelope, "re-serialised envelope decodes to another value");
            let json_again = serde_json::to_vec(&again).expect("a decoded envelope serialises");
            assert_eq!(json_again, json, "serialisation is not a fixed point");
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
            matches!(Envelope::from_json(bytes, under), Err(EnvelopeError::TooLarge { .. })),
            "{} bytes accepted under a cap of {under}",
            bytes.len()
        );
    }
});
