//! The monotonic time and randomness the core resilience state machines take as parameters.

use std::time::Instant;

use onex_core::time::Tick;

/// A monotonic timeline for one resilience stack, starting when the stack is built. Its ticks
/// are only compared with each other (breaker, token bucket, retry budget of that stack), so
/// every stack can have its own epoch; under tokio's paused test clock it follows paused time.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    epoch: tokio::time::Instant,
}

impl MonotonicClock {
    /// A timeline starting now.
    pub fn start() -> Self {
        Self { epoch: tokio::time::Instant::now() }
    }

    /// Now, on this timeline.
    pub fn now(&self) -> Tick {
        Tick::from_duration(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }
}

/// A uniformly random number in `[0, 1)` (retry jitter).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness source: derive jitter from the clock rather than fail the call.
        let nanos = Instant::now().elapsed().subsec_nanos();
        bytes[..4].copy_from_slice(&nanos.to_le_bytes());
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
