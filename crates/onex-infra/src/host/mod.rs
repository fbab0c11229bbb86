//! The runtime host: dispatch of envelopes to handlers through their nodes' resilience stacks
//! (more of the host lands here: reducers, orchestrators, the bus loop, admin HTTP).

pub mod dispatch;

pub use dispatch::{DispatchError, Dispatcher};
