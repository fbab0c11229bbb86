//! ONEX service provider interface: the traits the runtime's moving parts implement.
//!
//! Traits only, plus the plain data they exchange and one error type. Depends on `onex-core`
//! and `async-trait` (and the pure `futures-core` for streams); never on an implementation.
//! A custom handler is written against this crate alone and registered with the host through
//! [`HandlerRegistry`].
#![forbid(unsafe_code)]

mod bus;
mod compute;
mod delivery_store;
mod discovery;
mod error;
mod handler;
mod secrets;
mod stamp_store;
mod state_store;

pub use bus::{
    BusFigures, Bytes, Delivery, EventBus, HeaderMap, Headers, InboundMessage, MessageStream, OutboundMessage,
    PartitionLag,
};
pub use compute::{Compute, ComputeInput, ComputeOutput, EmittedEvent};
pub use delivery_store::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, DeliveryStore};
pub use discovery::{ServiceDiscovery, ServiceInstance, ServiceRegistration};
pub use error::{SpiError, SpiResult};
pub use handler::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, HandlerRegistry, Health, OperationDescriptor,
};
pub use secrets::SecretStore;
pub use stamp_store::{SaveOutcome, StampRecord, StampStore};
pub use state_store::{
    CommitOutcome, EntityState, InspectStore, Lease, OutboxEntry, OutboxStore, RetentionPolicy, RetentionStore,
    RowCounts, RunRecord, RunStore, RunsToTake, StateStore, TransitionCommit,
};

/// Re-export so implementers use the same `async_trait` as the traits.
pub use async_trait::async_trait;
