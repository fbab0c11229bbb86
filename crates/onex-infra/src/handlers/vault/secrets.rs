//! `VaultSecretStore`: resolves `${vault:mount/path#key}` by reading the KV secret (v1 or v2 as
//! the vault handler's `mounts` say) and hands `${env:…}` to the store it chains to. An error
//! names the reference, never the value.

use std::path::Path;
use std::sync::Arc;

use onex_core::contract::SecretRef;
use onex_core::error::ErrorCategory;
use onex_core::secret::Secret;
use onex_spi::{SecretStore, SpiError, SpiResult, async_trait};
use serde_json::Value as Json;

use super::client::VaultApi;
use super::config::VaultConfig;
use super::kv::{self, Location};
use crate::error::codes;

/// Resolves `${vault:…}` through Vault and everything else through `fallback`.
pub struct VaultSecretStore {
    api: Arc<VaultApi>,
    fallback: Arc<dyn SecretStore>,
}

impl std::fmt::Debug for VaultSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSecretStore").field("api", &self.api).finish_non_exhaustive()
    }
}

impl VaultSecretStore {
    /// Connects with the vault handler's `config` (the runtime config's
    /// `handlers.vault.config`); its token reference is resolved through `fallback` (the host's
    /// [`EnvSecretStore`](crate::secrets::EnvSecretStore)), which also serves `${env:…}`.
    pub async fn connect(config: &Json, data_dir: &Path, fallback: Arc<dyn SecretStore>) -> SpiResult<Self> {
        let config = VaultConfig::parse(config, data_dir)?;
        let token = fallback.resolve(&config.token).await.map_err(|e| {
            SpiError::custom(e.code().to_owned(), e.category(), format!("vault secret store: `token`: {}", e.message()))
        })?;
        Ok(Self { api: Arc::new(VaultApi::connect(&config, token)?), fallback })
    }

    /// A store over an already connected client.
    pub(super) fn with_api(api: Arc<VaultApi>, fallback: Arc<dyn SecretStore>) -> Self {
        Self { api, fallback }
    }

    async fn resolve_vault(&self, path: &str, key: &str) -> SpiResult<Secret> {
        let shown = format!("`${{vault:{path}#{key}}}`");
        let unresolved =
            |why: &str| SpiError::new(codes::SECRET_UNRESOLVED, format!("{shown} cannot be resolved: {why}"));
        let (mount, sub) = self.api.mounts.split(path).ok_or_else(|| unresolved("the path must be `mount/path`"))?;
        let at = Location::new(&self.api, mount, sub, false, &shown).map_err(|e| unresolved(e.message()))?;
        let reply = kv::read(&self.api, &at, None, &shown).await.map_err(|e| {
            if e.category() == ErrorCategory::NotFound { unresolved("Vault has no secret at that path") } else { e }
        })?;
        match reply["data"].get(key) {
            Some(Json::String(value)) => Ok(Secret::new(value.as_str())),
            None | Some(Json::Null) => Err(unresolved(&format!("the secret has no key `{key}`"))),
            Some(other) => Ok(Secret::new(other.to_string())),
        }
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Vault { path, key } => self.resolve_vault(path, key).await,
            SecretRef::Env(_) => self.fallback.resolve(reference).await,
        }
    }
}
