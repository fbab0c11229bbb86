//! The pooled HTTP/1 client the `http` and `webhook` handlers share (hyper-util's pooled
//! client over rustls): one exchange or a bounded chain of redirects within one deadline,
//! request and response bodies capped (the response while it streams), and a log line per
//! exchange that shows only allow-listed headers and never a URL's query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use onex_spi::{SpiError, SpiResult};
use url::Url;

use super::config::ClientSettings;
use super::tls;
use crate::error::codes;

/// The `tracing` target of exchange logs.
pub const LOG_TARGET: &str = "onex_infra::http";

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Headers a cross-origin redirect does not carry on.
const ORIGIN_BOUND_HEADERS: [header::HeaderName; 3] =
    [header::AUTHORIZATION, header::PROXY_AUTHORIZATION, header::COOKIE];

/// A request to send.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response read whole (within the cap).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// Redirects followed.
    pub redirects: u32,
}

/// A pooled client; clones share the pool.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    settings: Arc<ClientSettings>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with `settings`; `what` names the configuration in errors.
    pub fn new(what: &str, settings: ClientSettings) -> SpiResult<Self> {
        let tls = tls::client_config(what, &settings.tls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .build(https);
        Ok(Self { client, settings: Arc::new(settings) })
    }

    /// Sends `request` and reads the answer, following redirects up to `max_redirects`, all
    /// within `timeout` (at most the configured one). `ctx` (envelope and operation) starts
    /// every error message. Any status is an answer; only transport failures, caps, redirect
    /// loops and the deadline are errors.
    pub async fn send(&self, ctx: &str, request: Outgoing, timeout: Option<Duration>) -> SpiResult<Answer> {
        let timeout = timeout.map_or(self.settings.timeout, |t| t.min(self.settings.timeout));
        let cap = self.settings.max_request_bytes;
        if request.body.len() as u64 > cap {
            return Err(SpiError::new(
                codes::HTTP_REQUEST_INVALID,
                format!("{ctx}: `body`: {} bytes is over max_request_bytes ({cap} bytes)", request.body.len()),
            ));
        }
        let (method, shown) = (request.method.clone(), display_url(&request.url));
        match tokio::time::timeout(timeout, self.follow(ctx, request)).await {
            Ok(answer) => answer,
            Err(_) => Err(SpiError::new(
                codes::HTTP_TIMEOUT,
                format!("{ctx}: {method} {shown}: no full response within {} ms", timeout.as_millis()),
            )),
        }
    }

    async fn follow(&self, ctx: &str, mut request: Outgoing) -> SpiResult<Answer> {
        let max = self.settings.max_redirects;
        let mut redirects = 0;
        loop {
            check_url(ctx, if redirects == 0 { "url" } else { "redirect Location" }, &request.url)?;
            let response = self.exchange(ctx, &request).await?;
            let status = response.status();
            let location = response.headers().get(header::LOCATION).cloned();
            if let (true, Some(location), true) = (is_redirect(status), location, max > 0) {
                let shown = display_url(&request.url);
                if redirects == max {
                    return Err(SpiError::new(
                        codes::HTTP_TOO_MANY_REDIRECTS,
                        format!("{ctx}: {} {shown}: still redirected after max_redirects ({max})", request.method),
                    ));
                }
                let target = location.to_str().ok().and_then(|l| request.url.join(l).ok()).ok_or_else(|| {
                    SpiError::new(
                        codes::HTTP_REQUEST_INVALID,
                        format!("{ctx}: {} {shown}: redirected to an invalid Location", request.method),
                    )
                })?;
                request = redirected(request, status, target);
                redirects += 1;
                continue;
            }
            let (parts, body) = response.into_parts();
            let body = self.read_capped(ctx, &request, &parts.headers, body).await?;
            return Ok(Answer { status, headers: parts.headers, body, url: request.url, redirects });
        }
    }

    /// One request/response exchange (headers only), logged.
    async fn exchange(&self, ctx: &str, request: &Outgoing) -> SpiResult<Response<Incoming>> {
        let shown = display_url(&request.url);
        let uri: hyper::Uri = request.url.as_str().parse().map_err(|_| {
            SpiError::new(codes::HTTP_REQUEST_INVALID, format!("{ctx}: `url`: {shown} is not a valid request URI"))
        })?;
        let mut outgoing = Request::new(Full::new(request.body.clone()));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = request.headers.clone();
        let started = Instant::now();
        let result = self.client.request(outgoing).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let allow = &self.settings.log_headers;
        match &result {
            Ok(response) => tracing::debug!(
                target: LOG_TARGET,
                method = %request.method,
                url = %shown,
                status = response.status().as_u16(),
                elapsed_ms,
                request_headers = ?allow.pick(&request.headers),
                response_headers = ?allow.pick(response.headers()),
                "http exchange"
            ),
            Err(error) => tracing::debug!(
                target: LOG_TARGET,
                method = %request.method,
                url = %shown,
                elapsed_ms,
                request_headers = ?allow.pick(&request.headers),
                error = %error_chain(error),
                "http exchange failed"
            ),
        }
        result.map_err(|e| transport_error(ctx, request, &e))
    }

    /// The body, refused as soon as it is known to be over `max_response_bytes`: from its
    /// `Content-Length`, else while it streams.
    async fn read_capped(
        &self,
        ctx: &str,
        request: &Outgoing,
        headers: &HeaderMap,
        mut body: Incoming,
    ) -> SpiResult<Bytes> {
        let cap = self.settings.max_response_bytes;
        let too_large = || {
            SpiError::new(
                codes::HTTP_RESPONSE_TOO_LARGE,
                format!(
                    "{ctx}: {} {}: the response body is over max_response_bytes ({cap} bytes)",
                    request.method,
                    display_url(&request.url)
                ),
            )
        };
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > cap) {
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(cap).min(1 << 20) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| transport_error(ctx, request, &e))?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > cap {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    }
}

