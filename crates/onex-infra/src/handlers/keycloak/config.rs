//! The `keycloak` handler's configuration: the realm's issuer, the client it acts as, what a
//! verified token must say (audience, algorithms, leeway) and how keys and tokens are cached.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use onex_core::contract::SecretRef;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde_json::Value as Json;
use url::Url;

use crate::error::codes;
use crate::handlers::http::HttpConfig;

/// The algorithms verified by default: every asymmetric one the JWT crate knows. HMAC
/// algorithms and `none` cannot be allowed at all.
pub const DEFAULT_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The `handlers.keycloak.config` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuer: String,
    client_id: Option<String>,
    client_secret: Option<Json>,
    #[serde(default)]
    audience: Vec<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_leeway_s")]
    leeway_s: u64,
    #[serde(default = "default_jwks_refresh_min_interval_ms")]
    jwks_refresh_min_interval_ms: u64,
    #[serde(default = "default_jwks_max_age_ms")]
    jwks_max_age_ms: u64,
    #[serde(default = "default_token_refresh_before_s")]
    token_refresh_before_s: u64,
    #[serde(default)]
    allow_password_grant: bool,
    admin_url: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

fn default_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
}
const fn default_leeway_s() -> u64 {
    30
}
const fn default_jwks_refresh_min_interval_ms() -> u64 {
    10_000
}
const fn default_jwks_max_age_ms() -> u64 {
    600_000
}
const fn default_token_refresh_before_s() -> u64 {
    30
}
const fn default_timeout_ms() -> u64 {
    10_000
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct KeycloakConfig {
    /// The realm's issuer (`https://kc/realms/<realm>`); discovery is at
    /// `<issuer>/.well-known/openid-configuration` and tokens must carry it as `iss`.
    pub issuer: String,
    /// The client the handler acts as (grants, introspection, the admin API).
    pub client_id: Option<String>,
    /// Its secret, resolved through the host's secret store at start.
    pub client_secret: Option<SecretRef>,
    /// `aud` values a verified token may carry (one must match); empty: `aud` is not checked.
    pub audience: Vec<String>,
    /// Algorithms a token may be signed with.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Least time between two key-set fetches caused by an unknown `kid`.
    pub jwks_refresh_min_interval: Duration,
    /// Age after which the key set is fetched again before it is used.
    pub jwks_max_age: Duration,
    /// A cached access token is renewed this long before it expires.
    pub token_refresh_before: Duration,
    /// Whether `keycloak.token` may use the resource-owner password grant.
    pub allow_password_grant: bool,
    /// Keycloak's Admin REST base for the realm (`https://kc/admin/realms/<realm>`).
    pub admin_url: Option<Url>,
    /// The HTTP client's settings (timeout, CA file).
    pub http: HttpConfig,
}

/// A configuration error naming the field.
pub(super) fn invalid(message: impl std::fmt::Display) -> SpiError {
    SpiError::new(codes::KEYCLOAK_CONFIG, format!("keycloak handler config: {message}"))
}

impl KeycloakConfig {
    /// Validates `config` (the runtime config's `handlers.keycloak.config`).
    pub fn parse(config: &Json, data_dir: &Path) -> SpiResult<Self> {
        let raw = RawConfig::deserialize(config).map_err(invalid)?;
        let issuer = parse_http_url("issuer", &raw.issuer)?;
        let client_secret = match &raw.client_secret {
            None => None,
            Some(Json::String(text)) => Some(SecretRef::parse(text).ok_or_else(|| {
                invalid("`client_secret` must be a `${env:NAME}` or `${vault:mount/path#key}` reference, not a literal")
            })?),
            Some(_) => return Err(invalid("`client_secret` must be a `${env:NAME}` reference string")),
        };
        if client_secret.is_some() && raw.client_id.is_none() {
            return Err(invalid("`client_secret` is set but `client_id` is not"));
        }
        let algorithms = raw.algorithms.iter().map(|name| allowed_algorithm(name)).collect::<SpiResult<Vec<_>>>()?;
        if algorithms.is_empty() {
            return Err(invalid("`algorithms` is empty: no token could ever verify"));
        }
        let admin_url = match &raw.admin_url {
            Some(text) => Some(parse_http_url("admin_url", text)?),
            None => derived_admin_url(&issuer),
        };
        if raw.timeout_ms == 0 {
            return Err(invalid("`timeout_ms` must be above 0"));
        }
        let http = HttpConfig {
            timeout_ms: raw.timeout_ms,
            max_response_bytes: 4 * 1024 * 1024,
            ca_file: raw.ca_file.map(|f| if f.is_absolute() { f } else { data_dir.join(f) }),
            insecure_skip_verify: raw.insecure_skip_verify,
            ..HttpConfig::default()
        };
        Ok(Self {
            issuer: raw.issuer.trim_end_matches('/').to_owned(),
            client_id: raw.client_id,
            client_secret,
            audience: raw.audience,
            algorithms,
            leeway: Duration::from_secs(raw.leeway_s),
            jwks_refresh_min_interval: Duration::from_millis(raw.jwks_refresh_min_interval_ms),
            jwks_max_age: Duration::from_millis(raw.jwks_max_age_ms.max(1)),
            token_refresh_before: Duration::from_secs(raw.token_refresh_before_s),
            allow_password_grant: raw.allow_password_grant,
            admin_url,
            http,
        })
    }
}

/// An algorithm the allow-list may hold: asymmetric only.
pub(super) fn allowed_algorithm(name: &str) -> SpiResult<Algorithm> {
    let algorithm: Algorithm = name
        .parse()
        .map_err(|_| invalid(format!("`algorithms`: `{name}` is not a JWS algorithm the verifier knows")))?;
    if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(invalid(format!(
            "`algorithms`: `{name}` is an HMAC algorithm; tokens are verified with the realm's public keys only"
        )));
    }
    Ok(algorithm)
}

