//! What the host benchmarks share: the host started on the bundled contracts (in-memory bus,
//! SQLite) with a reader of its replies, `local.echo` envelopes, a bus round trip, and the
//! baseline every bus figure is a ratio against: a bare tokio mpsc echo of the same bytes.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_core::envelope::Envelope;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::to_message;
use onex_infra::host::{HostSetup, RunningHost, RuntimeHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, InboundMessage, MessageStream, OutboundMessage};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The consumer group reading the host's replies.
pub const REPLY_GROUP: &str = "bench-replies";

pub struct Fixture {
    pub runtime: Runtime,
    pub running: RunningHost,
    pub host: Arc<RuntimeHost>,
    pub bus: Arc<dyn EventBus>,
    pub replies: MessageStream,
    pub request_topic: String,
    pub dir: PathBuf,
}

/// The host on the bundled contracts in a fresh data directory, on a two-worker runtime.
pub fn fixture(label: &str) -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("onex-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = Registry::with_builtin_handlers().unwrap();
    let contracts = load_bundled_contracts(&registry).set.expect("the bundled contracts validate");
    let config = contracts.runtime.as_ref().expect("a bundled runtime config").1.clone();
    let (request_topic, reply_topic) = (config.bus.request_topic.clone(), config.bus.reply_topic.clone());
    let setup = HostSetup {
        config,
        contracts,
        registry,
        data_dir: dir.clone(),
        secrets: Arc::new(EnvSecretStore),
        contracts_dir: None,
    };
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

impl Fixture {
    /// Stops the host and removes its data directory.
    pub fn finish(self) {
        let Self { runtime, running, dir, replies, .. } = self;
        drop(replies);
        let report = runtime.block_on(running.shutdown(Duration::from_secs(5)));
        assert!(report.handler_failures.is_empty(), "{report:?}");
        drop(runtime);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub fn echo_envelope(i: usize) -> Envelope {
    Envelope::request(new_uuid_v7(), "local.echo", json!({ "n": i }), now_utc())
}

/// `n` echo envelopes as messages to the host's request topic.
pub fn messages(fx: &Fixture, n: usize) -> Vec<OutboundMessage> {
    (0..n).map(|i| to_message(fx.request_topic.as_str(), None, &echo_envelope(i))).collect()
}

pub async fn next_reply(stream: &mut MessageStream) -> InboundMessage {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await.expect("the reply stream ended").unwrap()
}

/// Publishes `messages` from another task while reading (and acknowledging) as many replies.
pub async fn bus_round_trips(bus: &Arc<dyn EventBus>, replies: &mut MessageStream, messages: Vec<OutboundMessage>) {
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

/// One round trip: publishes `message` and reads (and acknowledges) its reply.
pub async fn bus_round_trip(bus: &Arc<dyn EventBus>, replies: &mut MessageStream, message: OutboundMessage) {
    bus.publish(message).await.unwrap();
    let reply = next_reply(replies).await;
    bus.acknowledge(REPLY_GROUP, &reply).await.unwrap();
    black_box(reply);
}

/// The baseline: requests into one channel, one task echoing them into a reply channel.
pub struct MpscEcho {
    requests: mpsc::Sender<Vec<u8>>,
    replies: mpsc::Receiver<Vec<u8>>,
}

impl MpscEcho {
    pub fn start(runtime: &Runtime) -> Self {
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

    /// `payloads` sent from another task while as many echoes are read.
    pub async fn round_trips(&mut self, payloads: Vec<Vec<u8>>) {
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

    /// One round trip of `payload`.
    pub async fn round_trip(&mut self, payload: Vec<u8>) {
        self.requests.send(payload).await.unwrap();
        black_box(self.replies.recv().await.unwrap());
    }
}

/// Runs `f(input())` `iters` times, timing only `f`.
pub fn timed<I>(runtime: &Runtime, iters: u64, input: impl Fn() -> I, mut f: impl AsyncFnMut(I)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = input();
        let started = Instant::now();
        runtime.block_on(f(input));
        total += started.elapsed();
    }
    total
}
