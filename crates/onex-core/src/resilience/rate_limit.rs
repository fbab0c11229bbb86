//! Token-bucket rate limiter.

use std::time::Duration;

use crate::contract::RateLimitPolicy;
use crate::time::Tick;

/// A token bucket refilled at `per_second`, holding at most `burst` tokens.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Tick,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(policy: RateLimitPolicy, now: Tick) -> Self {
        let burst = f64::from(policy.burst.max(1));
        Self { per_second: policy.per_second, burst, tokens: burst, last: now }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_acquire(&mut self, now: Tick) -> Result<(), Duration> {
        let elapsed = now.saturating_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_the_rate() {
        let mut b = TokenBucket::new(RateLimitPolicy { per_second: 10.0, burst: 3 }, Tick::ZERO);
        for _ in 0..3 {
            b.try_acquire(Tick::ZERO).unwrap();
        }
        let wait = b.try_acquire(Tick::ZERO).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        b.try_acquire(Tick::from_millis(100)).unwrap();
        assert!(b.try_acquire(Tick::from_millis(150)).is_err());
        // A long idle period refills to the burst, not beyond.
        let later = Tick::from_millis(100_000);
        let granted = (0..10).filter(|_| b.try_acquire(later).is_ok()).count();
        assert_eq!(granted, 3);
    }
}
