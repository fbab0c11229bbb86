//! Delivery under bus faults: a fault-injecting `EventBus` around the in-memory bus makes
//! publishing fail, acknowledging fail and the consumer's stream break, while a scripted
//! handler fails in ways that may pass. Every message must end in exactly one final outcome,
//! in its partition's order, acknowledged only after that outcome is published, and retryable
//! failures must be tried again in place before they are dead-lettered with their attempts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_core::error::ErrorCategory;
use onex_infra::bus::InMemoryEventBus;
use onex_infra::host::delivery::HEADER_ATTEMPTS;
use onex_infra::host::wire::{HEADER_ERROR_CODE, to_message};
use onex_infra::host::{RunningHost, start_with_bus};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_spi::{
    Delivery, EventBus, Handler, HandlerDescriptor, HandlerFactory, HandlerInit, HandlerRegistry, Health,
    InboundMessage, MessageStream, OperationDescriptor, OutboundMessage, SpiError, SpiResult, async_trait,
};
use serde_json::{Value, json};

const GROUP: &str = "delivery-test";
const REQUESTS: &str = "onex.cmd.runtime.envelope.v1";
const REPLIES: &str = "onex.evt.runtime.reply.v1";
const DLQ: &str = "onex.dlq.runtime.envelope.v1";

/// Faults to inject, counted down as they happen.
#[derive(Default)]
struct Faults {
    /// Publishes to a topic that fail before one goes through.
    publish: Mutex<HashMap<String, u32>>,
    /// Acknowledgements that fail.
    acknowledge: AtomicU32,
    /// Errors the host group's stream yields (one before each of the next messages).
    stream: AtomicU32,
}

fn take(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn bus_down(what: &str) -> SpiError {
    SpiError::custom("TEST_BUS_DOWN", ErrorCategory::Unavailable, format!("injected: {what} failed"))
}

/// The in-memory bus with faults on the way in and out.
#[derive(Clone)]
struct FaultyBus {
    inner: InMemoryEventBus,
    faults: Arc<Faults>,
}

#[async_trait]
impl EventBus for FaultyBus {
    async fn publish(&self, message: OutboundMessage) -> SpiResult<Delivery> {
        let fail = match self.faults.publish.lock().unwrap().get_mut(&*message.topic) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if fail {
            Err(bus_down(&format!("publishing to {}", message.topic)))
        } else {
            self.inner.publish(message).await
        }
    }
    async fn subscribe(&self, group: &str, topics: &[String]) -> SpiResult<MessageStream> {
        let inner = self.inner.subscribe(group, topics).await?;
        if group != GROUP {
            return Ok(inner);
        }
        Ok(Box::pin(FaultyStream { inner, faults: Arc::clone(&self.faults) }))
    }
    async fn acknowledge(&self, group: &str, message: &InboundMessage) -> SpiResult<()> {
        if group == GROUP && take(&self.faults.acknowledge) {
            return Err(bus_down("acknowledging"));
        }
        self.inner.acknowledge(group, message).await
    }
    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
    async fn health(&self) -> Health {
        self.inner.health().await
    }
    async fn close(&self) -> Result<(), SpiError> {
        self.inner.close().await
    }
}

/// A stream that fails when told to, instead of yielding its next message.
struct FaultyStream {
    inner: MessageStream,
    faults: Arc<Faults>,
}

impl futures_core::Stream for FaultyStream {
    type Item = SpiResult<InboundMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match polled {
            // The message is not lost: the stream is dropped and the bus delivers it again to
            // whoever owns its partition next.
            Poll::Ready(Some(Ok(_))) if take(&self.faults.stream) => Poll::Ready(Some(Err(bus_down("the stream")))),
            other => other,
        }
    }
}

/// `flaky.call {key, failures}`: fails with an unavailable error `failures` times per key, then
/// answers with how many calls that key took.
#[derive(Default)]
struct Flaky {
    calls: Mutex<HashMap<String, u32>>,
}

