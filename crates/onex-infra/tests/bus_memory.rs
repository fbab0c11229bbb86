//! `InMemoryEventBus` behaviour: partitioning, per-key order, consumer groups and rebalances,
//! at-least-once commits, backpressure, retention on topics nobody subscribed to and close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, poll_fn};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use onex_core::error::ErrorCategory;
use onex_infra::bus::{InMemoryEventBus, partition_for_key};
use onex_spi::{Bytes, EventBus, Headers, Health, InboundMessage, MessageStream, OutboundMessage};
use tokio::time::timeout;

/// Every test finishes well within this, or fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

/// How long something that must not happen is given to happen anyway.
const PENDING: Duration = Duration::from_millis(200);

async fn within<T>(future: impl Future<Output = T>) -> T {
    timeout(LIMIT, future).await.expect("timed out")
}

fn message(topic: &str, key: Option<&str>, payload: impl Into<Vec<u8>>) -> OutboundMessage {
    let (payload, headers) = (payload.into().into(), Headers::default());
    OutboundMessage { topic: topic.into(), key: key.map(Into::into), payload, headers }
}

fn topics(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// The next message, waiting for it.
async fn next(stream: &mut MessageStream) -> InboundMessage {
    within(poll_fn(|cx| stream.as_mut().poll_next(cx))).await.expect("stream ended").expect("stream error")
}

/// The next message if one is ready right now.
fn ready(stream: &mut MessageStream) -> Option<InboundMessage> {
    match stream.as_mut().poll_next(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Some(Ok(message))) => Some(message),
        Poll::Ready(Some(Err(e))) => panic!("stream error: {e}"),
        Poll::Ready(None) => panic!("stream ended"),
        Poll::Pending => None,
    }
}

/// Every message ready right now.
fn drain(stream: &mut MessageStream) -> Vec<InboundMessage> {
    std::iter::from_fn(|| ready(stream)).collect()
}

fn offsets(messages: &[InboundMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.offset).collect()
}

fn partitions(messages: &[InboundMessage]) -> BTreeSet<u32> {
    messages.iter().map(|m| m.partition).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_key_order_holds_across_ten_thousand_messages() {
    const KEYS: usize = 50;
    const TOTAL: usize = 10_000;
    let bus = InMemoryEventBus::new(8, 64);
    let mut stream = bus.subscribe("g", &topics(&["orders"])).await.unwrap();

    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut placed = HashMap::new();
            for seq in 0..TOTAL {
                let key = format!("key-{}", seq % KEYS);
                let payload = (seq / KEYS).to_string();
                let delivery = bus.publish(message("orders", Some(&key), payload)).await.unwrap();
                assert_eq!(*placed.entry(key).or_insert(delivery.partition), delivery.partition);
            }
            placed
        })
    };

    within(async {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut partitions_used = BTreeSet::new();
        for _ in 0..TOTAL {
            let m = next(&mut stream).await;
            let key = m.key.clone().unwrap();
            let seq: usize = String::from_utf8(m.payload.to_vec()).unwrap().parse().unwrap();
            let expected = seen.entry(key.clone()).or_insert(0);
            assert_eq!(seq, *expected, "{key} out of order");
            *expected += 1;
            partitions_used.insert(m.partition);
            bus.acknowledge("g", &m).await.unwrap();
        }
        assert_eq!(seen.len(), KEYS);
        assert!(seen.values().all(|n| *n == TOTAL / KEYS));
        assert!(partitions_used.len() > 1, "50 keys all hashed to one partition");
        let placed = publisher.await.unwrap();
        assert_eq!(placed.len(), KEYS);
    })
    .await;
    assert_eq!(bus.backlog("g", "orders"), 0);
    assert!(ready(&mut stream).is_none());
}

#[tokio::test]
async fn messages_without_a_key_spread_over_partitions() {
    let bus = InMemoryEventBus::new(4, 16);
    let mut placed = Vec::new();
    for n in 0..8u8 {
        let d = within(bus.publish(message("t", None, [n]))).await.unwrap();
        placed.push((d.partition, d.offset));
    }
    assert_eq!(placed, [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1)]);
}

