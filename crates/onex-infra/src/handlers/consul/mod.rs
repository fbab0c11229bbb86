//! The `consul` handler, on consulrs 0.1: `consul.kv_get`, `consul.kv_put` (check-and-set with
//! `cas`), `consul.kv_delete`, `consul.register` (with an HTTP check), `consul.deregister` and
//! `consul.discover` (healthy instances only), plus [`register_host`] / [`deregister_host`] for
//! the host's own registration. consulrs and the rustify/reqwest 0.11 stack it brings are used
//! in this module only.
//!
//! Configuration (`handlers.consul.config`): `address` (default `http://127.0.0.1:8500`),
//! `token` (an ACL token, normally `${env:…}`/`${vault:…}`), `timeout_ms` (per request, default
//! 10000), `tls: {ca_path, skip_verify}`.

mod config;
mod errors;
mod health;
mod host;
mod ops;

use std::sync::Arc;

use consulrs::client::ConsulClient;
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SecretStore, SpiError, SpiResult, async_trait,
};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use tokio::sync::OnceCell;

pub use config::{ConsulConfig, DEFAULT_ADDRESS, DEFAULT_TIMEOUT_MS, TlsConfig};
pub use host::{
    HOST_CHECK_INTERVAL, HOST_CHECK_TIMEOUT, HOST_DEREGISTER_AFTER, deregister_host, host_service_id, register_host,
};

use errors::Context;

/// Talks to one Consul agent. The client is built (token resolved, CA read) on first use.
pub struct ConsulHandler {
    config: ConsulConfig,
    secrets: Arc<dyn SecretStore>,
    client: OnceCell<ConsulClient>,
}

impl std::fmt::Debug for ConsulHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulHandler").field("config", &self.config).finish_non_exhaustive()
    }
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("consul")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "consul".into(), operations: Vec::new() })
}

impl ConsulHandler {
    /// A handler for `config`, resolving its token through `secrets`.
    pub fn new(config: ConsulConfig, secrets: Arc<dyn SecretStore>) -> Self {
        Self { config, secrets, client: OnceCell::new() }
    }

    /// A handler from the runtime config's `handlers.consul` entry (what the factory builds;
    /// the host uses it for its own registration).
    pub fn from_init(init: HandlerInit) -> SpiResult<Self> {
        let config = ConsulConfig::from_json(&init.config, &init.data_dir)?;
        Ok(Self::new(config, init.secrets))
    }

    /// The configuration.
    pub fn config(&self) -> &ConsulConfig {
        &self.config
    }

    async fn client(&self) -> SpiResult<&ConsulClient> {
        self.client.get_or_try_init(|| self.config.client(self.secrets.as_ref())).await
    }
}

fn decode<T: DeserializeOwned>(cx: &Context, payload: &Json) -> SpiResult<T> {
    T::deserialize(payload).map_err(|e| cx.error(crate::error::codes::BAD_PAYLOAD, format!("invalid payload: {e}")))
}

#[async_trait]
impl Handler for ConsulHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        self.client().await.map(|_| ())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let cx = Context(format!("envelope {}: {}", request.envelope_id, request.operation));
        let payload = &request.payload;
        let known = matches!(
            request.operation.as_str(),
            "consul.kv_get"
                | "consul.kv_put"
                | "consul.kv_delete"
                | "consul.register"
                | "consul.deregister"
                | "consul.discover"
        );
        if !known {
            return Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!(
                    "envelope {}: the consul handler has no operation `{}`",
                    request.envelope_id, request.operation
                ),
            ));
        }
        let client = self.client().await?;
        match request.operation.as_str() {
            "consul.kv_get" => ops::kv_get(client, &cx, decode(&cx, payload)?).await,
            "consul.kv_put" => ops::kv_put(client, &cx, decode(&cx, payload)?).await,
            "consul.kv_delete" => ops::kv_delete(client, &cx, decode(&cx, payload)?).await,
            "consul.register" => ops::register(client, &cx, decode(&cx, payload)?).await,
            "consul.deregister" => ops::deregister(client, &cx, decode(&cx, payload)?).await,
            _ => ops::discover(client, &cx, decode(&cx, payload)?).await,
        }
    }

    /// Healthy when the agent answers `GET /v1/catalog/datacenters`.
    async fn health(&self) -> Health {
        let client = match self.client().await {
            Ok(client) => client,
            Err(e) => return Health::Unhealthy(e.message().to_owned()),
        };
        match consulrs::catalog::datacenters(client, None).await {
            Ok(_) => Health::Healthy,
            Err(e) => Health::Unhealthy(errors::map(&Context("consul".into()), "health check", e).message().to_owned()),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds [`ConsulHandler`]s from `handlers.consul.config`.
#[derive(Debug, Default)]
pub struct ConsulHandlerFactory;

impl HandlerFactory for ConsulHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(ConsulHandler::from_init(init)?))
    }
}
