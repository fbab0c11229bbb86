//! Helpers of the vault handler tests: where RustyVault is, a token store for the handler's
//! `${env:…}` token reference, handlers, envelopes, unique paths and log capture.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use onex_core::contract::{NodeContract, SecretRef, load_node_contract};
use onex_core::envelope::Envelope;
use onex_core::secret::Secret;
use onex_infra::error::codes;
use onex_infra::handlers::VaultHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_spi::{Handler, SecretStore, SpiError, SpiResult, async_trait};
use serde_json::{Value as Json, json};

use crate::common::service_url;

/// The env reference the test handlers' config names as `token`.
pub const TOKEN_REF: &str = "${env:TEST_VAULT_TOKEN}";

/// RustyVault's address and root token, from `cargo xtask services up`.
pub fn rvault() -> (String, String) {
    let addr = service_url("ONEX_VAULT_ADDR", "http://127.0.0.1:18200");
    let token = service_url("ONEX_VAULT_TOKEN", "");
    assert!(!token.is_empty(), "no ONEX_VAULT_TOKEN: run `cargo xtask services up` first");
    (addr, token)
}

/// Resolves `${env:NAME}` from a fixed map (the tests cannot set process environment).
#[derive(Debug, Default)]
pub struct Tokens(BTreeMap<String, String>);

impl Tokens {
    /// `TEST_VAULT_TOKEN` = `token`.
    pub fn of(token: &str) -> Arc<Self> {
        Arc::new(Self(BTreeMap::from([("TEST_VAULT_TOKEN".to_owned(), token.to_owned())])))
    }
}

#[async_trait]
impl SecretStore for Tokens {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Env(name) => self
                .0
                .get(name)
                .map(Secret::new)
                .ok_or_else(|| SpiError::new(codes::SECRET_UNRESOLVED, format!("`{name}` is not set"))),
            SecretRef::Vault { .. } => Err(SpiError::new(codes::SECRET_UNRESOLVED, "no vault here")),
        }
    }
}

/// The handler config: `secret/` is KV v1 (RustyVault's), `extra` merged over it.
pub fn config(addr: &str, extra: Json) -> Json {
    let mut config = json!({
        "address": addr,
        "token": TOKEN_REF,
        "mounts": {"secret": {"version": 1}},
        "timeout_ms": 2000,
    });
    if let (Some(base), Json::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    config
}

/// An initialised handler talking to `addr` with `token`.
pub async fn handler(addr: &str, token: &str, extra: Json) -> Arc<VaultHandler> {
    let h = VaultHandler::new(&config(addr, extra), Path::new("."), Tokens::of(token)).unwrap();
    h.initialize().await.unwrap();
    Arc::new(h)
}

/// A request envelope.
pub fn envelope(op: &str, payload: Json) -> Envelope {
    Envelope::request(new_uuid_v7(), op, payload, now_utc())
}

/// Calls the handler directly.
pub async fn call(h: &VaultHandler, op: &str, payload: Json) -> SpiResult<Json> {
    h.execute(&envelope(op, payload)).await
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", new_uuid_v7().simple())
}

/// `contracts/effects/vault.yaml`, the node contract whose resilience wraps the handler.
pub fn vault_contract() -> NodeContract {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/effects/vault.yaml");
    let bytes = std::fs::read(&path).unwrap();
    load_node_contract("contracts/effects/vault.yaml", &bytes).unwrap().value
}

pub use super::logs::LogCapture;
