//! The `EventBus` contract, one suite run against every bus: the in-memory bus and Kafka (the
//! tansu broker `cargo xtask services up` starts). Keyed order (one by one and in a batch,
//! with a result per message), every message to every group,
//! a member that leaves resumes at its first unacknowledged message, members share partitions
//! and take over each other's, headers and keys arrive as published.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::{BusConfig, load_runtime_config};
use onex_infra::bus::{InMemoryEventBus, KafkaEventBus, KafkaSettings};
use onex_infra::ids::new_uuid_v7;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, HeaderMap, Health, InboundMessage, MessageStream, OutboundMessage};
use tokio::sync::watch;
use tokio::time::timeout;

/// Every step finishes well within this (a Kafka group join takes seconds), or fails.
const LIMIT: Duration = Duration::from_secs(90);
const PARTITIONS: u32 = 4;

async fn within<T>(future: impl Future<Output = T>) -> T {
    timeout(LIMIT, future).await.expect("timed out")
}

/// A bus to test, with `topics` existing on it.
trait Backend {
    fn bus(&self, topics: &[String]) -> impl Future<Output = Arc<dyn EventBus>>;
}

struct Memory;

impl Backend for Memory {
    async fn bus(&self, _topics: &[String]) -> Arc<dyn EventBus> {
        Arc::new(InMemoryEventBus::new(PARTITIONS, 256))
    }
}

struct Kafka;

/// The bus settings of the broker `services up` started.
fn kafka_bus_config() -> BusConfig {
    let bootstrap = common::service_url("ONEX_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    let text = format!("bus:\n  kind: kafka\n  bootstrap_servers: {bootstrap}\n  partitions: {PARTITIONS}\n");
    load_runtime_config("bus.yaml", text.as_bytes()).unwrap().value.bus
}

impl Backend for Kafka {
    async fn bus(&self, topics: &[String]) -> Arc<dyn EventBus> {
        let settings = KafkaSettings::resolve(&kafka_bus_config(), &EnvSecretStore).await.unwrap();
        let bus = KafkaEventBus::connect(settings, topics).await.unwrap_or_else(|e| {
            panic!("{e}: is the broker up (`cargo xtask services up`)?");
        });
        Arc::new(bus)
    }
}

/// Topic and group names no other run uses.
fn fresh(name: &str) -> String {
    format!("contract.{name}.{}", new_uuid_v7().simple())
}

fn message(topic: &str, key: Option<&str>, payload: &str) -> OutboundMessage {
    let headers = HeaderMap::from([("onex-test", format!("h-{payload}"))]);
    OutboundMessage {
        topic: topic.into(),
        key: key.map(Into::into),
        payload: payload.as_bytes().to_vec().into(),
        headers: Arc::new(headers),
    }
}

async fn next(stream: &mut MessageStream) -> InboundMessage {
    within(poll_fn(|cx| stream.as_mut().poll_next(cx))).await.expect("stream ended").expect("stream error")
}

fn text(message: &InboundMessage) -> String {
    String::from_utf8(message.payload.to_vec()).unwrap()
}

/// Where a test's readers put every message they receive, in arrival order.
type Received = Arc<watch::Sender<Vec<InboundMessage>>>;

/// Reads `stream` in the background, acknowledging each message, into `out`.
fn reader(
    bus: &Arc<dyn EventBus>,
    group: &str,
    mut stream: MessageStream,
    out: &Received,
) -> tokio::task::JoinHandle<()> {
    let (bus, group, out) = (Arc::clone(bus), group.to_owned(), Arc::clone(out));
    tokio::spawn(async move {
        while let Some(Ok(message)) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            bus.acknowledge(&group, &message).await.unwrap();
            out.send_modify(|got| got.push(message));
        }
    })
}

