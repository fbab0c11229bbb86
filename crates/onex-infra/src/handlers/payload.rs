//! Decoding request payloads into typed requests, with errors that name the operation and field.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::error::codes;
use onex_spi::{SpiError, SpiResult};

/// Decodes `payload` for `operation`; unknown fields and wrong types are refused by name.
pub fn decode<T: DeserializeOwned>(operation: &str, payload: &Json) -> SpiResult<T> {
    T::deserialize(payload).map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("{operation}: invalid payload: {e}")))
}

/// The bytes of `content` (UTF-8 text, moved, not copied) or `content_base64`: exactly one
/// must be given.
pub fn content_bytes(operation: &str, content: Option<String>, content_base64: Option<&str>) -> SpiResult<Vec<u8>> {
    match (content, content_base64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(b64)) => BASE64.decode(b64).map_err(|e| {
            SpiError::new(codes::BAD_PAYLOAD, format!("{operation}: `content_base64` is not base64: {e}"))
        }),
        (Some(_), Some(_)) => {
            Err(SpiError::new(codes::BAD_PAYLOAD, format!("{operation}: give `content` or `content_base64`, not both")))
        }
        (None, None) => {
            Err(SpiError::new(codes::BAD_PAYLOAD, format!("{operation}: `content` or `content_base64` is required")))
        }
    }
}

/// Bytes as JSON under `key` (text) or `<key>_base64` (anything else).
pub fn put_bytes(out: &mut serde_json::Map<String, Json>, key: &str, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(text) => {
            out.insert(key.to_owned(), Json::String(text));
        }
        Err(e) => {
            out.insert(format!("{key}_base64"), Json::String(BASE64.encode(e.into_bytes())));
        }
    }
}
