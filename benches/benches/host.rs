//! The runtime host end to end on the bundled contracts: `local.echo` round trips through the
//! in-memory bus and the consumer, next to a bare tokio mpsc echo carrying the same bytes (the
//! baseline) and to `RuntimeHost::handle` called directly (no bus); reducer transitions with
//! SQLite persistence, sequential and concurrent; and the SQLite state store's single vs batched
//! commits. Round-trip latency percentiles are measured once, outside criterion, and printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr, missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use onex_core::envelope::Envelope;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::to_message;
use onex_infra::host::{HostSetup, RunningHost, RuntimeHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_infra::stores::SqliteStateStore;
use onex_spi::{CommitOutcome, EventBus, InboundMessage, MessageStream, OutboundMessage, StateStore, TransitionCommit};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Round trips per measured iteration of the echo benchmarks.
const N: usize = 10_000;
/// Sequential round trips of the latency measurement.
const M: usize = 2_000;
/// The consumer group reading the host's replies.
const REPLY_GROUP: &str = "bench-replies";
/// Lanes of the concurrent variants (the host consumes with one lane per partition, 8).
const TASKS: usize = 8;
/// Entities per reducer iteration; each makes two transitions.
const ENTITIES: usize = 64;
/// Fresh-entity commits per store iteration, and the batch size of the batched variant.
const COMMITS: usize = 256;
const BATCH: usize = 64;

/// Entity keys never used before in this process, so every transition starts from scratch.
static NEXT_ENTITY: AtomicU64 = AtomicU64::new(0);

struct Fixture {
    runtime: Runtime,
    running: RunningHost,
    host: Arc<RuntimeHost>,
    bus: Arc<dyn EventBus>,
    replies: MessageStream,
    request_topic: String,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("onex-bench-host-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = Registry::with_builtin_handlers().unwrap();
    let contracts = load_bundled_contracts(&registry).set.expect("the bundled contracts validate");
    let config = contracts.runtime.as_ref().expect("a bundled runtime config").1.clone();
    let (request_topic, reply_topic) = (config.bus.request_topic.clone(), config.bus.reply_topic.clone());
    let setup = HostSetup { config, contracts, registry, data_dir: dir.clone(), secrets: Arc::new(EnvSecretStore) };
    let (running, replies) = runtime.block_on(async {
        let running = start(setup).await.unwrap();
        // Subscribed before anything is published, so the group sees every reply.
        let replies = running.host().bus().subscribe(REPLY_GROUP, &[reply_topic]).await.unwrap();
        (running, replies)
    });
    let host = Arc::clone(running.host());
    let bus = Arc::clone(host.bus());
    Fixture { runtime, running, host, bus, replies, request_topic, dir }
}

fn echo_envelope(i: usize) -> Envelope {
    Envelope::request(new_uuid_v7(), "local.echo", json!({ "n": i }), now_utc())
}

async fn next_reply(stream: &mut MessageStream) -> InboundMessage {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await.expect("the reply stream ended").unwrap()
}

/// Publishes `messages` from another task while reading (and acknowledging) as many replies.
async fn bus_round_trips(bus: &Arc<dyn EventBus>, replies: &mut MessageStream, messages: Vec<OutboundMessage>) {
    let n = messages.len();
    let publisher = {
        let bus = Arc::clone(bus);
        tokio::spawn(async move {
            for message in messages {
                bus.publish(message).await.unwrap();
            }
        })
    };
    for _ in 0..n {
        let reply = next_reply(replies).await;
        bus.acknowledge(REPLY_GROUP, &reply).await.unwrap();
    }
    publisher.await.unwrap();
}

/// The baseline: requests into one channel, one task echoing them into a reply channel.
struct MpscEcho {
    requests: mpsc::Sender<Vec<u8>>,
    replies: mpsc::Receiver<Vec<u8>>,
}

impl MpscEcho {
    fn start(runtime: &Runtime) -> Self {
        let (requests, mut inbox) = mpsc::channel::<Vec<u8>>(1024);
        let (outbox, replies) = mpsc::channel::<Vec<u8>>(1024);
        runtime.spawn(async move {
            while let Some(bytes) = inbox.recv().await {
                if outbox.send(bytes).await.is_err() {
                    break;
                }
            }
        });
        Self { requests, replies }
    }

    async fn round_trips(&mut self, payloads: Vec<Vec<u8>>) {
        let n = payloads.len();
        let requests = self.requests.clone();
        let publisher = tokio::spawn(async move {
            for bytes in payloads {
                requests.send(bytes).await.unwrap();
            }
        });
        for _ in 0..n {
            black_box(self.replies.recv().await.unwrap());
        }
        publisher.await.unwrap();
    }
}

/// Runs `f(input())` `iters` times, timing only `f`.
fn timed<I>(runtime: &Runtime, iters: u64, input: impl Fn() -> I, mut f: impl AsyncFnMut(I)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = input();
        let started = Instant::now();
        runtime.block_on(f(input));
        total += started.elapsed();
    }
    total
}

async fn handle_concurrently(host: &Arc<RuntimeHost>, batches: Vec<Vec<Envelope>>) {
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let host = Arc::clone(host);
            tokio::spawn(async move {
                for envelope in batch {
                    let reply = host.handle(envelope).await;
                    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn split<T>(items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let per = items.len().div_ceil(parts);
    let mut out: Vec<Vec<T>> = (0..parts).map(|_| Vec::with_capacity(per)).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i / per].push(item);
    }
    out
}

fn echo(c: &mut Criterion, fx: &mut Fixture) {
    let envelopes: Vec<Envelope> = (0..N).map(echo_envelope).collect();
    let messages: Vec<OutboundMessage> = envelopes.iter().map(|e| to_message(&fx.request_topic, None, e)).collect();
    let payloads: Vec<Vec<u8>> = messages.iter().map(|m| m.payload.clone()).collect();
    let mut mpsc_echo = MpscEcho::start(&fx.runtime);

    let mut group = c.benchmark_group("host_local_echo_10k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    let Fixture { runtime, host, bus, replies, .. } = fx;
    group.bench_function("baseline_tokio_mpsc_echo", |b| {
        b.iter_custom(|iters| timed(runtime, iters, || payloads.clone(), async |p| mpsc_echo.round_trips(p).await))
    });
    group.bench_function("host_bus_round_trip", |b| {
        b.iter_custom(|iters| {
            timed(runtime, iters, || messages.clone(), async |m| bus_round_trips(bus, replies, m).await)
        })
    });
    group.bench_function("host_handle_direct_1_task", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                iters,
                || envelopes.clone(),
                async |batch| {
                    for envelope in batch {
                        black_box(host.handle(envelope).await);
                    }
                },
            )
        })
    });
    group.bench_function("host_handle_direct_8_tasks", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                iters,
                || split(envelopes.clone(), TASKS),
                async |batches| handle_concurrently(host, batches).await,
            )
        })
    });
    group.finish();
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// M sequential single round trips through each path; prints p50/p99 and the difference.
fn latency(fx: &mut Fixture) {
    let Fixture { runtime, bus, replies, request_topic, .. } = fx;
    let messages: Vec<OutboundMessage> = (0..M).map(|i| to_message(request_topic, None, &echo_envelope(i))).collect();
    let mut mpsc_echo = MpscEcho::start(runtime);
    let (mut via_bus, mut via_mpsc) = runtime.block_on(async {
        // One checked round trip first: the reply must be a success.
        bus.publish(messages[0].clone()).await.unwrap();
        let reply = next_reply(replies).await;
        bus.acknowledge(REPLY_GROUP, &reply).await.unwrap();
        let envelope = Envelope::decode(&reply.payload, usize::MAX, onex_infra::ids::minted()).unwrap();
        assert_eq!(envelope.success, Some(true), "local.echo failed: {:?}", envelope.error);

        let mut via_bus = Vec::with_capacity(M);
        for message in &messages {
            let message = message.clone();
            let started = Instant::now();
            bus.publish(message).await.unwrap();
            let reply = next_reply(replies).await;
            via_bus.push(started.elapsed());
            bus.acknowledge(REPLY_GROUP, &reply).await.unwrap();
        }
        let mut via_mpsc = Vec::with_capacity(M);
        for message in &messages {
            let bytes = message.payload.clone();
            let started = Instant::now();
            mpsc_echo.requests.send(bytes).await.unwrap();
            black_box(mpsc_echo.replies.recv().await.unwrap());
            via_mpsc.push(started.elapsed());
        }
        (via_bus, via_mpsc)
    });
    via_bus.sort_unstable();
    via_mpsc.sort_unstable();
    let (bus50, bus99) = (percentile(&via_bus, 50), percentile(&via_bus, 99));
    let (ch50, ch99) = (percentile(&via_mpsc, 50), percentile(&via_mpsc, 99));
    eprintln!(
        "host latency, {M} sequential local.echo round trips: host bus path p50 {:.1} µs, p99 {:.1} µs; \
         tokio mpsc baseline p50 {:.1} µs, p99 {:.1} µs; added latency p50 {:.1} µs, p99 {:.1} µs",
        micros(bus50),
        micros(bus99),
        micros(ch50),
        micros(ch99),
        micros(bus50.saturating_sub(ch50)),
        micros(bus99.saturating_sub(ch99)),
    );
}

