//! The HTTP side of the vault handler: a vaultrs client (TLS settings, token header, `/v1`
//! prefix), vaultrs's request endpoints executed through rustify, replies read leniently as
//! JSON (RustyVault leaves out fields vaultrs's typed replies require), and failures mapped to
//! the infra codes. No message carries the token or a secret value.

use onex_core::secret::Secret;
use onex_spi::{SpiError, SpiResult};
use serde_json::Value as Json;
use vault_rustify::endpoint::Endpoint;
use vault_rustify::enums::{RequestMethod, RequestType, ResponseType};
use vault_rustify::errors::ClientError as RestError;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};

use super::config::{MountTable, VaultConfig};
use crate::error::codes;

/// Longest server error text quoted in a message.
const MAX_DETAIL: usize = 200;

/// Describes a call for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// What was asked, e.g. ``envelope 0192…: vault.read_secret `secret/app` ``.
    pub context: &'a str,
    /// The request body holds secret values: the server's error text is not quoted (a server
    /// could echo what it was sent).
    pub carries_secret: bool,
}

/// A connected Vault client (no request is made until a call).
pub struct VaultApi {
    client: VaultClient,
    address: String,
    token: Secret,
    /// KV mounts and their versions.
    pub mounts: MountTable,
}

impl std::fmt::Debug for VaultApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultApi")
            .field("address", &self.address)
            .field("token", &self.token)
            .field("mounts", &self.mounts)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl std::fmt::Display) -> SpiError {
    SpiError::new(codes::VAULT_CONFIG, format!("vault handler config: {message}"))
}

impl VaultApi {
    /// Builds the client for `config` with the resolved `token`.
    pub fn connect(config: &VaultConfig, token: Secret) -> SpiResult<Self> {
        if token.expose().is_empty() || !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(config_error("the resolved token is empty or holds characters an HTTP header cannot carry"));
        }
        // reqwest's rustls backend needs a process-wide crypto provider: ring is the one this
        // build has (a provider installed earlier by someone else is kept).
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let ca_certs = config.tls.ca_cert.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let settings = VaultClientSettingsBuilder::default()
            // Validated by `VaultConfig::parse` (vaultrs panics on a bad URL).
            .address(&config.address)
            .token(token.expose())
            .timeout(Some(config.timeout))
            .verify(!config.tls.skip_verify)
            .ca_certs(ca_certs)
            .identity(None)
            .namespace(None)
            .build()
            .map_err(config_error)?;
        let client = VaultClient::new(settings).map_err(config_error)?;
        Ok(Self { client, address: config.address.clone(), token, mounts: config.mounts.clone() })
    }

    /// The address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Executes `endpoint` and returns the reply body as JSON (`null` when empty).
    pub async fn send<E: Endpoint>(&self, endpoint: E, call: Call<'_>) -> SpiResult<Json> {
        match endpoint.with_middleware(self.client.middle()).exec(self.client.http()).await {
            Ok(result) => {
                let body = result.response.body();
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Json::Null);
                }
                serde_json::from_slice(body).map_err(|_| {
                    SpiError::new(codes::VAULT_UNEXPECTED, format!("{}: Vault's reply is not JSON", call.context))
                })
            }
            Err(e) => Err(self.map_error(e, call)),
        }
    }

    fn map_error(&self, error: RestError, call: Call<'_>) -> SpiError {
        match error {
            RestError::ServerResponseError { code, content } => {
                let detail =
                    if call.carries_secret { String::new() } else { server_detail(content.as_deref(), &self.token) };
                let (error_code, what) = classify_status(code, content.as_deref().unwrap_or_default());
                SpiError::new(error_code, format!("{}: {what} (HTTP {code}{detail})", call.context))
            }
            RestError::RequestError { source, .. } | RestError::ResponseError { source } => {
                let timed_out =
                    source.chain().any(|e| e.downcast_ref::<vault_reqwest::Error>().is_some_and(|r| r.is_timeout()));
                if timed_out {
                    return SpiError::new(
                        codes::VAULT_TIMEOUT,
                        format!("{}: Vault at {} did not answer in time", call.context, self.address),
                    );
                }
                let cause = source
                    .chain()
                    .find_map(|e| e.downcast_ref::<std::io::Error>().map(ToString::to_string))
                    .unwrap_or_else(|| "the request failed".to_owned());
                SpiError::new(
                    codes::VAULT_UNAVAILABLE,
                    format!("{}: cannot reach Vault at {}: {cause}", call.context, self.address),
                )
            }
            // Build and parse errors: rustify's messages name the step, never the content.
            other => SpiError::new(codes::VAULT_UNEXPECTED, format!("{}: {other}", call.context)),
        }
    }
}

