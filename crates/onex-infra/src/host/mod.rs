//! The runtime host: envelopes from the bus and from HTTP ingress take one path
//! ([`RuntimeHost::handle`]) to a reducer, an orchestrator or an effect node's handler.
//!
//! - [`dispatch`]: effect operations through their node's resilience stack;
//! - [`reducer`]: events that move state machines, committed with their intents (outbox),
//!   concurrent commits sharing one transaction ([`commit`]);
//! - [`orchestrator`]: intents that start journaled workflow runs, each driven under a lease
//!   (`run_driver`) and taken over by another host when its own dies;
//! - `effects`: reply records for effects that are not idempotent;
//! - `sweeper`: expired runs taken over, records past their retention removed;
//! - [`consumer`], [`delivery`] and [`outbox`]: the bus side, at-least-once in and out,
//!   retryable failures tried again in place, every message ending in one final outcome;
//! - [`served`]: what one contract set makes of the host, replaced whole by [`reload`]; `runs`:
//!   the workflow runs being driven, kept across reloads;
//! - [`start`]: assembling a host from its configuration, and shutting it down;
//! - [`metrics`]: what `/metrics` shows.

pub mod commit;
pub mod consumer;
pub mod delivery;
pub mod dispatch;
mod effects;
pub mod metrics;
pub mod orchestrator;
pub mod outbox;
pub mod reducer;
pub mod reload;
mod run_driver;
mod runs;
pub mod runtime_host;
pub mod served;
pub mod start;
mod sweeper;
pub mod wire;

pub use dispatch::{DispatchError, Dispatcher};
pub use orchestrator::Orchestrator;
pub use reducer::Reducers;
pub use reload::{ReloadError, ReloadReport};
pub use runtime_host::{Claims, Limits, Machine, RuntimeHost};
pub use served::Served;
pub use start::{HostError, HostSetup, RunningHost, ShutdownReport, start, start_with_bus};
