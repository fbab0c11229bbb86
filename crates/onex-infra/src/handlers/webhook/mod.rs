//! The `webhook` handler: `webhook.deliver` POSTs a JSON body signed with HMAC-SHA256 over
//! `"<timestamp>.<body>"`, retrying 5xx, 429, connection failures and attempt timeouts with
//! exponential backoff and jitter (never sooner than `Retry-After`), and records every attempt
//! and the final status in a delivery store. These retries are the handler's own, documented
//! delivery policy: its node contract declares no `retry_policy`, so attempts never multiply.

pub mod config;
mod policy;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{
    DeliveryAttempt, DeliveryStatus, DeliveryStore, Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health,
    SecretStore, SpiError, SpiResult, async_trait,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use url::Url;

pub use config::WebhookConfig;
pub use signature::{SignatureError, Signer, verify_signature};

use self::policy::{DeliveryPolicy, Next, Outcome, error_is_retryable, retry_after, status_is_retryable};
use self::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::http::client::{Answer, HttpClient, Outgoing, display_url, parse_url, status_error};
use super::payload::decode;
use super::stamp::StoreLocation;
use crate::error::codes;
use crate::stores::webhook_postgres::PostgresDeliveryStore;
use crate::stores::webhook_sqlite::SqliteDeliveryStore;
use onex_core::secret::Secret;

/// The shortest signing secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 16;

/// The `tracing` target of delivery logs.
pub const LOG_TARGET: &str = "onex_infra::webhook";

/// Delivers signed webhooks and records them.
pub struct WebhookHandler {
    client: HttpClient,
    policy: DeliveryPolicy,
    secret: Secret,
    secrets: Arc<dyn SecretStore>,
    location: StoreLocation,
    /// Set by `initialize`: the resolved secret's signer and the open store.
    ready: tokio::sync::OnceCell<(Signer, Arc<dyn DeliveryStore>)>,
}

impl std::fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookHandler").field("policy", &self.policy).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverRequest {
    url: String,
    event: Option<String>,
    body: Json,
    delivery_id: Option<String>,
}

