//! The runtime host end to end on the bundled contracts: `local.echo` round trips through the
//! in-memory bus and the consumer, next to a bare tokio mpsc echo carrying the same bytes (the
//! baseline) and to `RuntimeHost::handle` called directly (no bus); reducer transitions with
//! SQLite persistence, sequential and concurrent; and the SQLite state store's single vs batched
//! commits. Latency percentiles and the targets of the bus path are `bus_path`'s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use host_support::{Fixture, MpscEcho, bus_round_trips, echo_envelope, fixture, timed};
use onex_core::envelope::Envelope;
use onex_infra::host::RuntimeHost;
use onex_infra::host::wire::to_message;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::stores::SqliteStateStore;
use onex_spi::{CommitOutcome, OutboundMessage, StateStore, TransitionCommit};
use serde_json::json;
use tokio::runtime::Runtime;

mod host_support;

/// Round trips per measured iteration of the echo benchmarks.
const N: usize = 10_000;
/// Lanes of the concurrent variants (the host consumes with one lane per partition, 8).
const TASKS: usize = 8;
/// Entities per reducer iteration; each makes two transitions.
const ENTITIES: usize = 64;
/// Fresh-entity commits per store iteration, and the batch size of the batched variant.
const COMMITS: usize = 256;
const BATCH: usize = 64;

/// Entity keys never used before in this process, so every transition starts from scratch.
static NEXT_ENTITY: AtomicU64 = AtomicU64::new(0);

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
    let messages: Vec<OutboundMessage> =
        envelopes.iter().map(|e| to_message(fx.request_topic.as_str(), None, e)).collect();
    let payloads: Vec<Vec<u8>> = messages.iter().map(|m| m.payload.to_vec()).collect();
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
    let mut fx = fixture("host");
    echo(c, &mut fx);
    reducer(c, &fx);
    store(c, &fx.runtime, &fx.dir);
    fx.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
