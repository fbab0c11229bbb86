//! HTTP plumbing shared by the fixture's endpoints: Keycloak's four error-body shapes, the
//! success answers (`201` with `Location`, `204`, JSON with the admin API's charset and
//! `Cache-Control`), request-body decoding with Keycloak's answers to bodies it cannot read,
//! query-string and form decoding, and the random ids and tokens the fixture mints.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value as Json, json};

/// The largest request body the fixture reads.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON answer with plain `application/json` (protocol endpoints and every error).
pub fn json(status: StatusCode, body: &Json) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A successful admin-API read: `application/json;charset=UTF-8` and `Cache-Control: no-cache`,
/// as Keycloak's `@NoCache` resources answer.
pub fn admin_json(body: &Json) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Shape 2: a bare `error` holding prose (`{"error":"User not found"}`), used for 401, 404, 405.
pub fn error(status: StatusCode, message: &str) -> Response {
    json(status, &json!({ "error": message }))
}

/// Shape 3: `{"errorMessage": ...}`, the admin API's conflicts and validation failures.
pub fn error_message(status: StatusCode, message: &str) -> Response {
    json(status, &json!({ "errorMessage": message }))
}

/// Shape 1 (and 4): an RFC 6749 body, `{"error": code, "error_description": description}`.
pub fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    json(status, &json!({ "error": code, "error_description": description }))
}

/// A path no resource serves (RESTEasy's answer; no realm lookup is involved).
pub fn unmatched() -> Response {
    error(StatusCode::NOT_FOUND, "Unable to find matching target resource method")
}

/// A known resource asked with a method it does not take.
pub fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "HTTP 405 Method Not Allowed")
}

/// What Keycloak answers when a resource method throws on a `null` entity (an empty body).
pub fn server_error() -> Response {
    oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error", "For more on this error consult the server log.")
}

/// A body that is JSON but not the representation the endpoint reads (an array for an object,
/// a string for a boolean): Jackson's mapping failure.
pub fn wrong_shape() -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "unknown_error", "Cannot parse the JSON")
}

/// `204 No Content`; deletes also carry `Cache-Control: no-cache`.
pub fn no_content(no_cache: bool) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if no_cache {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// `201 Created`: an empty body, `Content-Length: 0` and the new object's absolute `Location`.
pub fn created(location: &str) -> Response {
    let mut response = (StatusCode::CREATED, Body::empty()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// An early answer (a refusal) carried through a `Result`, boxed: a response is large.
pub type Refusal = Box<Response>;

/// Decodes a request body as JSON the way Keycloak's Jackson reader does: `Ok(None)` for an
/// empty body or a literal `null` (the resource method sees a `null` entity), a syntax error
/// answers `400 {"error":"invalid_request","error_description":"Cannot parse the JSON"}`.
pub fn parse_json(body: &[u8]) -> Result<Option<Json>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Null) => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(_) => Err(Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Cannot parse the JSON"))),
    }
}

/// A decoded query string or form body: pairs in order, `+` as a space, percent-decoded.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=x%2Fy&flag` (a key without `=` has an empty value).
    pub fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (decode_component(k), decode_component(v)),
                None => (decode_component(pair), String::new()),
            })
            .collect();
        Self(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// `key` as JAX-RS converts an `Integer` query parameter: absent or unparsable is `None`.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// `key` as a `Boolean` query parameter: `true` (any case) is true, anything else false;
    /// absent is `None`.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Percent-decoding of a query or form component (`+` is a space).
pub fn decode_component(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

/// Percent-decoding of a URL path segment (`+` stays a plus).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_pair(hi, lo),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    u8::try_from(digit(hi)? * 16 + digit(lo)?).ok()
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A pseudo-random 64-bit value (SipHash under a fresh random key, over a counter).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A random version-4 UUID string, the shape of every Keycloak entity id.
pub fn new_uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let time_low = a >> 32;
    let time_mid = (a >> 16) & 0xffff;
    let version_hi = 0x4000 | (a & 0x0fff);
    let variant = 0x8000 | ((b >> 48) & 0x3fff);
    let node = b & 0xffff_ffff_ffff;
    format!("{time_low:08x}-{time_mid:04x}-{version_hi:04x}-{variant:04x}-{node:012x}")
}

/// A random opaque access token (40 random bytes, base64url).
pub fn new_token() -> String {
    let bytes: Vec<u8> = (0..5).flat_map(|_| random_u64().to_le_bytes()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Milliseconds since the Unix epoch (`createdTimestamp`).
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A `{"key": ["v", ...]}` attribute map as JSON.
pub fn attributes_json(attributes: &BTreeMap<String, Vec<String>>) -> Json {
    Json::Object(attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// Reads `{"key": ["v", ...]}` (Keycloak's `Map<String, List<String>>`); anything else is `Err`.
pub fn parse_attributes(value: &Json) -> Result<BTreeMap<String, Vec<String>>, ()> {
    let Json::Object(object) = value else { return Err(()) };
    let mut attributes = BTreeMap::new();
    for (key, values) in object {
        let list = match values {
            Json::Null => Vec::new(),
            Json::Array(items) => {
                items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(())).collect::<Result<_, _>>()?
            }
            _ => return Err(()),
        };
        attributes.insert(key.clone(), list);
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_like_forms() {
        let p = Params::parse("grant_type=client_credentials&client_id=a%2Bb&scope=x+y&flag");
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("client_id"), Some("a+b"));
        assert_eq!(p.get("scope"), Some("x y"));
        assert!(p.has("flag") && !p.has("other"));
        assert_eq!(percent_decode("a+b%20c"), "a+b c");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn uuids_have_the_v4_shape() {
        let id = new_uuid();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(parts[2].starts_with('4') && matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
        assert_ne!(new_uuid(), new_uuid());
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn bodies_decode_like_jackson() {
        assert!(matches!(parse_json(b""), Ok(None)));
        assert!(matches!(parse_json(b" null "), Ok(None)));
        assert!(matches!(parse_json(b"{\"a\":1}"), Ok(Some(_))));
        assert!(parse_json(b"{not json").is_err());
    }
}
