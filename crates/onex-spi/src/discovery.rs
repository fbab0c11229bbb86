//! Service discovery: register this host and find healthy instances of others.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::SpiResult;

/// A service instance to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRegistration {
    /// Unique instance id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Tags.
    pub tags: Vec<String>,
    /// URL of an HTTP health check, if any.
    pub http_check: Option<String>,
    /// Check interval, e.g. `10s`.
    pub check_interval: String,
}

/// A discovered, healthy instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// Instance id.
    pub id: String,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
}

/// A service registry (Consul).
#[async_trait]
pub trait ServiceDiscovery: Send + Sync + 'static {
    /// Registers an instance (replacing one with the same id).
    async fn register(&self, registration: &ServiceRegistration) -> SpiResult<()>;

    /// Removes an instance.
    async fn deregister(&self, id: &str) -> SpiResult<()>;

    /// Instances of `name` whose checks pass.
    async fn discover(&self, name: &str) -> SpiResult<Vec<ServiceInstance>>;
}
