//! The `http` handler: `http.get|post|put|delete` through one pooled client per handler, with
//! request and response size caps, bounded redirects, a deadline per call, TLS (rustls) and
//! header allow-lists for logs and replies. A non-2xx answer is an error carrying the status.

pub(crate) mod client;
pub mod config;
mod tls;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SpiError, SpiResult, async_trait};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

pub use client::LOG_TARGET;
pub use config::HttpConfig;

use self::client::{Answer, HttpClient, Outgoing, parse_url, status_error};
use self::config::{AllowList, positive_ms};
use super::payload::{decode, put_bytes};
use crate::error::codes;

/// The `User-Agent` sent when a request names none.
pub const USER_AGENT: &str = concat!("onex-runtime/", env!("CARGO_PKG_VERSION"));

/// Request headers whose value the client sets itself (framing, routing).
const RESERVED_HEADERS: [HeaderName; 4] =
    [header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION];

/// Performs HTTP requests.
#[derive(Debug)]
pub struct HttpHandler {
    client: HttpClient,
    response_headers: AllowList,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Json>,
    timeout_ms: Option<u64>,
}

impl HttpHandler {
    /// A handler configured by `config`; `data_dir` anchors a relative `ca_file`.
    pub fn new(config: &HttpConfig, data_dir: &Path) -> SpiResult<Self> {
        const WHAT: &str = "http config";
        let client = HttpClient::new(WHAT, config.client_settings(WHAT, data_dir)?)?;
        let response_headers = AllowList::new(WHAT, "response_headers", &config.response_headers)?;
        Ok(Self { client, response_headers })
    }

    async fn request(&self, ctx: &str, method: Method, request: &Envelope) -> SpiResult<Json> {
        let req: HttpRequest = decode(ctx, &request.payload)?;
        let url = parse_url(ctx, "url", &req.url)?;
        let mut headers = request_headers(ctx, &req.headers)?;
        put_traceparent(&mut headers, request);
        let (body, content_type) = match req.body {
            None | Some(Json::Null) => (Bytes::new(), None),
            Some(Json::String(text)) => (Bytes::from(text), Some("text/plain; charset=utf-8")),
            Some(json) => (Bytes::from(json.to_string()), Some("application/json")),
        };
        if let Some(content_type) = content_type.filter(|_| !headers.contains_key(header::CONTENT_TYPE)) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        let timeout = req.timeout_ms.map(|ms| positive_ms(ctx, "timeout_ms", ms)).transpose()?;
        let answer = self.client.send(ctx, Outgoing { method: method.clone(), url, headers, body }, timeout).await?;
        if !answer.status.is_success() {
            return Err(status_error(ctx, &method, &answer.url, answer.status));
        }
        Ok(reply(answer, &self.response_headers))
    }
}

/// Adds the W3C `traceparent` of `request`'s trace to an outgoing request, unless the payload set
/// one itself: the server's spans join the envelope's trace.
pub(crate) fn put_traceparent(headers: &mut HeaderMap, request: &Envelope) {
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    let given = request.metadata.traceparent.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
    if let Some(value) = given.filter(|_| !headers.contains_key(TRACEPARENT)) {
        headers.insert(TRACEPARENT, value);
    }
}

/// The payload's headers, checked: valid names and values, none the client sets itself.
fn request_headers(ctx: &str, given: &BTreeMap<String, String>) -> SpiResult<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(given.len() + 2);
    for (name, value) in given {
        let invalid = |why: &str| SpiError::new(codes::HTTP_REQUEST_INVALID, format!("{ctx}: `headers.{name}`: {why}"));
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header) {
            return Err(invalid("set by the client itself; it may not be given"));
        }
        // The value is never quoted back: it may be a credential.
        let value = HeaderValue::from_str(value).map_err(|_| invalid("the value is not a valid header value"))?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// Whether a `Content-Type` is JSON (`application/json`, `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `{status, headers (allow-listed), body | body_base64, url, redirects}`: a JSON body as
/// JSON, other UTF-8 as a string, anything else base64.
fn reply(answer: Answer, allowed: &AllowList) -> Json {
    let headers: Map<String, Json> =
        allowed.pick(&answer.headers).into_iter().map(|(k, v)| (k, Json::String(v))).collect();
    let mut out = Map::new();
    out.insert("status".into(), Json::from(answer.status.as_u16()));
    out.insert("headers".into(), Json::Object(headers));
    out.insert("url".into(), Json::String(answer.url.into()));
    out.insert("redirects".into(), Json::from(answer.redirects));
    match serde_json::from_slice::<Json>(&answer.body) {
        Ok(json) if is_json(&answer.headers) => {
            out.insert("body".into(), json);
        }
        _ => put_bytes(&mut out, "body", answer.body.into()),
    }
    Json::Object(out)
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("http")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "http".into(), operations: Vec::new() })
}

#[async_trait]
impl Handler for HttpHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let method = match request.operation.as_str() {
            "http.get" => Method::GET,
            "http.post" => Method::POST,
            "http.put" => Method::PUT,
            "http.delete" => Method::DELETE,
            other => {
                return Err(SpiError::new(
                    core_codes::OPERATION_NOT_FOUND,
                    format!("envelope {}: the http handler has no operation `{other}`", request.envelope_id),
                ));
            }
        };
        let ctx = format!("envelope {}: {}", request.envelope_id, request.operation);
        self.request(&ctx, method, request).await
    }

    async fn health(&self) -> Health {
        Health::Healthy
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds http handlers from their runtime-config section ([`HttpConfig`]; every field has a
/// default).
#[derive(Debug)]
pub struct HttpHandlerFactory;

impl HandlerFactory for HttpHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        let config: HttpConfig =
            if init.config.is_null() { HttpConfig::default() } else { decode("http config", &init.config)? };
        Ok(Arc::new(HttpHandler::new(&config, &init.data_dir)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json; charset=utf-8") && with("application/problem+json"));
        assert!(!with("text/plain") && !is_json(&HeaderMap::new()));
    }

    #[test]
    fn reserved_and_invalid_request_headers_are_refused_by_name() {
        let ctx = "envelope 7: http.get";
        let one = |k: &str, v: &str| request_headers(ctx, &BTreeMap::from([(k.to_owned(), v.to_owned())]));
        let e = one("Content-Length", "3").unwrap_err();
        assert!(e.message().starts_with("envelope 7: http.get: `headers.Content-Length`"), "{e}");
        let e = one("x-token", "bad\nvalue-s3cret").unwrap_err();
        assert!(!e.message().contains("s3cret"), "{e}");
        assert!(one("X-Ok", "fine").unwrap().contains_key("x-ok"));
    }
}