#[async_trait]
impl Handler for Flaky {
    fn describe(&self) -> HandlerDescriptor {
        FlakyFactory(Arc::default()).descriptor()
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, request: &Envelope) -> SpiResult<Value> {
        let key = request.payload["key"].as_str().unwrap_or_default().to_owned();
        let failures = request.payload["failures"].as_u64().unwrap_or(0) as u32;
        let calls = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(key).or_default();
            *n += 1;
            *n
        };
        if calls <= failures {
            return Err(SpiError::custom("TEST_FLAKY_UNAVAILABLE", ErrorCategory::Unavailable, "not yet"));
        }
        Ok(json!({ "calls": calls }))
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

struct FlakyFactory(Arc<Flaky>);

impl HandlerFactory for FlakyFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        let operation = OperationDescriptor {
            operation: "flaky.call".into(),
            description: "fails, then works".into(),
            idempotent: true,
        };
        HandlerDescriptor { handler_type: "flaky".into(), operations: vec![operation] }
    }
    fn create(&self, _init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::clone(&self.0) as Arc<dyn Handler>)
    }
}

const RUNTIME: &str = "runtime_name: delivery-test
bus:
  group_id: delivery-test
  partitions: 2
delivery:
  max_attempts: 3
  backoff_ms: 5
  max_backoff_ms: 20
  jitter_factor: 0.5
handlers:
  local: {enabled: true}
  flaky: {enabled: true}
";

const NODES: [(&str, &str); 2] = [
    (
        "local.yaml",
        "name: test_local\ncontract_version: '1.0.0'\nnode_version: '1.0.0'\nnode_type: EFFECT\nio_operations:\n  - operation: local.echo\n  - operation: local.fail\n",
    ),
    (
        "flaky.yaml",
        "name: test_flaky\ncontract_version: '1.0.0'\nnode_version: '1.0.0'\nnode_type: EFFECT\nio_operations:\n  - operation: flaky.call\n",
    ),
];

struct Harness {
    memory: InMemoryEventBus,
    bus: Arc<dyn EventBus>,
    faults: Arc<Faults>,
    flaky: Arc<Flaky>,
    running: RunningHost,
}

async fn harness(name: &str) -> Harness {
    let flaky = Arc::new(Flaky::default());
    let mut registry = Registry::with_builtin_handlers().unwrap();
    registry.register(Arc::new(FlakyFactory(Arc::clone(&flaky)))).unwrap();
    let files = [("runtime.yaml", RUNTIME), NODES[0], NODES[1]];
    let setup = host_support::setup(name, &files, registry);
    let memory = InMemoryEventBus::new(setup.config.bus.partitions, setup.config.bus.capacity);
    let faults = Arc::new(Faults::default());
    let bus: Arc<dyn EventBus> = Arc::new(FaultyBus { inner: memory.clone(), faults: Arc::clone(&faults) });
    let running = start_with_bus(setup, Arc::clone(&bus)).await.unwrap();
    Harness { memory, bus, faults, flaky, running }
}

impl Harness {
    async fn send(&self, key: &str, operation: &str, payload: Value) -> Envelope {
        let request = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
        self.memory.publish(to_message(REQUESTS, Some(key.to_owned()), &request)).await.unwrap();
        request
    }

    /// The next `n` messages on `topic` (read by a group of the test's own, on the bare bus).
    async fn read(&self, topic: &str, n: usize) -> Vec<InboundMessage> {
        host_support::read_topic(&self.memory, topic, n, Duration::from_secs(20)).await
    }

