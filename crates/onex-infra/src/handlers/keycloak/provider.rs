//! The identity provider as the handler talks to it: one pooled HTTP client (the `http`
//! handler's), the discovery document fetched once and checked against the configured issuer,
//! JSON requests whose failures become `KEYCLOAK_*` errors, and the transport `oauth2` sends
//! its token and introspection requests through.

use std::future::Future;
use std::pin::Pin;

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use onex_core::secret::Secret;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde_json::Value as Json;
use url::Url;

use super::config::KeycloakConfig;
use crate::error::codes;
use crate::handlers::http::USER_AGENT;
use crate::handlers::http::client::{Answer, HttpClient, Outgoing, display_url};

/// What the handler uses of the provider's `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub token_endpoint: Option<String>,
    pub jwks_uri: String,
    pub introspection_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
}

/// The provider: its client and, once fetched, its metadata.
#[derive(Debug)]
pub(crate) struct Provider {
    client: HttpClient,
    issuer: String,
    metadata: tokio::sync::OnceCell<Metadata>,
}

impl Provider {
    /// A provider for `config`'s issuer; nothing is fetched yet.
    pub fn new(config: &KeycloakConfig, data_dir: &std::path::Path) -> SpiResult<Self> {
        const WHAT: &str = "keycloak handler config";
        let settings = config.http.client_settings(WHAT, data_dir).map_err(|e| super::config::invalid(e.message()))?;
        let client = HttpClient::new(WHAT, settings)?;
        Ok(Self { client, issuer: config.issuer.clone(), metadata: tokio::sync::OnceCell::new() })
    }

    /// The configured issuer (no trailing `/`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document, fetched on first use (a failure is not kept: the next call
    /// tries again). Its `issuer` must be the configured one (OpenID Connect Discovery 4.3).
    pub async fn metadata(&self) -> SpiResult<&Metadata> {
        self.metadata
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc = self.get_json("keycloak discovery", &url, None).await?;
                let metadata = Metadata::deserialize(&doc).map_err(|e| {
                    unexpected(format!("keycloak discovery: {url}: not an OpenID provider configuration: {e}"))
                })?;
                if metadata.issuer.trim_end_matches('/') != self.issuer {
                    return Err(SpiError::new(
                        codes::KEYCLOAK_UNEXPECTED,
                        format!(
                            "keycloak discovery: {url} names issuer `{}`, not the configured `{}`",
                            metadata.issuer, self.issuer
                        ),
                    ));
                }
                Ok(metadata)
            })
            .await
    }

    /// `GET url` (with a bearer token if given) answering JSON; a non-2xx status is an error
    /// classified by [`status_error`].
    pub async fn get_json(&self, ctx: &str, url: &str, bearer: Option<&Secret>) -> SpiResult<Json> {
        let answer = self.send(ctx, Method::GET, url, bearer, None).await?;
        if !answer.status.is_success() {
            return Err(status_error(ctx, &answer));
        }
        json_body(ctx, &answer)
    }

    /// One request: `body` is sent as JSON; the answer whatever its status.
    pub async fn send(
        &self,
        ctx: &str,
        method: Method,
        url: &str,
        bearer: Option<&Secret>,
        body: Option<&Json>,
    ) -> SpiResult<Answer> {
        let url = Url::parse(url)
            .map_err(|e| SpiError::new(codes::KEYCLOAK_CONFIG, format!("{ctx}: `{url}` is not a URL: {e}")))?;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if let Some(token) = bearer {
            let value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                SpiError::new(codes::KEYCLOAK_UNEXPECTED, format!("{ctx}: the access token is not a header value"))
            })?;
            headers.insert(header::AUTHORIZATION, value);
        }
        let body = match body {
            Some(json) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        let outgoing = Outgoing { method, url, headers, body };
        match self.client.send(ctx, outgoing.clone(), None).await {
            // A pooled connection the provider closed (it restarted): once more on a new one.
            Err(e) if idempotent && e.code() == codes::HTTP_CONNECTION_FAILED.as_str() => {
                self.client.send(ctx, outgoing, None).await.map_err(|e| transport(ctx, &e))
            }
            answer => answer.map_err(|e| transport(ctx, &e)),
        }
    }

    /// The transport `oauth2` requests go through; `ctx` starts its error messages.
    pub fn oauth<'a>(&'a self, ctx: &'a str) -> OauthTransport<'a> {
        OauthTransport { client: &self.client, ctx }
    }
}

/// The provider's answer as JSON, or an error that does not quote it (it may hold tokens).
pub(crate) fn json_body(ctx: &str, answer: &Answer) -> SpiResult<Json> {
    if answer.body.is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| unexpected(format!("{ctx}: {}: the answer is not JSON ({e})", display_url(&answer.url))))
}