/// The code and a description of an HTTP error status (and body) from Vault.
pub fn classify_status(status: u16, body: &str) -> (onex_core::error::ErrorCode, &'static str) {
    match status {
        401 | 403 => (codes::VAULT_DENIED, "Vault refused the token (permission denied)"),
        404 => (codes::VAULT_NOT_FOUND, "nothing at this path"),
        // KV v2 answers a check-and-set mismatch with 400 and this message.
        400 if body.contains("check-and-set parameter did not match") => {
            (codes::VAULT_CAS_CONFLICT, "the check-and-set version does not match the secret's")
        }
        // 412: an Enterprise node lacks eventually consistent data yet; Vault says retry.
        412 | 429 | 500..=599 => (codes::VAULT_UNAVAILABLE, "Vault is unavailable or sealed"),
        400..=499 => (codes::VAULT_REJECTED, "Vault refused the request"),
        _ => (codes::VAULT_UNEXPECTED, "Vault answered an unexpected status"),
    }
}

/// `": <message>"` from a Vault (`{"errors": [...]}`) or RustyVault (`{"error": "..."}`) error
/// body, capped and with the token blanked out; empty when there is none.
pub fn server_detail(content: Option<&str>, token: &Secret) -> String {
    let Some(body) = content.and_then(|c| serde_json::from_str::<Json>(c).ok()) else {
        return String::new();
    };
    let mut messages: Vec<&str> = body["errors"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
    messages.extend(body["error"].as_str());
    let joined = messages.join("; ").replace(token.expose(), "***");
    let joined = joined.trim();
    if joined.is_empty() {
        return String::new();
    }
    let capped: String = joined.chars().take(MAX_DETAIL).collect();
    format!(": {capped}")
}

/// A Vault endpoint vaultrs's typed requests do not serve well here: token self-lookup and
/// renewal (replies read leniently; vaultrs's renew-self path has a stray tab) and seal status.
pub struct RawEndpoint {
    path: &'static str,
    method: RequestMethod,
    body: Option<Vec<u8>>,
}

impl std::fmt::Debug for RawEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEndpoint").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RawEndpoint {
    /// `GET auth/token/lookup-self`.
    pub fn lookup_self() -> Self {
        Self { path: "auth/token/lookup-self", method: RequestMethod::GET, body: None }
    }

    /// `POST auth/token/renew-self` with `{"increment": seconds}` when given.
    pub fn renew_self(increment_s: Option<u64>) -> Self {
        let body = increment_s.map(|s| serde_json::json!({ "increment": s }).to_string().into_bytes());
        Self { path: "auth/token/renew-self", method: RequestMethod::POST, body }
    }

    /// `GET sys/seal-status` (needs no token).
    pub fn seal_status() -> Self {
        Self { path: "sys/seal-status", method: RequestMethod::GET, body: None }
    }
}

impl Endpoint for RawEndpoint {
    type Response = Json;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.to_owned()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, RestError> {
        Ok(self.body.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onex_core::error::ErrorCategory;

    #[test]
    fn statuses_map_to_categories() {
        let category = |s| classify_status(s, "").0.category();
        assert_eq!(category(403), ErrorCategory::Auth);
        assert_eq!(category(401), ErrorCategory::Auth);
        assert_eq!(category(404), ErrorCategory::NotFound);
        assert_eq!(category(400), ErrorCategory::Validation);
        assert_eq!(category(405), ErrorCategory::Validation);
        assert_eq!(category(412), ErrorCategory::Unavailable);
        let cas = r#"{"errors":["check-and-set parameter did not match the current version"]}"#;
        assert_eq!(classify_status(400, cas).0.category(), ErrorCategory::Conflict);
        assert_eq!(category(429), ErrorCategory::Unavailable);
        assert_eq!(category(500), ErrorCategory::Unavailable);
        assert_eq!(category(503), ErrorCategory::Unavailable);
    }

    #[test]
    fn server_messages_are_quoted_without_the_token() {
        let token = Secret::new("s.TOPSECRET");
        assert_eq!(server_detail(Some(r#"{"errors":["permission denied"]}"#), &token), ": permission denied");
        assert_eq!(server_detail(Some(r#"{"error":"Permission denied."}"#), &token), ": Permission denied.");
        let echoed = server_detail(Some(r#"{"errors":["bad token s.TOPSECRET"]}"#), &token);
        assert_eq!(echoed, ": bad token ***");
        assert_eq!(server_detail(Some("<html>"), &token), "");
        assert_eq!(server_detail(None, &token), "");
        assert_eq!(server_detail(Some(&format!(r#"{{"error":"{}"}}"#, "x".repeat(500))), &token).len(), 202);
    }
}
