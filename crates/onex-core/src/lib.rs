//! ONEX core: the pure heart of the runtime.
//!
//! Models (envelopes, intents, contracts), the contract loader, the FSM engine, the workflow
//! planner and the resilience state machines. **No I/O of any kind**: no files, network,
//! processes, async runtime, clock or randomness. Callers pass bytes, `now` and random values in.
#![forbid(unsafe_code)]

pub mod contract;
pub mod envelope;
pub mod error;
pub mod fsm;
pub mod resilience;
pub mod rfc3339;
pub mod secret;
pub mod stamp;
pub mod time;
pub mod topic;
pub mod workflow;
pub mod yaml;

pub use error::{Classified, CoreError, ErrorCategory, ErrorCode};