/// Whether `status` redirects (and is followed).
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The request to send to `target` after `status`: 303 turns it into a GET without a body;
/// a different origin does not receive credentials.
fn redirected(mut request: Outgoing, status: StatusCode, mut target: Url) -> Outgoing {
    target.set_fragment(None);
    if status == StatusCode::SEE_OTHER && request.method != Method::HEAD {
        request.method = Method::GET;
        request.body = Bytes::new();
        request.headers.remove(header::CONTENT_TYPE);
    }
    if target.origin() != request.url.origin() {
        for name in &ORIGIN_BOUND_HEADERS {
            request.headers.remove(name);
        }
    }
    request.url = target;
    request
}

/// `text` as an absolute `http`/`https` URL without credentials; errors name `field`.
pub(crate) fn parse_url(ctx: &str, field: &str, text: &str) -> SpiResult<Url> {
    let mut url = Url::parse(text).map_err(|e| {
        SpiError::new(codes::HTTP_REQUEST_INVALID, format!("{ctx}: `{field}` is not an absolute URL: {e}"))
    })?;
    url.set_fragment(None);
    check_url(ctx, field, &url)?;
    Ok(url)
}

/// Refuses schemes other than `http`/`https`, URLs without a host and URLs with credentials.
fn check_url(ctx: &str, field: &str, url: &Url) -> SpiResult<()> {
    let invalid = |why: String| SpiError::new(codes::HTTP_REQUEST_INVALID, format!("{ctx}: `{field}`: {why}"));
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme `{}` is not http or https", url.scheme())));
    }
    if url.host().is_none() {
        return Err(invalid("the URL has no host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in URLs are refused; send an Authorization header".to_owned()));
    }
    Ok(())
}

/// `url` as it may be shown in logs, errors and records: origin and path, never the query
/// (which may hold tokens).
pub(crate) fn display_url(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// `error` and its sources, joined by `: `.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The rustls error in `error`'s chain, looking inside (nested) `io::Error`s, whose `source`
/// skips the error they wrap.
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static), depth: u8) -> Option<&'a rustls::Error> {
    if depth > 16 {
        return None;
    }
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io_inner = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    if let Some(tls) = io_inner.and_then(|inner| rustls_error(inner, depth + 1)) {
        return Some(tls);
    }
    error.source().and_then(|source| rustls_error(source, depth + 1))
}

