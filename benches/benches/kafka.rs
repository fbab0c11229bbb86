//! Kafka end to end through the host against a raw rdkafka consume -> produce pipe with no host,
//! on the same broker in the same run: the same requests, the same window of requests in
//! flight, throughput and latency (publish of a request to receipt of its answer). Then the
//! host's throughput with 1, 2 and 3 hosts in one group (in process, one machine). The pipe and
//! one host alternate for [`ROUNDS`] rounds, and the median round's ratio is reported.
//!
//! The broker is `ONEX_KAFKA_BOOTSTRAP` (else the one `cargo xtask services up` starts, read
//! from `target/onex-services.env`, else 127.0.0.1:9092). Run with
//! `cargo bench -p onex-benches --bench kafka`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onex_core::contract::BusKind;
use onex_core::envelope::Envelope;
use onex_infra::bus::{KafkaEventBus, KafkaSettings};
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::to_message;
use onex_infra::host::{HostSetup, RunningHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::EventBus;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::json;
use tokio::sync::Semaphore;

const REQUESTS: usize = 2_000;
/// Requests in flight at most (tansu reads a partition's whole backlog per fetch).
const WINDOW: usize = 200;
const PARTITIONS: u32 = 4;

fn bootstrap() -> String {
    if let Ok(addr) = std::env::var("ONEX_KAFKA_BOOTSTRAP") {
        return addr;
    }
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/onex-services.env");
    let text = std::fs::read_to_string(env).unwrap_or_default();
    let found = text.lines().find_map(|l| l.strip_prefix("ONEX_KAFKA_BOOTSTRAP=")).map(str::to_owned);
    found.unwrap_or_else(|| "127.0.0.1:9092".to_owned())
}

/// One run's topics and group.
struct Names {
    request: String,
    reply: String,
    group: String,
}

fn names(label: &str) -> Names {
    let id = new_uuid_v7().simple();
    Names {
        request: format!("onex.cmd.bench-{label}-{id}.envelope.v1"),
        reply: format!("onex.evt.bench-{label}-{id}.reply.v1"),
        group: format!("bench-{label}-{id}"),
    }
}

async fn client(names: &Names) -> KafkaEventBus {
    let text = format!("bus:\n  kind: kafka\n  bootstrap_servers: {}\n  partitions: {PARTITIONS}\n", bootstrap());
    let bus = onex_core::contract::load_runtime_config("bench.yaml", text.as_bytes()).unwrap().value.bus;
    let settings = KafkaSettings::resolve(&bus, &EnvSecretStore).await.unwrap();
    KafkaEventBus::connect(settings, &[names.request.clone(), names.reply.clone()]).await.unwrap()
}

/// Sends `REQUESTS` requests keyed over 64 entities, at most `WINDOW` unanswered, and reads the
/// answers; returns (elapsed, latencies). `answer_of` names the request an answer is for.
async fn drive(names: &Names, answer_of: fn(&[u8]) -> Option<String>) -> (Duration, Vec<Duration>) {
    let bus = Arc::new(client(names).await);
    let mut answers =
        bus.subscribe(&format!("{}-client", names.group), std::slice::from_ref(&names.reply)).await.unwrap();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // One permit per request that may be unanswered; an answer gives its permit back.
    let window = Arc::new(Semaphore::new(WINDOW));
    let started = Instant::now();
    let publisher = {
        let (bus, sent, window, topic) =
            (Arc::clone(&bus), Arc::clone(&sent), Arc::clone(&window), names.request.clone());
        tokio::spawn(async move {
            for n in 0..REQUESTS {
                window.acquire().await.unwrap().forget();
                let request = Envelope::request(new_uuid_v7(), "local.echo", json!({"n": n}), now_utc());
                sent.lock().unwrap().insert(request.envelope_id.to_string(), Instant::now());
                bus.publish(to_message(topic.as_str(), Some(format!("entity-{}", n % 64)), &request)).await.unwrap();
            }
        })
    };
    let mut latencies = Vec::with_capacity(REQUESTS);
    while latencies.len() < REQUESTS {
        let message = std::future::poll_fn(|cx| answers.as_mut().poll_next(cx)).await.unwrap().unwrap();
        let Some(id) = answer_of(&message.payload) else { continue };
        if let Some(at) = sent.lock().unwrap().remove(&id) {
            latencies.push(at.elapsed());
            window.add_permits(1);
        }
    }
    let elapsed = started.elapsed();
    publisher.await.unwrap();
    latencies.sort();
    (elapsed, latencies)
}

/// The raw pipe: one rdkafka consumer per partition-lane copying each request to the answer
/// topic (delivery report awaited, offset stored after), nothing else.
async fn raw_pipe(names: &Names) -> (Duration, Vec<Duration>) {
    let lanes: Vec<_> = (0..PARTITIONS)
        .map(|_| {
            let consumer: StreamConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("group.id", &names.group)
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("partition.assignment.strategy", "cooperative-sticky")
                .create()
                .unwrap();
            consumer.subscribe(&[&names.request]).unwrap();
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .create()
                .unwrap();
            let reply = names.reply.clone();
            tokio::spawn(async move {
                loop {
                    // librdkafka reports errors it recovers from itself (a broker busy): go on.
                    let Ok(message) = consumer.recv().await else { continue };
                    let payload = message.payload().unwrap_or_default();
                    let record = FutureRecord::to(&reply).payload(payload).key(message.key().unwrap_or_default());
                    if producer.send(record, Timeout::Never).await.is_ok() {
                        let _ = consumer.store_offset_from_message(&message);
                    }
                }
            })
        })
        .collect();
    // The pipe copies requests as they are: the answer is the request itself.
    let result =
        drive(names, |payload| Some(serde_json::from_slice::<Envelope>(payload).ok()?.envelope_id.to_string())).await;
    for lane in lanes {
        lane.abort();
    }
    result
}

async fn hosts(names: &Names, count: usize) -> (Duration, Vec<Duration>) {
    let mut running: Vec<RunningHost> = Vec::new();
    for i in 0..count {
        let registry = Registry::with_builtin_handlers().unwrap();
        let set = load_bundled_contracts(&registry).set.unwrap();
        let mut config = set.runtime.clone().unwrap().1;
        config.bus.kind = BusKind::Kafka;
        config.bus.bootstrap_servers = Some(bootstrap());
        config.bus.partitions = PARTITIONS;
        (config.bus.request_topic, config.bus.reply_topic, config.bus.group_id) =
            (names.request.clone(), names.reply.clone(), names.group.clone());
        let data_dir = std::env::temp_dir().join(format!("onex-bench-kafka-{}-{i}", names.group));
        let setup = HostSetup {
            config,
            contracts: set,
            registry,
            data_dir,
            secrets: Arc::new(EnvSecretStore),
            contracts_dir: None,
        };
        running.push(start(setup).await.unwrap());
    }
    let result =
        drive(names, |payload| Some(serde_json::from_slice::<Envelope>(payload).ok()?.causation_id?.to_string())).await;
    for host in running {
        host.shutdown(Duration::from_secs(5)).await;
    }
    result
}

fn line(what: &str, (elapsed, latencies): &(Duration, Vec<Duration>)) -> f64 {
    let rate = REQUESTS as f64 / elapsed.as_secs_f64();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "| {what} | {rate:.0}/s | {:.1} ms | {:.1} ms |",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
    rate
}

/// Rounds of pipe and one host, alternating: tansu's SQLite store grows with every run, so a
/// path measured only first or only last would be favoured; the ratio reported is the median
/// round's.
const ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!("{REQUESTS} requests, at most {WINDOW} in flight, {PARTITIONS} partitions, broker {}", bootstrap());
        println!("| path | throughput | p50 | p99 |\n|---|---|---|---|");
        let mut ratios = Vec::with_capacity(ROUNDS);
        for round in 1..=ROUNDS {
            let pipe = line(&format!("round {round}: raw rdkafka pipe (baseline)"), &raw_pipe(&names("pipe")).await);
            let one = line(&format!("round {round}: through 1 host"), &hosts(&names("host1"), 1).await);
            ratios.push(one / pipe);
        }
        line("through 2 hosts", &hosts(&names("host2"), 2).await);
        line("through 3 hosts", &hosts(&names("host3"), 3).await);
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        ratios.sort_by(f64::total_cmp);
        println!("host / pipe throughput by round: {}", each.join(", "));
        println!("host / pipe throughput, median round: {:.2} (target >= 0.7)", ratios[ROUNDS / 2]);
    });
}