/// An http-client failure as a keycloak error: the connection or deadline made the provider
/// unavailable; anything else keeps its message under a keycloak code.
fn transport(ctx: &str, e: &SpiError) -> SpiError {
    let code = if e.code() == codes::HTTP_UNAUTHORIZED.as_str() {
        codes::KEYCLOAK_DENIED
    } else if e.code() == codes::HTTP_REQUEST_INVALID.as_str() || e.code() == codes::HTTP_RESPONSE_TOO_LARGE.as_str() {
        codes::KEYCLOAK_UNEXPECTED
    } else {
        codes::KEYCLOAK_UNAVAILABLE
    };
    let message = e.message();
    let message = if message.starts_with(ctx) { message.to_owned() } else { format!("{ctx}: {message}") };
    SpiError::new(code, message)
}

/// The error for a non-2xx answer: 5xx/429 unavailable, 401/403 denied, 404 not found, 409
/// conflict, other 4xx rejected. Keycloak's own `errorMessage`/`error` text is kept (it names
/// what was wrong and never holds a credential); the body is otherwise not quoted.
pub(crate) fn status_error(ctx: &str, answer: &Answer) -> SpiError {
    let code = match answer.status.as_u16() {
        429 | 500..=599 => codes::KEYCLOAK_UNAVAILABLE,
        401 | 403 => codes::KEYCLOAK_DENIED,
        404 => codes::KEYCLOAK_NOT_FOUND,
        409 => codes::KEYCLOAK_CONFLICT,
        _ => codes::KEYCLOAK_REJECTED,
    };
    let said = serde_json::from_slice::<Json>(&answer.body).ok().and_then(|body| {
        ["errorMessage", "error_description", "error"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Json::as_str).map(|s| s.chars().take(200).collect::<String>()))
    });
    let shown = display_url(&answer.url);
    let status = answer.status;
    SpiError::new(
        code,
        match said {
            Some(text) => format!("{ctx}: {shown} answered {status}: {text}"),
            None => format!("{ctx}: {shown} answered {status}"),
        },
    )
}

pub(crate) fn unexpected(message: String) -> SpiError {
    SpiError::new(codes::KEYCLOAK_UNEXPECTED, message)
}

/// `oauth2`'s HTTP transport over the handler's client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OauthTransport<'a> {
    client: &'a HttpClient,
    ctx: &'a str,
}

type OauthFuture<'c> = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, SpiError>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for OauthTransport<'_> {
    type Error = SpiError;
    type Future = OauthFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = Url::parse(&parts.uri.to_string())
                .map_err(|e| unexpected(format!("{}: the token endpoint is not a URL: {e}", self.ctx)))?;
            let outgoing = Outgoing { method: parts.method, url, headers: parts.headers, body: Bytes::from(body) };
            let answer = self.client.send(self.ctx, outgoing, None).await.map_err(|e| transport(self.ctx, &e))?;
            let mut response = oauth2::HttpResponse::new(answer.body.to_vec());
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            Ok(response)
        })
    }
}

/// The error an `oauth2` request failed with, as a keycloak error that never quotes the
/// provider's answer beyond its OAuth `error` and `error_description`.
pub(crate) fn oauth_error<T>(ctx: &str, e: oauth2::RequestTokenError<SpiError, T>) -> SpiError
where
    T: oauth2::ErrorResponse + 'static,
{
    match e {
        oauth2::RequestTokenError::ServerResponse(response) => {
            let text = serde_json::to_value(&response).unwrap_or_default();
            let error = text.get("error").and_then(Json::as_str).unwrap_or("error").to_owned();
            let description = text.get("error_description").and_then(Json::as_str).unwrap_or_default();
            let code = match error.as_str() {
                "invalid_client" | "unauthorized_client" => codes::KEYCLOAK_DENIED,
                "temporarily_unavailable" | "server_error" => codes::KEYCLOAK_UNAVAILABLE,
                _ => codes::KEYCLOAK_REJECTED,
            };
            let description: String = description.chars().take(200).collect();
            SpiError::new(code, format!("{ctx}: the provider refused: {error}: {description}"))
        }
        oauth2::RequestTokenError::Request(e) => e,
        oauth2::RequestTokenError::Parse(e, _body) => {
            unexpected(format!("{ctx}: the provider's answer is not an OAuth 2.0 response: {}", e.path()))
        }
        oauth2::RequestTokenError::Other(text) => {
            let denied = text.contains("401") || text.contains("403");
            let code = if denied { codes::KEYCLOAK_DENIED } else { codes::KEYCLOAK_UNEXPECTED };
            SpiError::new(code, format!("{ctx}: {}", text.chars().take(200).collect::<String>()))
        }
    }
}
