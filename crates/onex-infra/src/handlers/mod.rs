//! Built-in handlers. Each implements `onex_spi::Handler` and is registered like a custom one.

pub mod consul;
pub mod db;
pub mod http;
pub mod kafka;
pub mod keycloak;
pub mod local;
pub mod payload;
pub mod stamp;
pub mod vault;
pub mod webhook;

pub use consul::{ConsulHandler, ConsulHandlerFactory};
pub use db::{DbHandler, DbHandlerFactory};
pub use http::{HttpHandler, HttpHandlerFactory};
pub use kafka::{KafkaHandler, KafkaHandlerFactory};
pub use keycloak::{KeycloakHandler, KeycloakHandlerFactory};
pub use local::{LocalHandler, LocalHandlerFactory};
pub use stamp::{StampHandler, StampHandlerFactory};
pub use vault::{VaultHandler, VaultHandlerFactory, VaultSecretStore};
pub use webhook::{WebhookHandler, WebhookHandlerFactory};