/// A failure below HTTP: an untrusted certificate is an auth error (retrying cannot help),
/// anything else (refused, reset, closed, TLS handshake) is unavailable.
fn transport_error(ctx: &str, request: &Outgoing, error: &(dyn std::error::Error + 'static)) -> SpiError {
    let what = format!("{ctx}: {} {}", request.method, display_url(&request.url));
    match rustls_error(error, 0) {
        Some(tls @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) => SpiError::new(
            codes::HTTP_UNAUTHORIZED,
            format!("{what}: TLS: the server's certificate is not trusted: {tls}"),
        ),
        Some(tls) => SpiError::new(codes::HTTP_CONNECTION_FAILED, format!("{what}: TLS handshake failed: {tls}")),
        None => {
            SpiError::new(codes::HTTP_CONNECTION_FAILED, format!("{what}: connection failed: {}", error_chain(error)))
        }
    }
}

/// The error a non-2xx status becomes: 5xx and 429 unavailable (retryable), 404 not found,
/// 401/403 auth, 409 conflict, anything else validation.
pub(crate) fn status_error(ctx: &str, method: &Method, url: &Url, status: StatusCode) -> SpiError {
    let code = match status.as_u16() {
        429 | 500..=599 => codes::HTTP_SERVER_UNAVAILABLE,
        404 => codes::HTTP_NOT_FOUND,
        401 | 403 => codes::HTTP_UNAUTHORIZED,
        409 => codes::HTTP_CONFLICT,
        _ => codes::HTTP_CLIENT_ERROR,
    };
    SpiError::new(code, format!("{ctx}: {method} {}: the server answered status {status}", display_url(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn urls_are_checked_and_shown_without_query() {
        assert!(parse_url("c", "url", "http://127.0.0.1:8080/a?token=x").is_ok());
        for (bad, why) in
            [("ftp://h/x", "scheme `ftp`"), ("http://user:pw@h/x", "credentials"), ("/relative", "not an absolute URL")]
        {
            let e = parse_url("envelope 1: http.get", "url", bad).unwrap_err();
            assert!(e.message().contains(why) && e.message().contains("`url`"), "{e}");
            assert!(!e.message().contains("pw"), "{e}");
        }
        assert_eq!(display_url(&url("https://h:8443/p/q?token=secret#f")), "https://h:8443/p/q");
    }

    #[test]
    fn redirects_keep_or_change_the_method_and_drop_credentials_across_origins() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let request =
            Outgoing { method: Method::POST, url: url("http://a/x"), headers, body: Bytes::from_static(b"{}") };
        let same = redirected(request.clone(), StatusCode::TEMPORARY_REDIRECT, url("http://a/y"));
        assert_eq!((same.method.clone(), same.body.len()), (Method::POST, 2));
        assert!(same.headers.contains_key(header::AUTHORIZATION));
        let other = redirected(request, StatusCode::SEE_OTHER, url("http://b/y"));
        assert_eq!((other.method.clone(), other.body.len()), (Method::GET, 0));
        assert!(
            !other.headers.contains_key(header::AUTHORIZATION) && !other.headers.contains_key(header::CONTENT_TYPE)
        );
    }

    #[test]
    fn statuses_map_to_categories() {
        use onex_core::error::ErrorCategory as C;
        let category =
            |s: u16| status_error("c", &Method::GET, &url("http://h/"), StatusCode::from_u16(s).unwrap()).category();
        let expected =
            [(500, C::Unavailable), (503, C::Unavailable), (429, C::Unavailable), (404, C::NotFound), (401, C::Auth)];
        for (status, category_expected) in expected {
            assert_eq!(category(status), category_expected, "{status}");
        }
        assert_eq!(
            (category(403), category(409), category(400), category(304)),
            (C::Auth, C::Conflict, C::Validation, C::Validation)
        );
    }
}
