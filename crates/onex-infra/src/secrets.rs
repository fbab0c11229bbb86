//! Secret stores of the host: `${env:NAME}` from the process environment. `${vault:…}`
//! references need the Vault handler and are refused by this store with a clear error.

use onex_core::contract::SecretRef;
use onex_core::secret::Secret;
use onex_spi::{SecretStore, SpiError, SpiResult, async_trait};

use crate::error::codes;

/// Resolves `${env:NAME}` from the environment (read at resolve time).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecretStore;

#[async_trait]
impl SecretStore for EnvSecretStore {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| {
                SpiError::new(
                    codes::SECRET_UNRESOLVED,
                    format!("environment variable `{name}` is not set (or not UTF-8)"),
                )
            }),
            SecretRef::Vault { path, key } => Err(SpiError::new(
                codes::SECRET_UNRESOLVED,
                format!("`${{vault:{path}#{key}}}` needs the vault handler, which this host does not have configured"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn env_references_resolve_and_missing_ones_name_the_variable() {
        let path = EnvSecretStore.resolve(&SecretRef::Env("PATH".into())).await.unwrap();
        assert!(!path.expose().is_empty());
        let err = EnvSecretStore.resolve(&SecretRef::Env("ONEX_SURELY_UNSET_VARIABLE".into())).await.unwrap_err();
        assert!(err.message().contains("ONEX_SURELY_UNSET_VARIABLE"), "{err}");
        let err =
            EnvSecretStore.resolve(&SecretRef::Vault { path: "kv/db".into(), key: "pw".into() }).await.unwrap_err();
        assert!(err.message().contains("kv/db#pw"), "{err}");
    }
}
