//! What the Kafka end-to-end tests share: a run's own topics and group on the broker `services
//! up` started (or one of a test's own), a runtime config for host processes on them, and a
//! client that publishes requests and collects every reply and dead letter.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onex_core::contract::load_runtime_config;
use onex_core::envelope::Envelope;
use onex_e2e::TOGGLED_TOPIC;
use onex_infra::bus::{KafkaEventBus, KafkaSettings};
use onex_infra::host::wire::to_message;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, MessageStream};
use serde_json::Value as Json;
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// A tansu broker of a test's own (`ONEX_TANSU_BIN`, which `services up` names) on a free
/// loopback port, with a fresh SQLite store: tests that load a broker heavily, or stop it, do
/// not share one. Killed when dropped.
pub struct Broker {
    pub addr: String,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Broker {
    pub fn start(label: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its store on tmpfs when there is one: tansu syncs every write, and the tests stop the
        // broker process, not the machine.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            let dir = shm.join(format!("onex-tansu-{label}-{}", new_uuid_v7().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        } else {
            onex_e2e::scratch_dir(&format!("tansu-{label}"))
        };
        let mut broker = Self { addr: format!("127.0.0.1:{port}"), dir, child: None };
        broker.start_again();
        broker
    }

    /// Starts the broker (again) on the same port and store; waits until it answers.
    pub fn start_again(&mut self) {
        let bin = onex_e2e::service_setting("ONEX_TANSU_BIN", "tansu");
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::File::create(self.dir.join("tansu.log")).unwrap();
        let child = std::process::Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (is it installed? `cargo xtask services up`): {e}"));
        self.child = Some(child);
        onex_e2e::host::wait_for("the broker to answer", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&self.addr).ok()
        });
        self.index_headers();
    }

    /// Adds the index tansu 0.6's store lacks, as `services up` does to its broker
    /// (`xtask/src/services/tansu.rs` says why): without it every record fetched scans every
    /// header stored, and the broker slows down as the test's log grows.
    fn index_headers(&self) {
        let sql = include_str!("../../../xtask/src/services/tansu_header_index.sql");
        let status = std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000", "tansu.db", sql])
            .current_dir(&self.dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run sqlite3 (`cargo xtask services up` installs it): {e}"));
        assert!(status.success(), "indexing the broker's headers failed: {status}");
    }

    /// Kills the broker (its store stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One test run's names on a broker.
#[derive(Debug, Clone)]
pub struct KafkaRun {
    pub bootstrap: String,
    pub request_topic: String,
    pub reply_topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub partitions: u32,
}

impl KafkaRun {
    /// Fresh topics and group on `bootstrap` (else the broker `services up` started).
    pub fn new(label: &str, partitions: u32, bootstrap: Option<&str>) -> Self {
        let id = format!("{label}-{}", new_uuid_v7().simple());
        let bootstrap = bootstrap
            .map_or_else(|| onex_e2e::service_setting("ONEX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), str::to_owned);
        Self {
            bootstrap,
            request_topic: format!("onex.cmd.{id}.envelope.v1"),
            reply_topic: format!("onex.evt.{id}.reply.v1"),
            dlq_topic: format!("onex.dlq.{id}.envelope.v1"),
            group: format!("hosts-{id}"),
            partitions,
        }
    }

    /// A runtime config for hosts of this run: Kafka with a 15 s session (a killed host's
    /// partitions move within it; with 6 s, tansu on two cores answered heartbeats too late
    /// under load and the group rebalanced every few seconds), `lanes` group members per host,
    /// state on `store_url` (PostgreSQL).
    pub fn runtime_config(&self, store_url: &str, lanes: u32, max_attempts: u32) -> String {
        format!(
            r#"runtime_name: kafka-e2e
bus:
  kind: kafka
  bootstrap_servers: {bootstrap}
  group_id: {group}
  request_topic: {request}
  reply_topic: {reply}
  dlq_topic: {dlq}
  partitions: {partitions}
  lanes: {lanes}
  kafka:
    session.timeout.ms: "15000"
    heartbeat.interval.ms: "1000"
    auto.commit.interval.ms: "1000"
delivery:
  max_attempts: {max_attempts}
  backoff_ms: 20
  max_backoff_ms: 200
state_store:
  kind: postgres
  url: {store_url}
  max_connections: 8
handlers:
  local:
    enabled: true
"#,
            bootstrap = self.bootstrap,
            group = self.group,
            request = self.request_topic,
            reply = self.reply_topic,
            dlq = self.dlq_topic,
            partitions = self.partitions,
            lanes = lanes,
        )
    }

    fn bus_settings(&self) -> onex_core::contract::BusConfig {
        let text = format!(
            "bus:\n  kind: kafka\n  bootstrap_servers: {}\n  partitions: {}\n",
            self.bootstrap, self.partitions
        );
        load_runtime_config("client.yaml", text.as_bytes()).unwrap_or_else(|e| panic!("{e}")).value.bus
    }
}

/// What the client saw: per request id, the ids of the replies to it (more than one when a
/// request was delivered again) and of the `toggled` events the reducer's outbox published
/// for it (more than one when a row was published again), and the dead letters' request ids
/// with their error codes; and why a reader stopped, if one did.
#[derive(Debug, Default)]
pub struct Seen {
    pub replies: BTreeMap<String, Vec<String>>,
    pub failed_replies: BTreeSet<String>,
    pub dead: BTreeMap<String, String>,
    pub events: BTreeMap<String, Vec<String>>,
    /// A reader that stopped (a fatal consumer error, a message that is no envelope) says why
    /// here, so a wait that then times out is not read as the hosts' fault.
    pub stopped_readers: Vec<String>,
    /// Messages a reader was handed again at an offset it had read (its own group rebalanced
    /// before its commit): not recorded twice, since they are not a second reply.
    pub reread: usize,
}

/// Which of the run's topics a reader of the client reads.
#[derive(Debug, Clone, Copy)]
enum Feed {
    Replies,
    DeadLetters,
    /// [`TOGGLED_TOPIC`]: what the hosts' outbox relays published.
    Events,
}

/// A Kafka client of the hosts: publishes requests, collects replies and dead letters.
pub struct Client {
    pub runtime: Runtime,
    bus: Arc<KafkaEventBus>,
    pub run: KafkaRun,
    /// What the client saw, updated as replies and dead letters arrive (await a condition on it
    /// with [`Client::wait_until`]).
    pub seen: Arc<watch::Sender<Seen>>,
}

impl Client {
    /// Connects, creates the run's topics, and starts reading its reply, dead-letter and
    /// outbox event topics.
    pub fn connect(run: &KafkaRun) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let topics =
            [run.request_topic.clone(), run.reply_topic.clone(), run.dlq_topic.clone(), TOGGLED_TOPIC.to_owned()];
        let bus = runtime.block_on(async {
            let settings = KafkaSettings::resolve(&run.bus_settings(), &EnvSecretStore).await.unwrap();
            KafkaEventBus::connect(settings, &topics).await.unwrap_or_else(|e| panic!("{e}: is the broker up?"))
        });
        let bus = Arc::new(bus);
        let seen: Arc<watch::Sender<Seen>> = Arc::default();
        let feeds = [(&topics[1], Feed::Replies), (&topics[2], Feed::DeadLetters), (&topics[3], Feed::Events)];
        for (topic, feed) in feeds {
            let group = format!("client-{}", new_uuid_v7().simple());
            let stream = runtime.block_on(bus.subscribe(&group, std::slice::from_ref(topic))).unwrap();
            runtime.spawn(collect(Arc::clone(&bus), group, stream, Arc::clone(&seen), feed));
        }
        Self { runtime, bus, run: run.clone(), seen }
    }

    /// Publishes one request for `operation` keyed by `key`; returns its envelope id.
    pub fn send(&self, operation: &str, key: &str, payload: Json) -> String {
        let request = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
        let message = to_message(self.run.request_topic.as_str(), Some(key.to_owned()), &request);
        self.runtime.block_on(self.bus.publish(message)).unwrap();
        request.envelope_id.to_string()
    }

    /// Publishes `requests` (operation, key, payload): one key's requests in order, keys 16 at a
    /// time, never more than [`WINDOW`] ahead of the outcomes seen (tansu's SQLite engine reads a
    /// partition's whole backlog on every fetch, so a large backlog stalls it); returns the
    /// envelope ids in the order given.
    pub fn send_all(&self, requests: &[(String, String, Json)]) -> Vec<String> {
        let envelopes: Vec<(String, Envelope)> = requests
            .iter()
            .map(|(op, key, payload)| {
                (key.clone(), Envelope::request(new_uuid_v7(), op.clone(), payload.clone(), now_utc()))
            })
            .collect();
        let ids = envelopes.iter().map(|(_, e)| e.envelope_id.to_string()).collect();
        let mut lanes: Vec<Vec<(String, Envelope)>> = vec![Vec::new(); 16];
        for (key, envelope) in envelopes {
            let lane = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % lanes.len();
            lanes[lane].push((key, envelope));
        }
        let sent = Arc::new(AtomicUsize::new(0));
        self.runtime.block_on(async {
            let tasks: Vec<_> = lanes
                .into_iter()
                .map(|lane| {
                    let (bus, topic) = (Arc::clone(&self.bus), self.run.request_topic.clone());
                    let (mut changes, sent) = (self.seen.subscribe(), Arc::clone(&sent));
                    let before = outcomes(&self.seen.borrow());
                    tokio::spawn(async move {
                        for (key, envelope) in lane {
                            let room = |seen: &Seen| sent.load(Ordering::Relaxed) < outcomes(seen) - before + WINDOW;
                            // Bounded: hosts that answer nothing fail the run instead of hanging it.
                            if tokio::time::timeout(STALLED, changes.wait_for(room)).await.is_err() {
                                panic!("no outcome for {STALLED:?} with {WINDOW} requests in flight");
                            }
                            sent.fetch_add(1, Ordering::Relaxed);
                            bus.publish(to_message(topic.as_str(), Some(key), &envelope)).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        ids
    }

    /// Waits until every one of `requests` has a reply or a dead letter; after `within`, how
    /// many are missing, and the first of them (their ids, to look for in the hosts' logs).
    pub fn wait_for_outcomes(&self, requests: &[String], within: Duration) -> Result<(), String> {
        let unanswered = |seen: &Seen| {
            let answered = |r: &&String| seen.replies.contains_key(*r) || seen.dead.contains_key(*r);
            requests.iter().filter(|r| !answered(r)).cloned().collect::<Vec<_>>()
        };
        let missing = |seen: &Seen| {
            requests.iter().filter(|r| !seen.replies.contains_key(*r) && !seen.dead.contains_key(*r)).count()
        };
        self.wait_until(within, |seen| missing(seen) == 0).map_err(|()| {
            let missing = unanswered(&self.seen.borrow());
            let first: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
            format!(
                "{} of {} requests have no outcome after {within:?}; the first: {}; stopped readers: {:?}",
                missing.len(),
                requests.len(),
                first.join(", "),
                self.seen.borrow().stopped_readers
            )
        })
    }

    /// Waits until every one of `requests` has its outbox event; after `within`, how many are
    /// missing.
    pub fn wait_for_events(&self, requests: &[String], within: Duration) -> Result<(), String> {
        let missing = |seen: &Seen| requests.iter().filter(|r| !seen.events.contains_key(*r)).count();
        self.wait_until(within, |seen| missing(seen) == 0).map_err(|()| {
            let seen = self.seen.borrow();
            let some: Vec<&String> = requests.iter().filter(|r| !seen.events.contains_key(*r)).take(5).collect();
            format!(
                "{} of {} requests have no outbox event after {within:?}, among them {some:?}",
                missing(&seen),
                requests.len()
            )
        })
    }

    /// Waits until `done` holds of what the client saw; `Err` after `within`.
    pub fn wait_until(&self, within: Duration, done: impl FnMut(&Seen) -> bool) -> Result<(), ()> {
        let mut changes = self.seen.subscribe();
        // The timer is made inside the runtime: it needs the runtime's clock.
        let waited =
            self.runtime.block_on(async { tokio::time::timeout(within, changes.wait_for(done)).await.is_ok() });
        if waited { Ok(()) } else { Err(()) }
    }
}

/// Requests published and not yet answered that [`Client::send_all`] allows.
pub const WINDOW: usize = 400;

/// How long a publisher waits for room in its window before it gives the run up.
const STALLED: Duration = Duration::from_secs(300);

/// Replies and dead letters seen so far.
fn outcomes(seen: &Seen) -> usize {
    seen.replies.len() + seen.dead.len()
}

async fn collect(
    bus: Arc<KafkaEventBus>,
    group: String,
    mut stream: MessageStream,
    seen: Arc<watch::Sender<Seen>>,
    feed: Feed,
) {
    let stopped = |why: String| seen.send_modify(|seen| seen.stopped_readers.push(format!("{feed:?}: {why}")));
    // The reader's own at-least-once: what it is handed again at an offset it read is the same
    // message, and a request answered twice means two reply messages in the topic.
    let mut read: HashSet<(u32, u64)> = HashSet::new();
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let message = match item {
            Ok(message) => message,
            Err(e) => return stopped(format!("consumer error: {e}")),
        };
        let envelope: Envelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(e) => return stopped(format!("{}@{}: not an envelope: {e}", message.partition, message.offset)),
        };
        let id = envelope.envelope_id.to_string();
        let request = envelope.causation_id.map(|c| c.to_string()).unwrap_or_default();
        if !read.insert((message.partition, message.offset)) {
            seen.send_modify(|seen| seen.reread += 1);
            let _ = bus.acknowledge(&group, &message).await;
            continue;
        }
        seen.send_modify(|seen| match feed {
            Feed::DeadLetters => {
                let code = message.headers.get("onex-error-code").map(str::to_owned).unwrap_or_default();
                seen.dead.insert(id, code);
            }
            Feed::Replies => {
                if envelope.success != Some(true) {
                    seen.failed_replies.insert(request.clone());
                }
                seen.replies.entry(request).or_default().push(id);
            }
            Feed::Events => seen.events.entry(request).or_default().push(id),
        });
        let _ = bus.acknowledge(&group, &message).await;
    }
    stopped("the stream ended".to_owned());
}

/// Holds until `probe` (a question to a process: `/health/ready`) returns true, asking every
/// 25 ms, or panics naming `what` after `within`.
pub fn eventually(what: &str, within: Duration, mut probe: impl FnMut() -> bool) {
    onex_e2e::host::wait_for(what, within, || probe().then_some(()));
}
