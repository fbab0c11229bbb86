//! Compute nodes: pure functions of their input. No I/O and no clock (time arrives in the
//! input), synchronous; the host runs them off its async threads, wraps them in the resilience
//! their contract declares, and publishes what they emit to the node's `published_events`.

use onex_core::contract::NodeContract;
use serde_json::Value as Json;

use crate::error::SpiResult;
use crate::handler::HandlerDescriptor;

/// What a compute node is called with.
#[derive(Debug, Clone, Copy)]
pub struct ComputeInput<'a> {
    /// The operation requested (`circuit_breaker.evaluate`, or a name `handler_routing` binds).
    pub operation: &'a str,
    /// The envelope's payload.
    pub payload: &'a Json,
    /// The node's contract: the thresholds and settings the computation reads.
    pub contract: &'a NodeContract,
}

/// An event a computation emits: published to the topic the node's `published_events` gives
/// its type.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedEvent {
    /// Event type, as declared in `published_events`.
    pub event_type: String,
    /// Its payload.
    pub payload: Json,
}

/// What a computation returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComputeOutput {
    /// The reply payload.
    pub result: Json,
    /// Events to publish.
    pub events: Vec<EmittedEvent>,
}

/// A compute node's logic, registered by name with a [`HandlerRegistry`](crate::HandlerRegistry)
/// like a handler and bound the same way (its operations' prefix, or a `handler_routing` name).
pub trait Compute: Send + Sync + 'static {
    /// Its type (the operations' prefix) and operations.
    fn describe(&self) -> HandlerDescriptor;

    /// Computes the reply. Must not block on I/O or read a clock; errors carry a code and
    /// category like handler errors.
    fn compute(&self, input: ComputeInput<'_>) -> SpiResult<ComputeOutput>;
}