fn parse_http_url(field: &str, text: &str) -> SpiResult<Url> {
    let url = Url::parse(text).map_err(|e| invalid(format!("`{field}` {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`{field}` {text:?} must be an http:// or https:// URL")));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(invalid(format!("`{field}` must not carry credentials or a query")));
    }
    Ok(url)
}

/// Keycloak's convention: the realm `https://kc/realms/R` is administered at
/// `https://kc/admin/realms/R`.
fn derived_admin_url(issuer: &Url) -> Option<Url> {
    let path = issuer.path().trim_end_matches('/');
    let (base, realm) = path.rsplit_once("/realms/")?;
    if realm.is_empty() || realm.contains('/') {
        return None;
    }
    let mut admin = issuer.clone();
    admin.set_path(&format!("{base}/admin/realms/{realm}"));
    Some(admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Json) -> SpiResult<KeycloakConfig> {
        KeycloakConfig::parse(&config, Path::new("/data"))
    }

    #[test]
    fn defaults_and_the_derived_admin_url() {
        let c = parse(json!({ "issuer": "http://kc:8080/realms/onex/", "client_id": "svc",
                              "client_secret": "${env:KC_SECRET}" }))
        .unwrap();
        assert_eq!(c.issuer, "http://kc:8080/realms/onex");
        assert_eq!(c.admin_url.unwrap().as_str(), "http://kc:8080/admin/realms/onex");
        assert_eq!(c.client_secret, Some(SecretRef::Env("KC_SECRET".into())));
        assert_eq!(c.algorithms.len(), DEFAULT_ALGORITHMS.len());
        assert_eq!(c.leeway, Duration::from_secs(30));
        assert!(!c.allow_password_grant);
        assert!(parse(json!({ "issuer": "http://op:1/" })).unwrap().admin_url.is_none());
    }

    #[test]
    fn hmac_none_literal_secrets_and_bad_urls_are_refused_by_field() {
        for (config, needle) in [
            (json!({ "issuer": "http://kc/realms/a", "algorithms": ["HS256"] }), "HMAC"),
            (json!({ "issuer": "http://kc/realms/a", "algorithms": ["none"] }), "`none`"),
            (json!({ "issuer": "http://kc/realms/a", "algorithms": [] }), "empty"),
            (json!({ "issuer": "http://kc/realms/a", "client_id": "c", "client_secret": "hunter2" }), "not a literal"),
            (json!({ "issuer": "http://kc/realms/a", "client_secret": "${env:X}" }), "`client_id` is not"),
            (json!({ "issuer": "ftp://kc" }), "`issuer`"),
            (json!({ "issuer": "http://kc", "surprise": 1 }), "surprise"),
        ] {
            let e = parse(config).unwrap_err();
            assert_eq!(e.code(), codes::KEYCLOAK_CONFIG.as_str());
            assert!(e.message().contains(needle), "{needle}: {e}");
            assert!(!e.message().contains("hunter2"), "{e}");
        }
    }
}
