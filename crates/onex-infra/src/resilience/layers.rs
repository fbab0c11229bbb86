//! The stages of a node's resilience stack, one small wrapper per concern; each consults a core
//! state machine and refuses with a stable code.
//!
//! A stage is called through a shared reference ([`Stage::call`]) and returns its one boxed
//! future: a call through the whole stack allocates one future per stage the contract declares,
//! and nothing to clone or re-box the stages themselves (tower's boxed clone services cost a box
//! per call for the clone and another per stage for the future).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_core::error::codes;
use onex_core::resilience::{CircuitBreaker, RetryBudget, RetryDecision, RetrySchedule, TokenBucket};
use onex_spi::SpiError;
use serde_json::Value as Json;
use tokio::sync::{Mutex, Semaphore};

use super::clock::{MonotonicClock, random_unit};

/// The future every stage returns.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Json, SpiError>> + Send>>;

/// One stage of a node's stack (or the handler at its end).
pub trait Stage: Send + Sync + 'static {
    /// Calls the stage with `env`.
    fn call(&self, env: Arc<Envelope>) -> CallFuture;
}

/// A stage shared by every task that dispatches to the node.
pub type Inner = Arc<dyn Stage>;

/// Counters a stack exposes to metrics.
#[derive(Debug, Default)]
pub struct ResilienceStats {
    /// Retries made (attempts after the first).
    pub retries: AtomicU64,
    /// Calls refused by an open breaker.
    pub rejected_open: AtomicU64,
    /// Calls that timed out.
    pub timeouts: AtomicU64,
}

/// Fails an attempt that takes longer than its timeout (per operation, else the node's).
pub struct Timeout {
    pub(super) inner: Inner,
    pub(super) default: Option<Duration>,
    pub(super) per_operation: Arc<Vec<(String, Duration)>>,
    pub(super) stats: Arc<ResilienceStats>,
}

impl Stage for Timeout {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let limit = self.per_operation.iter().find(|(op, _)| *op == env.operation).map(|(_, d)| *d).or(self.default);
        // No limit for this operation: the inner call's own future, not one wrapped around it.
        let Some(limit) = limit else { return self.inner.call(env) };
        let stats = Arc::clone(&self.stats);
        let call = self.inner.call(Arc::clone(&env));
        Box::pin(async move {
            tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                let (id, op) = (env.envelope_id, &env.operation);
                Err(SpiError::new(
                    codes::OPERATION_TIMEOUT,
                    format!("envelope {id}: {op} did not finish within {} ms", limit.as_millis()),
                ))
            })
        })
    }
}

/// Caps the calls in flight; callers past the cap wait for a slot.
pub struct ConcurrencyLimit {
    pub(super) inner: Inner,
    pub(super) slots: Arc<Semaphore>,
}

impl Stage for ConcurrencyLimit {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let slots = Arc::clone(&self.slots);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = slots.acquire_owned().await;
            inner.call(env).await
        })
    }
}

/// Spaces calls to the node's rate: a call past the burst waits for its token.
pub struct RateLimit {
    pub(super) inner: Inner,
    pub(super) bucket: Arc<Mutex<TokenBucket>>,
    pub(super) clock: MonotonicClock,
}

impl Stage for RateLimit {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let (bucket, clock) = (Arc::clone(&self.bucket), self.clock);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                let wait = bucket.lock().await.try_acquire(clock.now());
                match wait {
                    Ok(()) => break,
                    Err(wait) => tokio::time::sleep(wait).await,
                }
            }
            inner.call(env).await
        })
    }
}

/// Retries failures of retryable categories (and listed codes) on the contract's schedule,
/// within a budget of retries per call, so a failing dependency is not hit ever harder.
pub struct Retry {
    pub(super) inner: Inner,
    pub(super) schedule: Arc<RetrySchedule>,
    pub(super) budget: Arc<Mutex<RetryBudget>>,
    pub(super) stats: Arc<ResilienceStats>,
    pub(super) clock: MonotonicClock,
}

impl Stage for Retry {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let (schedule, budget, stats) = (Arc::clone(&self.schedule), Arc::clone(&self.budget), Arc::clone(&self.stats));
        let clock = self.clock;
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            budget.lock().await.deposit(clock.now());
            let mut retries = 0;
            loop {
                let error = match inner.call(Arc::clone(&env)).await {
                    Ok(reply) => return Ok(reply),
                    Err(e) => e,
                };
                let RetryDecision::RetryAfter(delay) =
                    schedule.decide(retries, error.code(), error.category(), random_unit())
                else {
                    return Err(error);
                };
                if !budget.lock().await.try_withdraw(clock.now()) {
                    return Err(error);
                }
                retries += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
        })
    }
}

/// Refuses calls while the node's breaker is open, and feeds it every outcome.
pub struct Breaker {
    pub(super) inner: Inner,
    pub(super) breaker: Arc<std::sync::Mutex<CircuitBreaker>>,
    pub(super) node: Arc<str>,
    pub(super) stats: Arc<ResilienceStats>,
    pub(super) clock: MonotonicClock,
}

impl Stage for Breaker {
    fn call(&self, env: Arc<Envelope>) -> CallFuture {
        let breaker = Arc::clone(&self.breaker);
        let admitted = breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).try_acquire(self.clock.now());
        if let Err(open) = admitted {
            self.stats.rejected_open.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "envelope {}: {} refused: the circuit breaker of node `{}` is open (next trial in {} ms)",
                env.envelope_id,
                env.operation,
                self.node,
                open.retry_after.as_millis()
            );
            return Box::pin(async move { Err(SpiError::new(codes::CIRCUIT_OPEN, message)) });
        }
        let (call, clock) = (self.inner.call(env), self.clock);
        Box::pin(async move {
            let mut outcome = Outcome { breaker, clock, recorded: false };
            let result = call.await;
            outcome.record(result.as_ref().err().map(SpiError::category));
            result
        })
    }
}

/// Feeds the breaker the outcome of an admitted call. A call dropped before it finished (a
/// client that went away, a step that timed out) is released: it counts neither as a success
/// nor as a failure, and a half-open breaker's trial slot is freed.
struct Outcome {
    breaker: Arc<std::sync::Mutex<CircuitBreaker>>,
    clock: MonotonicClock,
    recorded: bool,
}

impl Outcome {
    fn record(&mut self, failure: Option<onex_core::error::ErrorCategory>) {
        self.recorded = true;
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(failure, self.clock.now());
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).release();
        }
    }
}
