//! `load_document`: never panics; it succeeds exactly when `check_document` reports no error,
//! and then returns `check_document`'s document with its diagnostics as warnings; a refusal
//! carries `check_document`'s diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_core::contract::{Severity, check_document, load_document};
use onex_fuzz::{SOURCE, assert_loaded};

fuzz_target!(|bytes: &[u8]| {
    let loaded = load_document(SOURCE, bytes);
    assert_loaded(bytes, &loaded);
    let (document, diagnostics) = check_document(SOURCE, bytes);
    let has_error = diagnostics.iter().any(|d| d.severity == Severity::Error);
    match loaded {
        Ok(loaded) => {
            assert!(!has_error, "load_document accepted a document check_document has errors in: {diagnostics:?}");
            assert_eq!(Some(loaded.value), document, "load_document and check_document decode differently");
            assert_eq!(loaded.warnings, diagnostics, "load_document and check_document warn differently");
        }
        Err(errors) => {
            assert!(
                has_error,
                "load_document refused a document check_document finds no error in ({}): {errors}",
                if document.is_some() { "decoded" } else { "not decoded" }
            );
            assert_eq!(errors.diagnostics, diagnostics, "load_document and check_document report differently");
        }
    }
});
