//! Secret stores: resolve `${env:…}` and `${vault:…}` references to [`Secret`] values.

use async_trait::async_trait;
use onex_core::contract::SecretRef;
use onex_core::secret::Secret;

use crate::error::SpiResult;

/// Resolves secret references. Errors name the reference, never a value.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// The value a reference points to.
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret>;
}
