//! A node's resilience stack, built from its contract, against scripted handlers on tokio's
//! paused clock: timeouts, retries (only what may succeed, within budget), the circuit breaker
//! opening and closing, rate limiting and the concurrency cap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use onex_core::contract::{NodeContract, load_node_contract};
use onex_core::envelope::Envelope;
use onex_core::error::{ErrorCategory, ErrorCode, codes};
use onex_core::resilience::BreakerState;
use onex_infra::handlers::LocalHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::resilience::ResilienceStack;
use onex_spi::{Handler, HandlerDescriptor, Health, SpiError, SpiResult, async_trait};
use serde_json::{Value, json};

fn node(resilience: &str) -> NodeContract {
    let yaml = format!(
        "name: n\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: local.echo\n  - operation: local.sleep\n    timeout_ms: 500\nresilience:\n{resilience}"
    );
    load_node_contract("test", yaml.as_bytes()).unwrap().value
}

/// Fails its first `failures` calls with `code`, then echoes.
struct Flaky {
    failures: u32,
    code: ErrorCode,
    calls: AtomicU32,
}

#[async_trait]
impl Handler for Flaky {
    fn describe(&self) -> HandlerDescriptor {
        HandlerDescriptor { handler_type: "local".into(), operations: Vec::new() }
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, request: &Envelope) -> SpiResult<Value> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            Err(SpiError::new(self.code, "scripted failure"))
        } else {
            Ok(request.payload.clone())
        }
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

fn flaky(failures: u32, code: ErrorCode) -> Arc<Flaky> {
    Arc::new(Flaky { failures, code, calls: AtomicU32::new(0) })
}

fn env(op: &str, payload: Value) -> Envelope {
    Envelope::request(new_uuid_v7(), op, payload, now_utc())
}