/// A header value for `field`: 1..=200 visible ASCII characters.
fn header_text(ctx: &str, field: &str, text: &str) -> SpiResult<HeaderValue> {
    let ok = !text.is_empty() && text.len() <= 200 && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| HeaderValue::from_str(text).ok()).flatten().ok_or_else(|| {
        SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `{field}` must be 1 to 200 visible ASCII characters"))
    })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl WebhookHandler {
    /// A handler configured by `config`, resolving its secret (and a PostgreSQL reference)
    /// through `secrets` and opening its store when it initialises.
    pub fn new(config: &WebhookConfig, secrets: Arc<dyn SecretStore>, data_dir: &std::path::Path) -> SpiResult<Self> {
        Ok(Self {
            client: HttpClient::new(config::WHAT, config.client_settings(data_dir)?)?,
            policy: config.policy()?,
            secret: config.secret()?,
            secrets,
            location: config.store_location(data_dir)?,
            ready: tokio::sync::OnceCell::new(),
        })
    }

    fn ready(&self) -> SpiResult<&(Signer, Arc<dyn DeliveryStore>)> {
        self.ready.get().ok_or_else(|| {
            SpiError::new(codes::STORE_UNAVAILABLE, "the webhook handler is not initialised (no secret, no store)")
        })
    }

    async fn resolve(&self, value: &Secret) -> SpiResult<Secret> {
        match onex_core::contract::SecretRef::parse(value.expose()) {
            Some(reference) => self.secrets.resolve(&reference).await,
            None => Ok(value.clone()),
        }
    }

    /// Delivers `request`'s webhook. Its delivery id (the `X-Onex-Delivery` header receivers
    /// deduplicate by) is the payload's `delivery_id`, else the envelope id: an envelope
    /// delivered again reaches the receiver under the same id.
    async fn deliver(&self, ctx: &str, request: &Envelope) -> SpiResult<Json> {
        let (signer, store) = self.ready()?;
        let req: DeliverRequest = decode(ctx, &request.payload)?;
        let url = parse_url(ctx, "url", &req.url)?;
        let delivery_id = req.delivery_id.unwrap_or_else(|| request.envelope_id.to_string());
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(HeaderName::from_static(DELIVERY_HEADER), header_text(ctx, "delivery_id", &delivery_id)?);
        if let Some(event) = &req.event {
            headers.insert(HeaderName::from_static(EVENT_HEADER), header_text(ctx, "event", event)?);
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static(super::http::USER_AGENT));
        super::http::put_traceparent(&mut headers, request);
        let body = Bytes::from(req.body.to_string());
        let before = store.begin(&delivery_id, &display_url(&url), req.event.as_deref()).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(ctx, signer, &url, &headers, &body).await;
            let error = outcome.error().map(|e| e.message().strip_prefix(ctx).unwrap_or(e.message()));
            let error = error.map(|e| e.trim_start_matches(": ").to_owned()).filter(|_| outcome.status().is_none());
            let record = DeliveryAttempt {
                delivery_id: delivery_id.clone(),
                attempt: before + attempt,
                status: outcome.status(),
                error,
                at: SystemTime::now(),
            };
            store.record_attempt(&record).await?;
            tracing::info!(
                target: LOG_TARGET,
                delivery_id = %delivery_id,
                attempt = record.attempt,
                status = record.status,
                error = record.error.as_deref(),
                "webhook attempt"
            );
            let (error, retry_after) = match outcome {
                Outcome::Delivered(status) => {
                    store.finish(&delivery_id, DeliveryStatus::Delivered).await?;
                    return Ok(json!({
                        "delivery_id": delivery_id, "status": "delivered", "attempts": attempt, "http_status": status,
                    }));
                }
                Outcome::Fail { error, .. } => (error, None),
                Outcome::Retry { error, retry_after, .. } => {
                    match self.policy.next(attempt, retry_after, crate::resilience::random_unit()) {
                        Next::Wait(delay) => {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        Next::Exhausted => (error, None),
                        Next::RetryAfterTooLong(asked) => (error, Some(asked)),
                    }
                }
            };
            store.finish(&delivery_id, DeliveryStatus::Failed).await?;
            return Err(gave_up(ctx, &delivery_id, attempt, &error, retry_after, self.policy.max_delay));
        }
    }

    /// One signed POST, classified.
    async fn attempt(&self, ctx: &str, signer: &Signer, url: &Url, headers: &HeaderMap, body: &Bytes) -> Outcome {
        let timestamp = unix_now();
        let mut headers = headers.clone();
        let signed = [(TIMESTAMP_HEADER, timestamp.to_string()), (SIGNATURE_HEADER, signer.sign(timestamp, body))];
        for (name, value) in signed {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        let request = Outgoing { method: Method::POST, url: url.clone(), headers, body: body.clone() };
        match self.client.send(ctx, request, None).await {
            Ok(Answer { status, .. }) if status.is_success() => Outcome::Delivered(status.as_u16()),
            Ok(answer) => {
                let error = status_error(ctx, &Method::POST, &answer.url, answer.status);
                let status = Some(answer.status.as_u16());
                if status_is_retryable(answer.status) {
                    Outcome::Retry { status, error, retry_after: retry_after(&answer.headers, SystemTime::now()) }
                } else {
                    Outcome::Fail { status, error }
                }
            }
            Err(error) if error_is_retryable(&error) => Outcome::Retry { status: None, error, retry_after: None },
            Err(error) => Outcome::Fail { status: None, error },
        }
    }
}

/// The error a failed delivery returns: the last attempt's code and category, with the
/// delivery id and the number of attempts.
fn gave_up(
    ctx: &str,
    delivery_id: &str,
    attempts: u32,
    last: &SpiError,
    retry_after: Option<Duration>,
    max_delay: Duration,
) -> SpiError {
    let last_message = last.message().strip_prefix(ctx).unwrap_or(last.message()).trim_start_matches(": ");
    let why = match retry_after {
        Some(asked) => format!(
            "the receiver asked to retry after {} s, beyond max_delay_ms ({} ms)",
            asked.as_secs(),
            max_delay.as_millis()
        ),
        None => "not retried further".to_owned(),
    };
    SpiError::custom(
        last.code().to_owned(),
        last.category(),
        format!("{ctx}: delivery {delivery_id} failed after {attempts} attempt(s), {why}; last: {last_message}"),
    )
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("webhook")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "webhook".into(), operations: Vec::new() })
}

#[async_trait]
impl Handler for WebhookHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        if self.ready.get().is_some() {
            return Ok(());
        }
        let secret = self.resolve(&self.secret).await?;
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(SpiError::new(
                codes::BAD_PAYLOAD,
                format!("{}: `signing_secret` must be at least {MIN_SECRET_BYTES} bytes", config::WHAT),
            ));
        }
        let signer = Signer::new(secret.expose().as_bytes())
            .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("{}: `signing_secret`: {e}", config::WHAT)))?;
        let store: Arc<dyn DeliveryStore> = match &self.location {
            StoreLocation::Sqlite(path) => Arc::new(SqliteDeliveryStore::open(path).await?),
            StoreLocation::Postgres(value) => {
                let url = self.resolve(value).await?;
                Arc::new(PostgresDeliveryStore::connect(url.expose(), 4).await?)
            }
        };
        // A concurrent initialise may have won the race; both are the same configuration.
        let _ = self.ready.set((signer, store));
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        match request.operation.as_str() {
            "webhook.deliver" => {
                let ctx = format!("envelope {}: webhook.deliver", request.envelope_id);
                self.deliver(&ctx, request).await
            }
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the webhook handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn health(&self) -> Health {
        let (_, store) = match self.ready() {
            Ok(ready) => ready,
            Err(e) => return Health::Unhealthy(e.to_string()),
        };
        match store.delivery("").await {
            Ok(_) => Health::Healthy,
            Err(e) => Health::Unhealthy(format!("webhook delivery store: {e}")),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds webhook handlers from their runtime-config section ([`WebhookConfig`]).
#[derive(Debug)]
pub struct WebhookHandlerFactory;

impl HandlerFactory for WebhookHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        let config: WebhookConfig =
            if init.config.is_null() { WebhookConfig::default() } else { decode(config::WHAT, &init.config)? };
        Ok(Arc::new(WebhookHandler::new(&config, init.secrets, &init.data_dir)?))
    }
}
