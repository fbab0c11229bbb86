//! Handlers: the only code that touches external systems, one per handler type (`db`, `vault`, …).

use std::sync::Arc;

use async_trait::async_trait;
use onex_core::envelope::Envelope;
use serde_json::Value as Json;

use crate::error::SpiResult;
use crate::secrets::SecretStore;

/// One operation a handler provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationDescriptor {
    /// Full operation name, `handler.name`.
    pub operation: String,
    /// What it does.
    pub description: String,
    /// Whether running it twice with the same input has the effect of running it once.
    pub idempotent: bool,
}

/// What a handler type offers, known before it is created (used to validate contracts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerDescriptor {
    /// The operation prefix it serves (`db` for `db.query`).
    pub handler_type: String,
    /// Its operations.
    pub operations: Vec<OperationDescriptor>,
}

/// Health as a handler, bus or store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Healthy,
    /// Working with reduced capacity; the reason says how.
    Degraded(String),
    /// Not working.
    Unhealthy(String),
}

/// A live handler. The host calls `initialize` once, `execute` concurrently, `shutdown` once.
///
/// Handlers never publish to the bus and never retry on their own: the host wraps every call
/// in the resilience stack the node's contract declares.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The handler's type and operations.
    fn describe(&self) -> HandlerDescriptor;

    /// Connects, prepares pools and background work. Called before the host reports ready.
    async fn initialize(&self) -> SpiResult<()>;

    /// Performs the envelope's operation and returns the reply payload. The host builds the
    /// reply envelope (ids, correlation, timestamp) around it.
    async fn execute(&self, request: &Envelope) -> SpiResult<Json>;

    /// Current health (for `/health/ready`).
    async fn health(&self) -> Health;

    /// Releases connections and stops background work.
    async fn shutdown(&self) -> SpiResult<()>;
}

/// What a factory gets to build a handler.
#[derive(Clone)]
pub struct HandlerInit {
    /// The handler's `config` from the runtime config; `${…}` secret references unresolved.
    pub config: Json,
    /// Resolves secret references found in `config`.
    pub secrets: Arc<dyn SecretStore>,
    /// The host's data directory: relative paths in `config` are relative to it.
    pub data_dir: std::path::PathBuf,
}

impl std::fmt::Debug for HandlerInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a literal URL with a password: show only its keys.
        let keys: Vec<&str> =
            self.config.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        f.debug_struct("HandlerInit")
            .field("config_keys", &keys)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Builds handlers of one type. Register an implementation with a [`HandlerRegistry`] to add a
/// custom handler without forking the runtime.
pub trait HandlerFactory: Send + Sync + 'static {
    /// The type and operations of the handlers it builds.
    fn descriptor(&self) -> HandlerDescriptor;

    /// Builds a handler from its configuration (not yet initialised).
    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>>;
}

/// Where handler factories are registered; the host builds handlers from it.
pub trait HandlerRegistry {
    /// Adds a factory. Registering a second factory for one handler type is an error.
    fn register(&mut self, factory: Arc<dyn HandlerFactory>) -> SpiResult<()>;

    /// Whether a registered handler provides `operation`.
    fn provides(&self, operation: &str) -> bool;

    /// Descriptors of every registered handler type.
    fn descriptors(&self) -> Vec<HandlerDescriptor>;

    /// Lets the handler type `handler_type` answer to `name` too: the name a contract's
    /// `handler_routing` binds an operation to (a Python handler class such as
    /// `HandlerLinearDbErrorReporter`). A name answers to one handler type; giving it a second
    /// is an error.
    fn register_name(&mut self, name: &str, handler_type: &str) -> SpiResult<()>;

    /// The handler type answering to `name`, if any.
    fn type_named(&self, name: &str) -> Option<String>;

    /// Adds a compute node's logic under its type. Compute types share the namespace of
    /// handler types: registering a type twice is an error.
    fn register_compute(&mut self, compute: Arc<dyn crate::Compute>) -> SpiResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSecrets;

    #[async_trait]
    impl SecretStore for NoSecrets {
        async fn resolve(&self, _: &onex_core::contract::SecretRef) -> SpiResult<onex_core::secret::Secret> {
            Err(crate::SpiError::new(onex_core::error::codes::OPERATION_FAILED, "no secrets here"))
        }
    }

    #[test]
    fn debug_shows_config_keys_not_values() {
        let init = HandlerInit {
            config: serde_json::json!({"url": "postgres://app:hunter2@db/app"}),
            secrets: Arc::new(NoSecrets),
            data_dir: "/data".into(),
        };
        let shown = format!("{init:?}");
        assert!(shown.contains("url") && !shown.contains("hunter2"), "{shown}");
    }
}
