//! The `vault` handler (vaultrs): `vault.read_secret`, `vault.write_secret`,
//! `vault.delete_secret` and `vault.list_secrets` on KV v1 and v2 mounts (per-mount version in
//! the config, v2 by default as in Vault), `vault.renew_token`, and a background task renewing
//! the token before its TTL ends. Secret values travel only in the reply that asked for them:
//! never in logs, errors or Debug output.

mod client;
mod config;
mod kv;
mod renew;
mod secrets;

use std::path::Path;
use std::sync::Arc;

use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SecretStore, SpiError, SpiResult};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub use config::{DEFAULT_RENEW_BEFORE_MS, DEFAULT_TIMEOUT_MS, KvVersion, TlsConfig, VaultConfig};
pub use secrets::VaultSecretStore;

use self::client::{Call, RawEndpoint, VaultApi};
use self::kv::Location;
use self::renew::Renewal;
use super::payload::decode;
use crate::error::codes;

/// Reads and writes KV secrets in Vault and keeps its token alive.
pub struct VaultHandler {
    config: VaultConfig,
    secrets: Arc<dyn SecretStore>,
    api: tokio::sync::OnceCell<Arc<VaultApi>>,
    renewal: tokio::sync::Mutex<Option<Renewal>>,
}

impl std::fmt::Debug for VaultHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultHandler")
            .field("config", &self.config)
            .field("initialized", &self.api.initialized())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    mount: String,
    path: String,
    version: Option<u64>,
}

/// `data` stays untyped JSON: a serde type error would quote the value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteRequest {
    mount: String,
    path: String,
    data: Json,
    cas: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathRequest {
    mount: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    increment_s: Option<u64>,
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("vault")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "vault".into(), operations: Vec::new() })
}

/// Decodes the payload; errors name the envelope, the operation and the field.
fn payload<T: DeserializeOwned>(request: &Envelope) -> SpiResult<T> {
    decode(&request.operation, &request.payload)
        .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("envelope {}: {}", request.envelope_id, e.message())))
}

/// Refuses `field` on a KV v1 mount.
fn v2_only(at: &Location, field: &str, given: bool, context: &str) -> SpiResult<()> {
    if given && at.version == KvVersion::V1 {
        return Err(SpiError::new(
            codes::BAD_PAYLOAD,
            format!("{context}: field `{field}` applies to KV v2 mounts only; `{}` is KV v1", at.mount),
        ));
    }
    Ok(())
}

impl VaultHandler {
    /// A handler for `config` (`handlers.vault.config`); its `token` reference is resolved
    /// through `secrets` in `initialize`.
    pub fn new(config: &Json, data_dir: &Path, secrets: Arc<dyn SecretStore>) -> SpiResult<Self> {
        Ok(Self {
            config: VaultConfig::parse(config, data_dir)?,
            secrets,
            api: tokio::sync::OnceCell::new(),
            renewal: tokio::sync::Mutex::new(None),
        })
    }

    /// A secret store resolving `${vault:…}` with this handler's client (and `fallback` for
    /// the rest); `None` before `initialize`.
    pub fn secret_store(&self, fallback: Arc<dyn SecretStore>) -> Option<VaultSecretStore> {
        self.api.get().map(|api| VaultSecretStore::with_api(Arc::clone(api), fallback))
    }

    fn api(&self, request: &Envelope) -> SpiResult<&Arc<VaultApi>> {
        self.api.get().ok_or_else(|| {
            SpiError::new(
                codes::VAULT_UNAVAILABLE,
                format!(
                    "envelope {}: {}: the vault handler is not initialised",
                    request.envelope_id, request.operation
                ),
            )
        })
    }

    async fn dispatch(&self, api: &VaultApi, request: &Envelope) -> SpiResult<Json> {
        let op = request.operation.as_str();
        let prefix = format!("envelope {}: {op}", request.envelope_id);
        let context = |at: &Location| format!("{prefix} `{}`", at.display());
        match op {
            "vault.read_secret" => {
                let req: ReadRequest = payload(request)?;
                let at = Location::new(api, &req.mount, &req.path, false, &prefix)?;
                v2_only(&at, "version", req.version.is_some(), &prefix)?;
                kv::read(api, &at, req.version, &context(&at)).await
            }
            "vault.write_secret" => {
                let req: WriteRequest = payload(request)?;
                let at = Location::new(api, &req.mount, &req.path, false, &prefix)?;
                v2_only(&at, "cas", req.cas.is_some(), &prefix)?;
                let Json::Object(data) = req.data else {
                    return Err(SpiError::new(
                        codes::BAD_PAYLOAD,
                        format!("{prefix}: field `data` must be an object of key/value pairs"),
                    ));
                };
                kv::write(api, &at, data, req.cas, &context(&at)).await
            }
            "vault.delete_secret" => {
                let req: PathRequest = payload(request)?;
                let at = Location::new(api, &req.mount, &req.path, false, &prefix)?;
                kv::delete(api, &at, &context(&at)).await
            }
            "vault.list_secrets" => {
                let req: PathRequest = payload(request)?;
                let at = Location::new(api, &req.mount, &req.path, true, &prefix)?;
                kv::list(api, &at, &context(&at)).await
            }
            "vault.renew_token" => {
                let req: RenewRequest = payload(request)?;
                renew::renew_operation(api, req.increment_s, &prefix).await
            }
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the vault handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }
}

#[onex_spi::async_trait]
impl Handler for VaultHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    /// Resolves the token, builds the client and starts the renewal task. Vault need not be
    /// reachable yet: calls fail as unavailable until it is.
    async fn initialize(&self) -> SpiResult<()> {
        let api = self
            .api
            .get_or_try_init(|| async {
                let token = self.secrets.resolve(&self.config.token).await.map_err(|e| {
                    SpiError::custom(
                        e.code().to_owned(),
                        e.category(),
                        format!("vault handler: `token`: {}", e.message()),
                    )
                })?;
                VaultApi::connect(&self.config, token).map(Arc::new)
            })
            .await?;
        let mut renewal = self.renewal.lock().await;
        if renewal.is_none() {
            *renewal = Some(Renewal::start(Arc::clone(api), self.config.renew_before));
        }
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let api = self.api(request)?;
        self.dispatch(api, request).await
    }

    async fn health(&self) -> Health {
        let Some(api) = self.api.get() else {
            return Health::Unhealthy("vault handler not initialised".into());
        };
        let call = Call { context: "vault health", carries_secret: false };
        match api.send(RawEndpoint::seal_status(), call).await {
            Ok(status) if status["sealed"] == Json::Bool(false) => Health::Healthy,
            Ok(_) => Health::Unhealthy(format!("Vault at {} is sealed", api.address())),
            Err(e) => Health::Unhealthy(e.message().to_owned()),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        if let Some(renewal) = self.renewal.lock().await.take() {
            renewal.stop().await;
        }
        Ok(())
    }
}

/// Builds [`VaultHandler`]s from `handlers.vault.config`.
#[derive(Debug, Default)]
pub struct VaultHandlerFactory;

impl HandlerFactory for VaultHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(VaultHandler::new(&init.config, &init.data_dir, init.secrets)?))
    }
}
