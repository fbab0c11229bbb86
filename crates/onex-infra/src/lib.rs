//! ONEX infrastructure: everything that does I/O — handlers, event buses, stores, the contract
//! directory loader and the `onex-runtime-host` command line.
#![forbid(unsafe_code)]

pub mod admin;
pub mod builtin;
pub mod bus;
pub mod cli;
pub mod compute;
pub mod contracts;
pub mod error;
pub mod handlers;
pub mod host;
pub mod ids;
pub mod registry;
pub mod resilience;
pub mod secrets;
pub mod stamp;
pub mod stores;
pub mod telemetry;

pub use error::InfraError;
