//! The monotonic time and randomness the core resilience state machines take as parameters.

use std::sync::OnceLock;
use std::time::Instant;

use onex_core::time::Tick;

/// Now, on a monotonic timeline starting at the first call in this process. Under tokio's
/// paused test clock it follows the paused time.
pub fn now_tick() -> Tick {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    Tick::from_duration(tokio::time::Instant::now().saturating_duration_since(epoch))
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
