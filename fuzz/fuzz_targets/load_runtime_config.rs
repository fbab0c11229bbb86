//! `load_runtime_config`: never panics; a success carries only warnings, a refusal at least one error, every
//! diagnostic inside the input and in source order; when `check_document` decodes the bytes as
//! this kind without an error, `load_runtime_config` returns the same value and warnings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_core::contract::{ContractDocument, load_runtime_config};
use onex_fuzz::{SOURCE, assert_agrees_with_check, assert_loaded};

fuzz_target!(|bytes: &[u8]| {
    let loaded = load_runtime_config(SOURCE, bytes);
    assert_loaded(bytes, &loaded);
    assert_agrees_with_check(bytes, &loaded, |document| match document {
        ContractDocument::Runtime(value) => Some(*value),
        _ => None,
    });
});
