//! Builds a node's resilience stack from its contract: breaker -> retry -> rate limit ->
//! concurrency limit -> per-attempt timeout -> handler. Only what the contract declares is
//! added; a node without a `resilience` section calls its handler directly.

use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::NodeContract;
use onex_core::envelope::Envelope;
use onex_core::resilience::{BreakerState, CircuitBreaker, RetryBudget, RetrySchedule, TokenBucket};
use onex_spi::Handler;

use super::clock::MonotonicClock;
use super::layers::{Breaker, CallFuture, ConcurrencyLimit, RateLimit, ResilienceStats, Retry, Stage, Timeout};

/// Share of first attempts that may be retried on top of `RETRY_FLOOR_PER_SECOND`.
pub const RETRY_BUDGET_RATIO: f64 = 0.2;
/// Retries per second always allowed.
pub const RETRY_FLOOR_PER_SECOND: f64 = 10.0;

/// The innermost stage: the handler itself.
struct HandlerStage(Arc<dyn Handler>);

impl Stage for HandlerStage {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.execute(&env).await })
    }
}

/// A node's stack, called through a shared reference by every task that dispatches to it.
pub type NodeService = Arc<dyn Stage>;

/// A built stack with what metrics read from it.
#[derive(Clone)]
pub struct ResilienceStack {
    /// The service to call.
    pub service: NodeService,
    /// Retry, timeout and rejection counters.
    pub stats: Arc<ResilienceStats>,
    breaker: Option<Arc<std::sync::Mutex<CircuitBreaker>>>,
    clock: MonotonicClock,
}

impl std::fmt::Debug for ResilienceStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilienceStack").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl ResilienceStack {
    /// Wraps `handler` in what `node`'s contract declares.
    pub fn build(node: &NodeContract, handler: Arc<dyn Handler>) -> Self {
        let r = &node.resilience;
        let stats = Arc::new(ResilienceStats::default());
        let clock = MonotonicClock::start();
        let per_operation: Vec<(String, Duration)> = node
            .io_operations
            .iter()
            .filter_map(|op| op.timeout_ms.map(|ms| (op.operation.clone(), Duration::from_millis(ms))))
            .collect();
        let mut service: NodeService = Arc::new(Timeout {
            inner: Arc::new(HandlerStage(handler)),
            default: r.timeout_ms.map(Duration::from_millis),
            per_operation: Arc::new(per_operation),
            stats: Arc::clone(&stats),
        });
        if let Some(max) = r.max_concurrency {
            let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1) as usize));
            service = Arc::new(ConcurrencyLimit { inner: service, slots });
        }
        if let Some(policy) = r.rate_limit {
            let bucket = Arc::new(tokio::sync::Mutex::new(TokenBucket::new(policy, clock.now())));
            service = Arc::new(RateLimit { inner: service, bucket, clock });
        }
        if let Some(policy) = &r.retry_policy {
            let budget = RetryBudget::new(RETRY_BUDGET_RATIO, RETRY_FLOOR_PER_SECOND);
            service = Arc::new(Retry {
                inner: service,
                schedule: Arc::new(RetrySchedule::new(policy.clone())),
                budget: Arc::new(tokio::sync::Mutex::new(budget)),
                stats: Arc::clone(&stats),
                clock,
            });
        }
        let breaker = r.circuit_breaker.map(|policy| Arc::new(std::sync::Mutex::new(CircuitBreaker::new(policy))));
        if let Some(breaker) = &breaker {
            service = Arc::new(Breaker {
                inner: service,
                breaker: Arc::clone(breaker),
                node: Arc::from(node.name.as_str()),
                stats: Arc::clone(&stats),
                clock,
            });
        }
        Self { service, stats, breaker, clock }
    }

    /// Calls the node through its stack (the envelope shared, not copied, by its stages).
    pub fn call(&self, env: Arc<Envelope>) -> CallFuture {
        self.service.call(env)
    }

    /// The breaker's state now (`None` when the contract declares no breaker).
    pub fn breaker_state(&self) -> Option<BreakerState> {
        let breaker = self.breaker.as_ref()?;
        Some(breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).state(self.clock.now()))
    }
}