/// Waits until `received` holds every payload of `expected`.
async fn until_seen(received: &Received, expected: &BTreeSet<String>) {
    let mut changes = received.subscribe();
    let all_there = |got: &Vec<InboundMessage>| expected.is_subset(&got.iter().map(text).collect());
    within(changes.wait_for(all_there)).await.expect("the readers are gone");
}

async fn keyed_messages_keep_their_order_and_arrive_with_key_and_headers(backend: &impl Backend) {
    let topic = fresh("order");
    let bus = backend.bus(std::slice::from_ref(&topic)).await;
    assert_eq!(within(bus.health()).await, Health::Healthy);
    let mut stream = within(bus.subscribe(&fresh("g"), std::slice::from_ref(&topic))).await.unwrap();
    let mut placed = BTreeMap::new();
    for seq in 0..200 {
        let key = format!("key-{}", seq % 10);
        let delivery = within(bus.publish(message(&topic, Some(&key), &format!("{key}:{}", seq / 10)))).await.unwrap();
        assert_eq!(*placed.entry(key).or_insert(delivery.partition), delivery.partition, "a key moved partition");
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let m = next(&mut stream).await;
        let (key, seq) = text(&m).split_once(':').map(|(k, s)| (k.to_owned(), s.parse::<u32>().unwrap())).unwrap();
        assert_eq!(m.key.as_deref(), Some(key.as_str()));
        assert_eq!(m.headers.get("onex-test"), Some(format!("h-{}", text(&m)).as_str()));
        assert_eq!(m.partition, placed[&key]);
        let expected = seen.entry(key.clone()).or_insert(0);
        assert_eq!(seq, *expected, "{key} out of order");
        *expected += 1;
    }
    assert!(seen.values().all(|n| *n == 20), "{seen:?}");
}

async fn a_batch_is_published_in_order_with_one_result_per_message(backend: &impl Backend) {
    let topic = fresh("batch");
    let bus = backend.bus(std::slice::from_ref(&topic)).await;
    let mut stream = within(bus.subscribe(&fresh("g"), std::slice::from_ref(&topic))).await.unwrap();
    let batch: Vec<OutboundMessage> = (0..120)
        .map(|seq| {
            let key = format!("key-{}", seq % 3);
            message(&topic, Some(&key), &format!("{key}:{}", seq / 3))
        })
        .collect();
    let results = within(bus.publish_all(batch)).await;
    assert_eq!(results.len(), 120);
    let mut offsets: BTreeMap<u32, u64> = BTreeMap::new();
    for result in results {
        let delivery = result.unwrap();
        // Each result is its own message's: offsets rise along each partition in batch order.
        if let Some(before) = offsets.insert(delivery.partition, delivery.offset) {
            assert!(delivery.offset > before, "results out of order on partition {}", delivery.partition);
        }
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..120 {
        let m = next(&mut stream).await;
        let (key, seq) = text(&m).split_once(':').map(|(k, s)| (k.to_owned(), s.parse::<u32>().unwrap())).unwrap();
        let expected = seen.entry(key.clone()).or_insert(0);
        assert_eq!(seq, *expected, "{key} out of order");
        *expected += 1;
    }
    assert!(seen.values().all(|&n| n == 40), "{seen:?}");
}

async fn a_member_that_leaves_is_resumed_at_its_first_unacknowledged_message(backend: &impl Backend) {
    let (topic, group) = (fresh("resume"), fresh("g"));
    let bus = backend.bus(std::slice::from_ref(&topic)).await;
    for n in 0..6 {
        within(bus.publish(message(&topic, Some("k"), &n.to_string()))).await.unwrap();
    }
    let mut stream = within(bus.subscribe(&group, std::slice::from_ref(&topic))).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut stream).await);
    }
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["0", "1", "2", "3", "4", "5"]);
    for i in [0, 1, 3] {
        within(bus.acknowledge(&group, &got[i])).await.unwrap();
    }
    drop(stream);

    // Delivered again: everything from the first unacknowledged (2) on, and nothing before.
    let mut again = within(bus.subscribe(&group, std::slice::from_ref(&topic))).await.unwrap();
    let first = next(&mut again).await;
    assert_eq!((text(&first), first.offset), ("2".to_owned(), got[2].offset));
    let mut rest = BTreeSet::new();
    while !["4", "5"].iter().all(|n| rest.contains(*n)) {
        rest.insert(text(&next(&mut again).await));
    }
    assert!(rest.iter().all(|n| ["3", "4", "5"].contains(&n.as_str())), "{rest:?}");
}

