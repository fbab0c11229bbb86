//! Time as a value: core never reads a clock, callers pass `now` in.

use std::ops::Add;
use std::time::Duration;

/// A point on a monotonic timeline whose epoch the caller chooses (process start, a test's
/// zero). Only differences between two `Tick`s from the same timeline mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tick(Duration);

impl Tick {
    /// The epoch of the timeline.
    pub const ZERO: Tick = Tick(Duration::ZERO);

    /// A tick `elapsed` after the epoch.
    pub const fn from_duration(elapsed: Duration) -> Self {
        Self(elapsed)
    }

    /// A tick `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Tick) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Tick {
    type Output = Tick;

    fn add(self, rhs: Duration) -> Tick {
        Tick(self.0.saturating_add(rhs))
    }
}