    /// Waits until the host's group has acknowledged everything on the request topic.
    async fn settled(&self) {
        let acknowledged = || async { (self.memory.backlog(GROUP, REQUESTS) == 0).then_some(()) };
        host_support::eventually("the host acknowledging every message", Duration::from_secs(20), acknowledged).await;
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.running.host().render_metrics().await;
        let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
}

fn envelope(message: &InboundMessage) -> Envelope {
    serde_json::from_slice(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_faults_delay_outcomes_but_never_skip_reorder_or_repeat_them() {
    let h = harness("bus-faults").await;
    *h.faults.publish.lock().unwrap() = HashMap::from([(REPLIES.to_owned(), 3), (DLQ.to_owned(), 2)]);
    h.faults.acknowledge.store(2, Ordering::SeqCst);
    h.faults.stream.store(2, Ordering::SeqCst);

    let mut sent = Vec::new();
    for n in 0..30 {
        let request = if n == 15 {
            h.send("k", "local.fail", json!({"code": "ONEX_CORE_081_OPERATION_FAILED"})).await
        } else {
            h.send("k", "local.echo", json!({"n": n})).await
        };
        sent.push(request.envelope_id);
    }
    let replies = h.read(REPLIES, 30).await;
    let answered: Vec<_> = replies.iter().map(|m| envelope(m).causation_id.unwrap()).collect();
    assert_eq!(answered, sent, "one reply per request, in the partition's order, none repeated");
    let letters = h.read(DLQ, 1).await;
    assert_eq!(envelope(&letters[0]).envelope_id, sent[15]);
    assert_eq!(letters[0].headers.get(HEADER_ERROR_CODE).unwrap_or_default(), "ONEX_CORE_081_OPERATION_FAILED");
    assert_eq!(
        letters[0].headers.get(HEADER_ATTEMPTS).unwrap_or_default(),
        "1",
        "a non-retryable failure is not tried again"
    );
    h.settled().await;

    assert_eq!(h.faults.publish.lock().unwrap().values().sum::<u32>(), 0, "every publish fault was hit");
    assert_eq!(h.faults.acknowledge.load(Ordering::SeqCst), 0);
    assert_eq!(h.faults.stream.load(Ordering::SeqCst), 0);
    // 3 + 2 publishes and 2 acknowledgements were tried again; 2 broken streams were joined anew.
    assert_eq!(h.metric("onex_bus_retries_total").await, 7.0);
    assert_eq!(h.metric("onex_dlq_total").await, 1.0);
    // Outcomes are published before the acknowledgement: nothing can follow the ones read.
    assert_eq!(h.memory.backlog(&format!("reader-{REPLIES}"), REPLIES), 0, "no reply was published twice");
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_tried_again_in_place_then_dead_lettered_with_their_attempts() {
    let h = harness("in-place-retry").await;
    let recovers = h.send("k", "flaky.call", json!({"key": "recovers", "failures": 2})).await;
    let stays_down = h.send("k", "flaky.call", json!({"key": "down", "failures": 100})).await;
    let after = h.send("k", "local.echo", json!({"after": true})).await;

    let replies: Vec<Envelope> = h.read(REPLIES, 3).await.iter().map(envelope).collect();
    let order: Vec<_> = replies.iter().map(|r| r.causation_id.unwrap()).collect();
    assert_eq!(order, [recovers.envelope_id, stays_down.envelope_id, after.envelope_id], "order kept");
    assert_eq!(replies[0].success, Some(true), "{:?}", replies[0].error);
    assert_eq!(replies[0].payload, json!({"calls": 3}), "third time lucky, one reply");
    assert_eq!(replies[1].success, Some(false));
    assert_eq!(replies[1].error.as_ref().unwrap().code, "TEST_FLAKY_UNAVAILABLE");

    let letters = h.read(DLQ, 1).await;
    assert_eq!(envelope(&letters[0]).envelope_id, stays_down.envelope_id, "only the spent budget is dead-lettered");
    assert_eq!(letters[0].headers.get(HEADER_ATTEMPTS).unwrap_or_default(), "3");
    assert_eq!(letters[0].headers.get(HEADER_ERROR_CODE).unwrap_or_default(), "TEST_FLAKY_UNAVAILABLE");
    assert_eq!(h.flaky.calls.lock().unwrap()["down"], 3, "delivery.max_attempts tries, no more");
    h.settled().await;
    assert_eq!(h.metric("onex_delivery_retries_total").await, 4.0);
    assert_eq!(h.memory.backlog(&format!("reader-{DLQ}"), DLQ), 0, "one dead letter");
    h.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopping_mid_retry_leaves_the_message_for_redelivery() {
    let h = harness("stop-mid-retry").await;
    // Every reply publish fails: the message can never be settled.
    *h.faults.publish.lock().unwrap() = HashMap::from([(REPLIES.to_owned(), u32::MAX)]);
    h.send("k", "local.echo", json!({})).await;
    let retried = || async { (h.metric("onex_bus_retries_total").await >= 3.0).then_some(()) };
    host_support::eventually("the reply publish being retried", Duration::from_secs(20), retried).await;
    let report = h.running.shutdown(Duration::from_secs(5)).await;
    assert!(report.consumer_drained, "a lane retrying a publish stops when asked");
    assert_eq!(h.memory.backlog(GROUP, REQUESTS), 1, "the message stays unacknowledged for the next start");
    drop(h.bus);
}