async fn every_group_receives_every_message(backend: &impl Backend) {
    let topic = fresh("groups");
    let bus = backend.bus(std::slice::from_ref(&topic)).await;
    let (one, two) = (fresh("one"), fresh("two"));
    let (received_one, received_two): (Received, Received) = (Arc::default(), Arc::default());
    let _a =
        reader(&bus, &one, within(bus.subscribe(&one, std::slice::from_ref(&topic))).await.unwrap(), &received_one);
    let _b =
        reader(&bus, &two, within(bus.subscribe(&two, std::slice::from_ref(&topic))).await.unwrap(), &received_two);
    let expected: BTreeSet<String> = (0..30).map(|n| n.to_string()).collect();
    for n in &expected {
        within(bus.publish(message(&topic, Some(&format!("k{}", n.len())), n))).await.unwrap();
    }
    until_seen(&received_one, &expected).await;
    until_seen(&received_two, &expected).await;
}

async fn members_share_the_partitions_and_take_over_those_of_a_member_that_leaves(backend: &impl Backend) {
    let (topic, group) = (fresh("share"), fresh("g"));
    let bus = backend.bus(std::slice::from_ref(&topic)).await;
    // Both members read into one list; once B is gone, what arrives is A's.
    let received: Received = Arc::default();
    let _a =
        reader(&bus, &group, within(bus.subscribe(&group, std::slice::from_ref(&topic))).await.unwrap(), &received);
    let b = reader(&bus, &group, within(bus.subscribe(&group, std::slice::from_ref(&topic))).await.unwrap(), &received);
    let first: BTreeSet<String> = (0..40).map(|n| format!("first-{n}")).collect();
    for (n, payload) in first.iter().enumerate() {
        within(bus.publish(message(&topic, Some(&format!("entity-{n}")), payload))).await.unwrap();
    }
    until_seen(&received, &first).await;

    // B leaves; whatever it held, A now reads all of the topic.
    b.abort();
    let _ = b.await;
    let second: BTreeSet<String> = (0..40).map(|n| format!("second-{n}")).collect();
    for (n, payload) in second.iter().enumerate() {
        within(bus.publish(message(&topic, Some(&format!("entity-{n}")), payload))).await.unwrap();
    }
    until_seen(&received, &second).await;
    let partitions: BTreeSet<u32> =
        received.borrow().iter().filter(|m| text(m).starts_with("second")).map(|m| m.partition).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "40 keys over {PARTITIONS} partitions all reach A");
}

macro_rules! suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keyed_messages_keep_their_order_and_arrive_with_key_and_headers() {
                super::keyed_messages_keep_their_order_and_arrive_with_key_and_headers(&$backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_batch_is_published_in_order_with_one_result_per_message() {
                super::a_batch_is_published_in_order_with_one_result_per_message(&$backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_member_that_leaves_is_resumed_at_its_first_unacknowledged_message() {
                super::a_member_that_leaves_is_resumed_at_its_first_unacknowledged_message(&$backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_group_receives_every_message() {
                super::every_group_receives_every_message(&$backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn members_share_the_partitions_and_take_over_those_of_a_member_that_leaves() {
                super::members_share_the_partitions_and_take_over_those_of_a_member_that_leaves(&$backend).await;
            }
        }
    };
}

suite!(in_memory, Memory);
suite!(kafka, Kafka);
