//! Built-in handlers. Each implements `onex_spi::Handler` and is registered like a custom one.

pub mod local;
pub mod payload;
pub mod stamp;

pub use local::{LocalHandler, LocalHandlerFactory};
pub use stamp::{StampHandler, StampHandlerFactory};
