//! Compute nodes on the host: the built-in computations, and the adapter that runs any
//! [`Compute`] inside a node's resilience stack like a handler.

mod adapter;
mod circuit_breaker;

use std::sync::Arc;

use onex_spi::Compute;

pub use adapter::{ComputeHandler, split_output};
pub use circuit_breaker::CircuitBreakerCompute;

/// The computations built into the host.
pub fn builtin() -> Vec<Arc<dyn Compute>> {
    vec![Arc::new(CircuitBreakerCompute)]
}
