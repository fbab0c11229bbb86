//! The vault handler's configuration: address, token reference, KV mounts and their versions,
//! timeout, TLS and token renewal. The token is a `${env:…}` reference here, never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use onex_core::contract::SecretRef;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::codes;

/// Default for `timeout_ms`: how long one request to Vault may take.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default for `renew_before_ms`: the token is renewed this long before its TTL ends.
pub const DEFAULT_RENEW_BEFORE_MS: u64 = 60_000;

/// The version of a KV secrets engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    /// KV v1: `<mount>/<path>`, no versions.
    V1,
    /// KV v2: `<mount>/data/<path>` and `<mount>/metadata/<path>`, versioned.
    V2,
}

/// TLS settings of the Vault client (used for `https://` addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust besides the system's (relative to the data dir).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate. For tests only; never in production.
    #[serde(default)]
    pub skip_verify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    version: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    address: String,
    token: String,
    #[serde(default)]
    mounts: BTreeMap<String, RawMount>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    tls: TlsConfig,
    #[serde(default = "default_renew_before_ms")]
    renew_before_ms: u64,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_renew_before_ms() -> u64 {
    DEFAULT_RENEW_BEFORE_MS
}

/// KV mounts by name (no slashes around it). A mount not listed is KV v2, Vault's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable(BTreeMap<String, KvVersion>);

impl MountTable {
    /// The version of `mount` (v2 unless configured otherwise).
    pub fn version(&self, mount: &str) -> KvVersion {
        self.0.get(mount.trim_matches('/')).copied().unwrap_or(KvVersion::V2)
    }