#[tokio::test]
async fn a_key_lands_on_the_same_partition_in_every_bus() {
    let (a, b) = (InMemoryEventBus::new(8, 16), InMemoryEventBus::new(8, 16));
    for n in 0..40 {
        let key = format!("entity-{n}");
        let da = within(a.publish(message("t", Some(&key), "x"))).await.unwrap();
        let db = within(b.publish(message("t", Some(&key), "x"))).await.unwrap();
        assert_eq!(da.partition, db.partition);
        assert_eq!(da.partition, partition_for_key(&key, 8));
    }
}

#[tokio::test]
async fn out_of_order_acks_commit_only_the_contiguous_prefix() {
    let bus = InMemoryEventBus::new(4, 16);
    let mut stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    for n in 0..5u8 {
        within(bus.publish(message("t", Some("k"), [n]))).await.unwrap();
    }
    let got: Vec<InboundMessage> = drain(&mut stream);
    assert_eq!(offsets(&got), [0, 1, 2, 3, 4]);
    let p = got[0].partition;
    assert_eq!(bus.committed("g", "t", p), Some(0));
    assert_eq!(bus.backlog("g", "t"), 5);

    let mut ack_then_commit = Vec::new();
    for i in [2, 1, 0, 4, 3] {
        within(bus.acknowledge("g", &got[i])).await.unwrap();
        ack_then_commit.push(bus.committed("g", "t", p).unwrap());
    }
    assert_eq!(ack_then_commit, [0, 0, 3, 3, 5]);
    assert_eq!(bus.backlog("g", "t"), 0);
    // A repeated (late) ack changes nothing.
    within(bus.acknowledge("g", &got[1])).await.unwrap();
    assert_eq!(bus.committed("g", "t", p), Some(5));
    assert_eq!(bus.committed("other", "t", p), None);
}

#[tokio::test]
async fn acks_for_unknown_positions_are_refused() {
    let bus = InMemoryEventBus::new(2, 16);
    let _stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    within(bus.publish(message("t", Some("k"), "x"))).await.unwrap();
    let never = InboundMessage {
        topic: "t".into(),
        partition: 0,
        offset: 9,
        key: None,
        payload: Bytes::new(),
        headers: Headers::default(),
    };
    let e = within(bus.acknowledge("g", &never)).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    let e = within(bus.acknowledge("g", &InboundMessage { topic: "nope".into(), ..never })).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
}