async fn call(stack: &ResilienceStack, op: &str, payload: Value) -> Result<Value, SpiError> {
    stack.call(Arc::new(env(op, payload))).await
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_per_operation_and_named() {
    let stack = ResilienceStack::build(&node("  timeout_ms: 100\n"), Arc::new(LocalHandler));
    let e = call(&stack, "local.sleep", json!({"ms": 1000})).await.unwrap_err();
    assert_eq!(e.code(), codes::OPERATION_TIMEOUT.as_str());
    assert!(e.message().contains("local.sleep did not finish within 500 ms"), "{e}");
    // 300 ms exceeds the node's 100 ms but not local.sleep's own 500 ms.
    call(&stack, "local.sleep", json!({"ms": 300})).await.unwrap();
    assert_eq!(stack.stats.timeouts.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_only_what_may_succeed() {
    let policy = "  retry_policy:\n    max_retries: 3\n    backoff_strategy: exponential\n    base_delay_ms: 10\n    max_delay_ms: 100\n    jitter_factor: 0.0\n";
    let handler = flaky(2, codes::OPERATION_TIMEOUT);
    let stack = ResilienceStack::build(&node(policy), handler.clone());
    let started = tokio::time::Instant::now();
    assert_eq!(call(&stack, "local.echo", json!(1)).await.unwrap(), json!(1));
    assert_eq!(handler.calls.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_millis(30), "10 ms then 20 ms of backoff");
    assert_eq!(stack.stats.retries.load(Ordering::Relaxed), 2);

    let invalid = flaky(5, codes::ENVELOPE_INVALID);
    let stack = ResilienceStack::build(&node(policy), invalid.clone());
    let e = call(&stack, "local.echo", json!(1)).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Validation);
    assert_eq!(invalid.calls.load(Ordering::SeqCst), 1, "validation errors are not retried");

    let down = flaky(100, codes::CIRCUIT_OPEN);
    let stack = ResilienceStack::build(&node(policy), down.clone());
    call(&stack, "local.echo", json!(1)).await.unwrap_err();
    assert_eq!(down.calls.load(Ordering::SeqCst), 4, "1 attempt + max_retries");
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_stops_retry_storms() {
    let policy =
        "  retry_policy:\n    max_retries: 5\n    base_delay_ms: 1\n    max_delay_ms: 1\n    jitter_factor: 0.0\n";
    let down = flaky(u32::MAX, codes::OPERATION_TIMEOUT);
    let stack = ResilienceStack::build(&node(policy), down.clone());
    for _ in 0..50 {
        call(&stack, "local.echo", json!(1)).await.unwrap_err();
    }
    let retries = stack.stats.retries.load(Ordering::Relaxed);
    // Without a budget: 250 retries. With 20 % of requests plus the floor's initial balance:
    assert!(retries < 40, "{retries} retries for 50 failing calls");
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_refuses_and_closes_after_recovery() {
    let policy =
        "  circuit_breaker:\n    failure_threshold: 2\n    recovery_timeout_ms: 1000\n    success_threshold: 1\n";
    let handler = flaky(2, codes::OPERATION_TIMEOUT);
    let stack = ResilienceStack::build(&node(policy), handler.clone());
    assert_eq!(stack.breaker_state(), Some(BreakerState::Closed));
    for _ in 0..2 {
        call(&stack, "local.echo", json!(1)).await.unwrap_err();
    }
    assert_eq!(stack.breaker_state(), Some(BreakerState::Open));
    let refused = call(&stack, "local.echo", json!(1)).await.unwrap_err();
    assert_eq!(refused.code(), codes::CIRCUIT_OPEN.as_str());
    assert!(refused.message().contains("circuit breaker of node `n` is open"), "{refused}");
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2, "an open breaker does not call the handler");
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(stack.breaker_state(), Some(BreakerState::HalfOpen));
    call(&stack, "local.echo", json!(1)).await.unwrap();
    assert_eq!(stack.breaker_state(), Some(BreakerState::Closed));
    assert_eq!(stack.stats.rejected_open.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_calls_past_the_burst() {
    let stack =
        ResilienceStack::build(&node("  rate_limit:\n    per_second: 10\n    burst: 2\n"), Arc::new(LocalHandler));
    let started = tokio::time::Instant::now();
    for _ in 0..4 {
        call(&stack, "local.echo", json!(1)).await.unwrap();
    }
    assert_eq!(started.elapsed(), Duration::from_millis(200), "2 at once, then one per 100 ms");
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_serialises_calls() {
    let stack = ResilienceStack::build(&node("  max_concurrency: 1\n"), Arc::new(LocalHandler));
    let started = tokio::time::Instant::now();
    let (a, b) =
        tokio::join!(call(&stack, "local.sleep", json!({"ms": 100})), call(&stack, "local.sleep", json!({"ms": 100})));
    a.unwrap();
    b.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn no_resilience_section_calls_the_handler_directly() {
    let contract = load_node_contract(
        "bare",
        b"name: bare\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations: [{operation: local.echo}]\n",
    )
    .unwrap()
    .value;
    let handler = flaky(1, codes::OPERATION_TIMEOUT);
    let stack = ResilienceStack::build(&contract, handler.clone());
    assert!(call(&stack, "local.echo", json!(1)).await.is_err());
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1, "no hidden retries");
    assert_eq!(stack.breaker_state(), None);
}

#[tokio::test(start_paused = true)]
async fn cancelled_calls_leave_a_healthy_breaker_closed() {
    let policy =
        "  circuit_breaker:\n    failure_threshold: 2\n    recovery_timeout_ms: 1000\n    success_threshold: 1\n";
    let stack = ResilienceStack::build(&node(policy), Arc::new(LocalHandler));
    // Clients that go away mid-call (their futures dropped) say nothing about the dependency.
    for _ in 0..5 {
        let abandoned =
            tokio::time::timeout(Duration::from_millis(10), call(&stack, "local.sleep", json!({"ms": 200})));
        assert!(abandoned.await.is_err(), "the client gave up first");
    }
    assert_eq!(stack.breaker_state(), Some(BreakerState::Closed));
    call(&stack, "local.echo", json!({})).await.unwrap();
}