/// For `entities` fresh entities: `initialization_complete` (initializing -> healthy) then
/// `shutdown_requested` (healthy -> shutdown). Neither state emits intents, so no workflow runs.
fn reducer_events(entities: usize) -> Vec<Envelope> {
    let mut out = Vec::with_capacity(entities * 2);
    for _ in 0..entities {
        let key = format!("e-{}", NEXT_ENTITY.fetch_add(1, Ordering::Relaxed));
        for event in ["initialization_complete", "shutdown_requested"] {
            let operation = format!("infrastructure_state.{event}");
            out.push(Envelope::request(new_uuid_v7(), operation, json!({ "entity_key": key }), now_utc()));
        }
    }
    out
}

/// Splits the events of whole entities (pairs) over `tasks` tasks, keeping each entity's order.
fn by_entity(events: Vec<Envelope>, tasks: usize) -> Vec<Vec<Envelope>> {
    let mut out: Vec<Vec<Envelope>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, event) in events.into_iter().enumerate() {
        out[(i / 2) % tasks].push(event);
    }
    out
}

fn reducer(c: &mut Criterion, fx: &Fixture) {
    let Fixture { runtime, host, .. } = fx;
    let mut group = c.benchmark_group("host_reducer_sqlite_128_transitions");
    group.throughput(Throughput::Elements((ENTITIES * 2) as u64));
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.bench_function("handle_sequential_1_task", |b| {
        let input = || by_entity(reducer_events(ENTITIES), 1);
        b.iter_custom(|iters| timed(runtime, iters, input, async |batches| handle_concurrently(host, batches).await))
    });
    group.bench_function("handle_concurrent_8_tasks", |b| {
        let input = || by_entity(reducer_events(ENTITIES), TASKS);
        b.iter_custom(|iters| timed(runtime, iters, input, async |batches| handle_concurrently(host, batches).await))
    });
    group.finish();
}