#[tokio::test]
async fn a_dropped_stream_is_resumed_with_exactly_the_unacknowledged_messages() {
    let bus = InMemoryEventBus::new(4, 16);
    let mut stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    for n in 0..6u8 {
        within(bus.publish(message("t", Some("k"), [n]))).await.unwrap();
    }
    let got = drain(&mut stream);
    assert_eq!(offsets(&got), [0, 1, 2, 3, 4, 5]);
    for i in [0, 1, 3] {
        within(bus.acknowledge("g", &got[i])).await.unwrap();
    }
    drop(stream);

    let mut again = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    let redelivered = drain(&mut again);
    assert_eq!(offsets(&redelivered), [2, 4, 5]);
    let payloads: Vec<Vec<u8>> = redelivered.iter().map(|m| m.payload.to_vec()).collect();
    assert_eq!(payloads, [vec![2], vec![4], vec![5]]);
    assert_eq!(bus.committed("g", "t", got[0].partition), Some(2));

    // Nothing else arrives later either.
    assert!(timeout(PENDING, poll_fn(|cx| again.as_mut().poll_next(cx))).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_group_split_the_partitions_and_take_over_on_leave() {
    let bus = InMemoryEventBus::new(8, 16);
    let mut a = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    let mut b = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    for n in 0..16u8 {
        within(bus.publish(message("t", None, [n]))).await.unwrap();
    }
    let (got_a, got_b) = (drain(&mut a), drain(&mut b));
    let (parts_a, parts_b) = (partitions(&got_a), partitions(&got_b));
    assert!(!parts_a.is_empty() && !parts_b.is_empty());
    assert!(parts_a.is_disjoint(&parts_b));
    assert_eq!(parts_a.union(&parts_b).copied().collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert_eq!(got_a.len() + got_b.len(), 16);

    // B processes the first message of each of its partitions, then leaves.
    for m in got_b.iter().filter(|m| m.offset == 0) {
        within(bus.acknowledge("g", m)).await.unwrap();
    }
    drop(b);

    // A takes B's partitions over from their commits, and keeps its own where it was.
    let taken = within(async {
        let mut taken = Vec::new();
        while taken.len() < parts_b.len() {
            taken.push(next(&mut a).await);
        }
        taken
    })
    .await;
    assert_eq!(partitions(&taken), parts_b);
    assert!(taken.iter().all(|m| m.offset == 1));
    assert!(ready(&mut a).is_none());
}

#[tokio::test]
async fn every_group_receives_every_message() {
    let bus = InMemoryEventBus::new(4, 32);
    let mut one = within(bus.subscribe("one", &topics(&["t"]))).await.unwrap();
    let mut two = within(bus.subscribe("two", &topics(&["t"]))).await.unwrap();
    for n in 0..20u8 {
        within(bus.publish(message("t", Some(&format!("k{}", n % 3)), [n]))).await.unwrap();
    }
    let (got_one, got_two) = (drain(&mut one), drain(&mut two));
    let payloads = |got: &[InboundMessage]| got.iter().map(|m| m.payload[0]).collect::<BTreeSet<_>>();
    assert_eq!(payloads(&got_one), (0..20).collect());
    assert_eq!(payloads(&got_two), (0..20).collect());
    for m in &got_one {
        within(bus.acknowledge("one", m)).await.unwrap();
    }
    assert_eq!((bus.backlog("one", "t"), bus.backlog("two", "t")), (0, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_holds_publishers_back_until_its_oldest_message_is_acknowledged() {
    let bus = InMemoryEventBus::new(1, 4);
    let mut stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    for n in 0..4u8 {
        within(bus.publish(message("t", None, [n]))).await.unwrap();
    }
    let fifth = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(message("t", None, [4])).await })
    };
    let mut fifth = std::pin::pin!(fifth);
    assert!(timeout(PENDING, fifth.as_mut()).await.is_err(), "the 5th publish did not wait");

    let got = drain(&mut stream);
    assert_eq!(offsets(&got), [0, 1, 2, 3]);
    // Acknowledging past a gap frees nothing.
    within(bus.acknowledge("g", &got[1])).await.unwrap();
    assert!(timeout(PENDING, fifth.as_mut()).await.is_err(), "space freed past an unacknowledged message");

    within(bus.acknowledge("g", &got[0])).await.unwrap();
    let delivery = within(fifth).await.unwrap().unwrap();
    assert_eq!((delivery.partition, delivery.offset), (0, 4));
    assert_eq!(offsets(&drain(&mut stream)), [4]);
}

#[tokio::test]
async fn a_topic_no_group_subscribed_to_keeps_its_newest_messages_and_never_blocks() {
    const PARTITIONS: u8 = 4;
    const CAPACITY: u8 = 3;
    let bus = InMemoryEventBus::new(PARTITIONS.into(), CAPACITY.into());
    assert_eq!(bus.retained("replies"), 0);
    // Three times what the topic holds, round-robin: message `n` lands on partition
    // `n % PARTITIONS` at offset `n / PARTITIONS`, each publish at once.
    for n in 0..3 * CAPACITY * PARTITIONS {
        let delivery = timeout(PENDING, bus.publish(message("replies", None, [n])))
            .await
            .expect("a publish to a topic nobody subscribed to waited")
            .unwrap();
        assert_eq!((delivery.partition, delivery.offset), (u32::from(n % PARTITIONS), u64::from(n / PARTITIONS)));
        assert_eq!(bus.retained("replies"), u64::from((n + 1).min(CAPACITY * PARTITIONS)));
    }

    // A group that comes later gets exactly the newest `CAPACITY` of each partition, at their
    // original offsets, starting at the oldest retained one.
    let mut stream = within(bus.subscribe("late", &topics(&["replies"]))).await.unwrap();
    let got = drain(&mut stream);
    assert_eq!(got.len(), usize::from(CAPACITY * PARTITIONS));
    for partition in 0..PARTITIONS {
        let mine: Vec<&InboundMessage> = got.iter().filter(|m| m.partition == u32::from(partition)).collect();
        let positions: Vec<(u64, u8)> = mine.iter().map(|m| (m.offset, m.payload[0])).collect();
        let expected: Vec<(u64, u8)> = (6..9).map(|offset| (offset, offset as u8 * PARTITIONS + partition)).collect();
        assert_eq!(positions, expected, "partition {partition}");
        assert_eq!(bus.committed("late", "replies", partition.into()), Some(6));
    }
    assert_eq!(bus.backlog("late", "replies"), u64::from(CAPACITY * PARTITIONS));
    // Other topics are untouched.
    assert_eq!(bus.retained("other"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_group_subscribed_a_topic_keeps_what_it_did_not_commit() {
    let bus = InMemoryEventBus::new(1, 2);
    for n in 0..5u8 {
        within(bus.publish(message("t", None, [n]))).await.unwrap();
    }
    assert_eq!(bus.retained("t"), 2);
    // The group subscribes and goes away without reading: the topic now waits for it.
    drop(within(bus.subscribe("g", &topics(&["t"]))).await.unwrap());
    assert_eq!(bus.committed("g", "t", 0), Some(3));
    let sixth = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(message("t", None, [5])).await })
    };
    let mut sixth = std::pin::pin!(sixth);
    assert!(timeout(PENDING, sixth.as_mut()).await.is_err(), "a full partition dropped a message a group needs");
    assert_eq!(bus.retained("t"), 2);

    let mut stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    let first = next(&mut stream).await;
    assert_eq!((first.offset, &first.payload[..]), (3, [3].as_slice()));
    within(bus.acknowledge("g", &first)).await.unwrap();
    assert_eq!(within(sixth).await.unwrap().unwrap().offset, 5);
    assert_eq!(bus.retained("t"), 2);
    let rest = drain(&mut stream);
    assert_eq!(offsets(&rest), [4, 5]);
    for m in &rest {
        within(bus.acknowledge("g", m)).await.unwrap();
    }
    assert_eq!(bus.retained("t"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_streams_and_refuses_further_work() {
    let bus = InMemoryEventBus::new(1, 1);
    assert_eq!(within(bus.health()).await, Health::Healthy);
    let mut stream = within(bus.subscribe("g", &topics(&["t"]))).await.unwrap();
    within(bus.publish(message("t", None, "first"))).await.unwrap();
    let first = next(&mut stream).await;

    let waiting_reader = tokio::spawn(async move {
        let end = poll_fn(|cx| stream.as_mut().poll_next(cx)).await;
        end.is_none()
    });
    let waiting_publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(message("t", None, "second")).await })
    };
    tokio::time::sleep(PENDING).await;
    assert!(!waiting_reader.is_finished() && !waiting_publisher.is_finished());

    within(bus.close()).await.unwrap();
    assert!(within(waiting_reader).await.unwrap(), "the stream yielded instead of ending");
    let refused = within(waiting_publisher).await.unwrap().unwrap_err();
    assert_eq!(refused.category(), ErrorCategory::Unavailable);
    assert_eq!(refused.code(), "ONEX_INFRA_030_BUS_CLOSED");

    let e = within(bus.publish(message("t", None, "late"))).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Unavailable);
    let e = within(bus.subscribe("g", &topics(&["t"]))).await.err().unwrap();
    assert_eq!(e.category(), ErrorCategory::Unavailable);
    let e = within(bus.acknowledge("g", &first)).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Unavailable);
    assert!(matches!(within(bus.health()).await, Health::Unhealthy(_)));
    within(bus.close()).await.unwrap();
}

#[tokio::test]
async fn subscribing_to_no_topic_is_refused() {
    let bus = InMemoryEventBus::new(1, 1);
    let e = within(bus.subscribe("g", &[])).await.err().unwrap();
    assert_eq!(e.category(), ErrorCategory::Validation);
}
