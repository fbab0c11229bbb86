//! `check_document`: never panics; every diagnostic names the source, says something, lies
//! inside the input and comes in source order; checking is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_core::contract::check_document;
use onex_fuzz::{SOURCE, assert_diagnostics};

fuzz_target!(|bytes: &[u8]| {
    let checked = check_document(SOURCE, bytes);
    assert_diagnostics(bytes, &checked.1);
    assert_eq!(checked, check_document(SOURCE, bytes), "checking the same bytes twice differs");
});
