//! The `webhook` handler's configuration: the signing secret (a `${env:…}`/`${vault:…}`
//! reference), the delivery store, the delivery policy and the client's caps and TLS.

use std::path::{Path, PathBuf};

use onex_core::secret::Secret;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;

use super::policy::DeliveryPolicy;
use crate::error::codes;
use crate::handlers::http::config::{AllowList, ClientSettings, TlsSettings, positive_ms};
use crate::handlers::stamp::StoreLocation;

pub(crate) const WHAT: &str = "webhook config";

/// The `webhook` handler's `config` section. `signing_secret` is required; the rest has
/// defaults.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// `${env:ONEX_WEBHOOK_SECRET}` (or a Vault reference), resolved when the handler
    /// initialises; at least 16 bytes. Never logged.
    pub signing_secret: String,
    /// The delivery store's SQLite file, relative to the data directory (default
    /// `onex-webhooks.db`).
    pub sqlite_path: Option<PathBuf>,
    /// A PostgreSQL URL (or a reference to one) for the delivery store instead.
    pub postgres_url: Option<String>,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles.
    pub base_delay_ms: u64,
    /// The longest delay; a `Retry-After` beyond it ends the delivery as failed.
    pub max_delay_ms: u64,
    /// 0.0..=1.0: how much of each delay is randomised.
    pub jitter_factor: f64,
    /// Time for one attempt (ms).
    pub timeout_ms: u64,
    /// Largest body delivered (bytes).
    pub max_request_bytes: u64,
    /// Largest receiver answer read (bytes).
    pub max_response_bytes: u64,
    /// Header names whose values may be logged (the signature never is).
    pub log_headers: Vec<String>,
    /// A PEM bundle of the CAs to trust instead of the public roots (relative to the data
    /// directory).
    pub ca_file: Option<PathBuf>,
    /// Accept any receiver certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Idle pooled connections kept per receiver host.
    pub pool_max_idle_per_host: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("sqlite_path", &self.sqlite_path)
            .field("max_attempts", &self.max_attempts)
            .field("base_delay_ms", &self.base_delay_ms)
            .field("max_delay_ms", &self.max_delay_ms)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            signing_secret: String::new(),
            sqlite_path: None,
            postgres_url: None,
            max_attempts: 5,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            jitter_factor: 0.5,
            timeout_ms: 10_000,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 64 * 1024,
            log_headers: ["content-type", "content-length", "x-onex-delivery", "x-onex-event"]
                .map(String::from)
                .to_vec(),
            ca_file: None,
            insecure_skip_verify: false,
            pool_max_idle_per_host: 8,
        }
    }
}

impl WebhookConfig {
    /// The secret as configured (a reference, or a literal value): required.
    pub(crate) fn secret(&self) -> SpiResult<Secret> {
        if self.signing_secret.is_empty() {
            return Err(SpiError::new(
                codes::BAD_PAYLOAD,
                format!("{WHAT}: `signing_secret` is required (e.g. `${{env:ONEX_WEBHOOK_SECRET}}`)"),
            ));
        }
        Ok(Secret::new(self.signing_secret.clone()))
    }

    /// Where deliveries are recorded.
    pub(crate) fn store_location(&self, data_dir: &Path) -> SpiResult<StoreLocation> {
        match (&self.sqlite_path, &self.postgres_url) {
            (Some(_), Some(_)) => Err(SpiError::new(
                codes::BAD_PAYLOAD,
                format!("{WHAT}: give `sqlite_path` or `postgres_url`, not both"),
            )),
            (_, Some(url)) => Ok(StoreLocation::Postgres(Secret::new(url.clone()))),
            (path, None) => Ok(StoreLocation::Sqlite(
                data_dir.join(path.clone().unwrap_or_else(|| PathBuf::from("onex-webhooks.db"))),
            )),
        }
    }

    /// The delivery policy; zero attempts and a jitter outside 0..=1 are refused.
    pub(crate) fn policy(&self) -> SpiResult<DeliveryPolicy> {
        if self.max_attempts == 0 {
            return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{WHAT}: `max_attempts` must be at least 1")));
        }
        if !(0.0..=1.0).contains(&self.jitter_factor) {
            return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{WHAT}: `jitter_factor` must be within 0.0..=1.0")));
        }
        Ok(DeliveryPolicy::new(self.max_attempts, self.base_delay_ms, self.max_delay_ms, self.jitter_factor))
    }

    /// The client settings (no redirects: a webhook answer of 3xx is a failed delivery).
    pub(crate) fn client_settings(&self, data_dir: &Path) -> SpiResult<ClientSettings> {
        Ok(ClientSettings {
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes,
            max_redirects: 0,
            timeout: positive_ms(WHAT, "timeout_ms", self.timeout_ms)?,
            log_headers: AllowList::new(WHAT, "log_headers", &self.log_headers)?,
            tls: TlsSettings {
                ca_file: self.ca_file.as_ref().map(|f| data_dir.join(f)),
                insecure_skip_verify: self.insecure_skip_verify,
            },
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
}
