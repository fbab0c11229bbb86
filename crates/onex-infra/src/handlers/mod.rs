//! Built-in handlers. Each implements `onex_spi::Handler` and is registered like a custom one.

pub mod payload;
pub mod stamp;

pub use stamp::StampHandler;