    /// Splits `mount/path` at the longest configured mount, else at the first `/`.
    pub fn split<'a>(&self, full: &'a str) -> Option<(&'a str, &'a str)> {
        let full = full.trim_start_matches('/');
        let configured = self
            .0
            .keys()
            .filter(|m| full.strip_prefix(m.as_str()).is_some_and(|rest| rest.starts_with('/')))
            .max_by_key(|m| m.len());
        match configured {
            Some(m) => Some((&full[..m.len()], &full[m.len() + 1..])),
            None => full.split_once('/'),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// `http(s)://host:port` of Vault.
    pub address: String,
    /// Where the token comes from (resolved through the host's secret store).
    pub token: SecretRef,
    /// KV mounts and their versions.
    pub mounts: MountTable,
    /// Per-request timeout.
    pub timeout: Duration,
    /// TLS settings, `ca_cert` made absolute.
    pub tls: TlsConfig,
    /// How long before the token's TTL ends the background task renews it.
    pub renew_before: Duration,
}

fn invalid(message: impl std::fmt::Display) -> SpiError {
    SpiError::new(codes::VAULT_CONFIG, format!("vault handler config: {message}"))
}

impl VaultConfig {
    /// Validates `config` (the runtime config's `handlers.vault.config`); relative paths are
    /// relative to `data_dir`.
    pub fn parse(config: &Json, data_dir: &Path) -> SpiResult<Self> {
        // A token that is not a string would be quoted by serde's type error: refuse it first.
        if config.get("token").is_some_and(|t| !t.is_string()) {
            return Err(invalid("`token` must be a `${env:NAME}` reference string"));
        }
        let raw = RawConfig::deserialize(config).map_err(invalid)?;
        let token = SecretRef::parse(&raw.token).ok_or_else(|| {
            invalid("`token` must be a `${env:NAME}` or `${vault:mount/path#key}` reference, not a literal token")
        })?;
        let address = validate_address(&raw.address)?;
        let mut mounts = BTreeMap::new();
        for (name, mount) in raw.mounts {
            let version = match mount.version {
                1 => KvVersion::V1,
                2 => KvVersion::V2,
                other => return Err(invalid(format!("mounts.{name}.version is {other}; expected 1 or 2"))),
            };
            let trimmed = name.trim_matches('/');
            if trimmed.is_empty() {
                return Err(invalid(format!("mount name `{name}` is empty")));
            }
            mounts.insert(trimmed.to_owned(), version);
        }
        if raw.timeout_ms == 0 {
            return Err(invalid("`timeout_ms` must be above 0"));
        }
        let mut tls = raw.tls;
        if let Some(ca) = &tls.ca_cert {
            let path = if ca.is_absolute() { ca.clone() } else { data_dir.join(ca) };
            std::fs::metadata(&path)
                .map_err(|e| invalid(format!("tls.ca_cert {} cannot be read: {e}", path.display())))?;
            tls.ca_cert = Some(path);
        }
        Ok(Self {
            address,
            token,
            mounts: MountTable(mounts),
            timeout: Duration::from_millis(raw.timeout_ms),
            tls,
            renew_before: Duration::from_millis(raw.renew_before_ms),
        })
    }
}

/// `address` as an absolute `http`/`https` URL with a host and no path, query or fragment.
fn validate_address(address: &str) -> SpiResult<String> {
    let url = url::Url::parse(address).map_err(|e| invalid(format!("`address` {address:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`address` {address:?} must be http://host:port or https://host:port")));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(format!("`address` {address:?} must not carry a path, query, fragment or user")));
    }
    Ok(address.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Json) -> SpiResult<VaultConfig> {
        VaultConfig::parse(&config, Path::new("/data"))
    }

    #[test]
    fn defaults_and_mount_versions() {
        let c = parse(json!({"address": "http://127.0.0.1:8200/", "token": "${env:VAULT_TOKEN}",
            "mounts": {"secret/": {"version": 1}, "kv": {"version": 2}}}))
        .unwrap();
        assert_eq!(c.address, "http://127.0.0.1:8200");
        assert_eq!(c.token, SecretRef::Env("VAULT_TOKEN".into()));
        assert_eq!(c.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(c.renew_before, Duration::from_millis(DEFAULT_RENEW_BEFORE_MS));
        assert_eq!(c.mounts.version("secret"), KvVersion::V1);
        assert_eq!(c.mounts.version("/kv/"), KvVersion::V2);
        assert_eq!(c.mounts.version("other"), KvVersion::V2, "Vault's default");
        assert_eq!(c.tls, TlsConfig::default());
    }

    #[test]
    fn bad_configs_are_refused_by_field() {
        let base = |extra: Json| {
            let mut c = json!({"address": "http://127.0.0.1:8200", "token": "${env:T}"});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(c).unwrap_err()
        };
        let e = parse(json!({"address": "http://h:1", "token": 987_654_321})).unwrap_err();
        assert!(!e.message().contains("987654321"), "{e}");
        let e = parse(json!({"address": "http://h:1", "token": "s.literal-token"})).unwrap_err();
        assert_eq!(e.code(), codes::VAULT_CONFIG.as_str());
        assert!(e.message().contains("`token` must be") && !e.message().contains("s.literal-token"), "{e}");
        assert!(base(json!({"address": "ftp://h"})).message().contains("`address`"));
        assert!(base(json!({"address": "http://h:1/v1"})).message().contains("path"));
        assert!(base(json!({"mounts": {"kv": {"version": 3}}})).message().contains("mounts.kv.version is 3"));
        assert!(base(json!({"timeout_ms": 0})).message().contains("timeout_ms"));
        assert!(base(json!({"tls": {"ca_cert": "missing.pem"}})).message().contains("/data/missing.pem"));
        assert!(base(json!({"tls": {"verify": false}})).message().contains("unknown field `verify`"));
        assert!(base(json!({"adress": "x"})).message().contains("unknown field `adress`"));
    }

    #[test]
    fn references_split_at_the_longest_configured_mount() {
        let c = parse(json!({"address": "http://h:1", "token": "${env:T}",
            "mounts": {"kv": {"version": 1}, "kv/team": {"version": 2}}}))
        .unwrap();
        assert_eq!(c.mounts.split("kv/team/db"), Some(("kv/team", "db")));
        assert_eq!(c.mounts.split("kv/db/x"), Some(("kv", "db/x")));
        assert_eq!(c.mounts.split("secret/app/db"), Some(("secret", "app/db")));
        assert_eq!(c.mounts.split("nopath"), None);
    }
}