fn fresh_commits(n: usize) -> Vec<TransitionCommit> {
    reducer_events(n)
        .into_iter()
        .step_by(2)
        .map(|event| {
            let reply = event.reply_ok(new_uuid_v7(), json!({ "to_state": "healthy", "version": 1 }), now_utc());
            TransitionCommit {
                envelope_id: event.envelope_id,
                fsm: "infrastructure_state".into(),
                entity_key: event.payload["entity_key"].as_str().unwrap().to_owned(),
                expected_version: None,
                state: "healthy".into(),
                outbox: Vec::new(),
                reply: serde_json::to_value(&reply).unwrap(),
            }
        })
        .collect()
}

fn store(c: &mut Criterion, runtime: &Runtime, dir: &Path) {
    let store = runtime.block_on(SqliteStateStore::open(&dir.join("bench-store.db"))).unwrap();
    let mut group = c.benchmark_group("sqlite_state_store_256_fresh_commits");
    group.throughput(Throughput::Elements(COMMITS as u64));
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.bench_function("commit_transition_one_at_a_time", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                iters,
                || fresh_commits(COMMITS),
                async |commits| {
                    for commit in commits {
                        assert!(matches!(store.commit_transition(commit).await, Ok(CommitOutcome::Committed { .. })));
                    }
                },
            )
        })
    });
    group.bench_function("commit_transitions_batches_of_64", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                iters,
                || fresh_commits(COMMITS),
                async |commits| {
                    for batch in split(commits, COMMITS / BATCH) {
                        let outcomes = store.commit_transitions(batch).await.unwrap();
                        assert!(outcomes.iter().all(|o| matches!(o, Ok(CommitOutcome::Committed { .. }))));
                    }
                },
            )
        })
    });
    group.finish();
    runtime.block_on(store.pool().close());
}

fn bench(c: &mut Criterion) {
    let mut fx = fixture();
    latency(&mut fx);
    echo(c, &mut fx);
    reducer(c, &fx);
    store(c, &fx.runtime, &fx.dir);
    let Fixture { runtime, running, dir, replies, .. } = fx;
    drop(replies);
    let report = runtime.block_on(running.shutdown(Duration::from_secs(5)));
    assert!(report.handler_failures.is_empty(), "{report:?}");
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
