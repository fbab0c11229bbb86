//! The consul handler's configuration (`handlers.consul.config`) and the consulrs client built
//! from it: address, ACL token (a `${env:…}`/`${vault:…}` reference, resolved at start),
//! `timeout_ms` and TLS (a CA file, or certificate checks switched off).

use std::path::{Path, PathBuf};
use std::time::Duration;

use consulrs::client::{ConsulClient, ConsulClientSettings};
use onex_core::contract::SecretRef;
use onex_core::secret::Secret;
use onex_spi::{SecretStore, SpiError, SpiResult};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::codes;

/// Consul's default HTTP address.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";
/// Per-request timeout when the config gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    address: Option<String>,
    token: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    tls: TlsConfig,
}

/// TLS settings for an `https://` address.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM CA certificate (bundle) to trust besides the built-in roots; relative paths are
    /// relative to the host's data directory.
    pub ca_path: Option<PathBuf>,
    /// Accept any server certificate (test setups only).
    #[serde(default)]
    pub skip_verify: bool,
}

/// The validated configuration; the token is kept as written (a reference or a literal).
#[derive(Clone)]
pub struct ConsulConfig {
    /// `http(s)://host:port`, without a trailing slash.
    pub address: String,
    token: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: TlsConfig,
}

impl std::fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

fn config_error(message: impl Into<String>) -> SpiError {
    SpiError::new(codes::CONSUL_CONFIG, format!("consul config: {}", message.into()))
}

impl ConsulConfig {
    /// Reads `handlers.consul.config` (`null` means every default); relative TLS paths are
    /// resolved against `data_dir`.
    pub fn from_json(config: &Json, data_dir: &Path) -> SpiResult<Self> {
        let raw: RawConfig = if config.is_null() {
            RawConfig { address: None, token: None, timeout_ms: None, tls: TlsConfig::default() }
        } else {
            RawConfig::deserialize(config).map_err(|e| config_error(e.to_string()))?
        };
        let address = validate_address(raw.address.as_deref().unwrap_or(DEFAULT_ADDRESS))?;
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(config_error("`timeout_ms` must be at least 1"));
        }
        let mut tls = raw.tls;
        tls.ca_path = tls.ca_path.map(|p| data_dir.join(p));
        Ok(Self { address, token: raw.token.map(Secret::new), timeout: Duration::from_millis(timeout_ms), tls })
    }

    /// Builds the consulrs client: resolves the token through `secrets`, reads the CA file.
    pub async fn client(&self, secrets: &dyn SecretStore) -> SpiResult<ConsulClient> {
        let token = match &self.token {
            None => None,
            Some(written) => {
                let secret = match SecretRef::parse(written.expose()) {
                    Some(reference) => secrets.resolve(&reference).await?,
                    None => written.clone(),
                };
                Some(validate_token(secret)?)
            }
        };
        let mut builder = consul_reqwest::ClientBuilder::new()
            .use_rustls_tls()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .danger_accept_invalid_certs(self.tls.skip_verify);
        if let Some(path) = &self.tls.ca_path {
            // A small file read once at start.
            let pem = std::fs::read(path)
                .map_err(|e| config_error(format!("cannot read tls.ca_path {}: {e}", path.display())))?;
            let certificates = consul_reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| config_error(format!("tls.ca_path {} holds no PEM certificate", path.display())))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        // The settings are written out in full: consulrs' builder defaults read CONSUL_* variables.
        let settings = ConsulClientSettings {
            address: self.address.clone(),
            ca_certs: Vec::new(),
            client_cert: None,
            client_key: None,
            token,
            verify: !self.tls.skip_verify,
            version: 1,
        };
        Ok(ConsulClient { http: rustify::clients::reqwest::Client::new(&self.address, http), settings })
    }
}

/// `http(s)://host[:port]` with no path or query (consulrs appends `/v1/...` to the address).
fn validate_address(address: &str) -> SpiResult<String> {
    let trimmed = address.trim_end_matches('/');
    let url = consul_reqwest::Url::parse(trimmed)
        .map_err(|e| config_error(format!("`address` {trimmed:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(config_error(format!("`address` {trimmed:?} must be http://host:port or https://host:port")));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
        return Err(config_error(format!("`address` {trimmed:?} must not have a path, query or user")));
    }
    Ok(trimmed.to_owned())
}

/// The token goes into the `X-Consul-Token` header: visible ASCII only (consulrs would panic
/// on anything else). The message never shows the token.
fn validate_token(token: Secret) -> SpiResult<String> {
    let value = token.expose();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(config_error("`token` must be non-empty visible ASCII (its value is not shown)"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_validation() {
        let dir = Path::new("/data");
        let config = ConsulConfig::from_json(&Json::Null, dir).unwrap();
        assert_eq!(config.address, DEFAULT_ADDRESS);
        assert_eq!(config.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        let config = ConsulConfig::from_json(
            &json!({"address": "https://consul:8501/", "token": "${env:CONSUL_TOKEN}", "timeout_ms": 500,
                    "tls": {"ca_path": "ca.pem", "skip_verify": false}}),
            dir,
        )
        .unwrap();
        assert_eq!(config.address, "https://consul:8501");
        assert_eq!(config.tls.ca_path.as_deref(), Some(Path::new("/data/ca.pem")));
        assert!(!format!("{config:?}").contains("CONSUL_TOKEN"), "{config:?}");
        for (bad, says) in [
            (json!({"address": "consul:8500"}), "must be http"),
            (json!({"address": "http://consul:8500/prefix"}), "must not have a path"),
            (json!({"timeout_ms": 0}), "timeout_ms"),
            (json!({"adress": "http://x"}), "unknown field `adress`"),
            (json!({"tls": {"ca": "x"}}), "unknown field `ca`"),
        ] {
            let e = ConsulConfig::from_json(&bad, dir).unwrap_err();
            assert_eq!(e.code(), codes::CONSUL_CONFIG.as_str());
            assert!(e.message().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn tokens_must_fit_a_header_and_are_never_echoed() {
        assert_eq!(validate_token(Secret::new("s3cr3t-token")).unwrap(), "s3cr3t-token");
        let e = validate_token(Secret::new("bad token\n")).unwrap_err();
        assert!(!e.message().contains("bad token"), "{e}");
    }
}
