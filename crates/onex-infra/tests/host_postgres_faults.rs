//! PostgreSQL faults under load: 5,000 envelopes, half over HTTP (the admin API's router) and
//! half over the bus, while first every connection of the host is terminated and then the
//! server is stopped for 10 s and started again. Every envelope must end with exactly one final
//! reply, every reducer version must equal the transitions accepted for it, `/health/ready`
//! must say 503 while the database is down and 200 after, and the host must recover by itself.
//!
//! It stops the machine's PostgreSQL cluster (`pg_ctlcluster`), so it is the only test of its
//! binary; the cluster is started again however the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;
#[path = "common/fresh_postgres.rs"]
mod fresh_postgres;
#[path = "common/host.rs"]
mod host_support;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use onex_core::envelope::Envelope;
use onex_infra::admin::{AdminState, router};
use onex_infra::bus::InMemoryEventBus;
use onex_infra::host::start_with_bus;
use onex_infra::host::wire::to_message;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_spi::EventBus;
use serde_json::json;
use tokio::time::Instant;
use tower::ServiceExt;

use host_support::eventually;

/// One state, one event: every accepted `bump` adds one to the entity's version, whatever the
/// order the two paths deliver them in.
const COUNTER: &str = "name: test_counter_reducer
contract_version: '1.0.0'
node_version: '1.0.0'
node_type: REDUCER
state_machine:
  name: counter
  version: '1.0.0'
  states:
    - name: counting
      type: initial
  transitions:
    - from: counting
      to: counting
      event: bump
";

const ENVELOPES_PER_PATH: usize = 2_500;
const ENTITIES: usize = 50;
const HTTP_CLIENTS: usize = 8;
const REPLIES: &str = "onex.evt.runtime.reply.v1";
const DLQ: &str = "onex.dlq.runtime.envelope.v1";
const REQUESTS: &str = "onex.cmd.runtime.envelope.v1";

/// The machine's PostgreSQL cluster, started again when dropped.
struct Cluster {
    version: String,
}

impl Cluster {
    fn find() -> Self {
        let versions = std::fs::read_dir("/etc/postgresql")
            .expect("this test stops the machine's PostgreSQL cluster with pg_ctlcluster (/etc/postgresql)");
        let version = versions.flatten().filter_map(|e| e.file_name().into_string().ok()).max().expect("a cluster");
        Self { version }
    }

    fn ctl(&self, action: &str) {
        let status = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", action])
            .status()
            .unwrap_or_else(|e| panic!("cannot run pg_ctlcluster: {e}"));
        assert!(status.success(), "pg_ctlcluster {action} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Started again whatever happened; "already running" is the usual answer.
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn get(app: &Router, path: &str) -> StatusCode {
    app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap().status()
}

/// Posts `envelope` until its reply is final (anything but 503/504, which say "try again").
async fn post_until_final(app: &Router, envelope: &Envelope) -> Envelope {
    let body = serde_json::to_vec(envelope).unwrap();
    loop {
        let request = Request::post("/v1/envelopes").header("content-type", "application/json");
        let response = app.clone().oneshot(request.body(Body::from(body.clone())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::GATEWAY_TIMEOUT {
            return serde_json::from_slice(&bytes).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bump(entity: usize) -> Envelope {
    Envelope::request(new_uuid_v7(), "counter.bump", json!({"entity_key": format!("c-{entity}")}), now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_faults_under_load_lose_nothing_and_apply_nothing_twice() {
    let cluster = Cluster::find();
    let database = fresh_postgres::FreshPostgres::create("pg-faults").await;
    let runtime = format!(
        "runtime_name: pg-faults\nbus: {{partitions: 4}}\nstate_store: {{kind: postgres, url: '{}', max_connections: 8}}\n\
         delivery: {{max_attempts: 1000, backoff_ms: 50, max_backoff_ms: 500}}\nhandlers:\n  local: {{enabled: true}}\n",
        database.url
    );
    let files = [("runtime.yaml", runtime.as_str()), ("counter.yaml", COUNTER)];
    let setup = host_support::setup("pg-faults", &files, Registry::with_builtin_handlers().unwrap());
    let memory = InMemoryEventBus::new(4, 8_192);
    let bus: Arc<dyn EventBus> = Arc::new(memory.clone());
    let running = start_with_bus(setup, Arc::clone(&bus)).await.unwrap();
    let admin = AdminState::default();
    admin.set_host(Arc::clone(running.host()));
    let app = router(admin);
    assert_eq!(get(&app, "/health/ready").await, StatusCode::OK);

    // The load: bus messages published up front (in keyed order), HTTP clients posting theirs.
    let mut bus_sent = HashMap::new();
    for n in 0..ENVELOPES_PER_PATH {
        let envelope = bump(n % ENTITIES);
        let key = envelope.payload["entity_key"].as_str().unwrap().to_owned();
        bus_sent.insert(envelope.envelope_id, key.clone());
        memory.publish(to_message(REQUESTS, Some(key), &envelope)).await.unwrap();
    }
    let http_accepted = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let http_done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..HTTP_CLIENTS)
        .map(|client| {
            let (app, accepted, done) = (app.clone(), Arc::clone(&http_accepted), Arc::clone(&http_done));
            tokio::spawn(async move {
                for n in (client..ENVELOPES_PER_PATH).step_by(HTTP_CLIENTS) {
                    let envelope = bump(n % ENTITIES);
                    let reply = post_until_final(&app, &envelope).await;
                    assert_eq!(reply.causation_id, Some(envelope.envelope_id));
                    if reply.success == Some(true) {
                        let key = envelope.payload["entity_key"].as_str().unwrap().to_owned();
                        *accepted.lock().unwrap().entry(key).or_default() += 1;
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Fault 1: every connection of the host's database is killed mid-load.
    wait_until("a fifth of the HTTP load", || http_done.load(Ordering::SeqCst) >= ENVELOPES_PER_PATH / 5).await;
    let killer =
        sqlx::PgPool::connect(&common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
            .await
            .unwrap();
    let database_name = database.url.rsplit('/').next().unwrap().to_owned();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database_name)
    .fetch_all(&killer)
    .await
    .unwrap();
    killer.close().await;
    eprintln!("terminated {} connections of the host", killed.len());

    // Fault 2: the server is stopped for 10 s, then started again.
    wait_until("half the HTTP load", || http_done.load(Ordering::SeqCst) >= ENVELOPES_PER_PATH / 2).await;
    cluster.ctl("stop");
    let stopped = Instant::now();
    assert_eq!(get(&app, "/health/ready").await, StatusCode::SERVICE_UNAVAILABLE, "not ready without its database");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
    assert_eq!(get(&app, "/health/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    cluster.ctl("start");
    let ready = || async { (get(&app, "/health/ready").await == StatusCode::OK).then_some(()) };
    eventually("the host ready again after the database came back", Duration::from_secs(60), ready).await;

    for client in clients {
        client.await.unwrap();
    }
    // Every bus message gets exactly one reply; none is dead-lettered (the budget outlasts the
    // outage); the host acknowledges them all.
    let replies = host_support::read_topic(&memory, REPLIES, ENVELOPES_PER_PATH, Duration::from_secs(120)).await;
    let mut bus_accepted = HashMap::<String, u64>::new();
    let mut answered = HashSet::new();
    for reply in &replies {
        let reply: Envelope = serde_json::from_slice(&reply.payload).unwrap();
        let request = reply.causation_id.unwrap();
        assert!(answered.insert(request), "two replies for envelope {request}");
        let key = bus_sent.get(&request).unwrap_or_else(|| panic!("a reply to an envelope never sent: {request}"));
        assert_eq!(reply.success, Some(true), "{:?}", reply.error);
        *bus_accepted.entry(key.clone()).or_default() += 1;
    }
    assert_eq!(answered.len(), ENVELOPES_PER_PATH);
    assert_eq!(memory.backlog(&format!("reader-{REPLIES}"), REPLIES), 0, "no reply published twice");
    assert_eq!(memory.retained(DLQ), 0, "nothing dead-lettered");
    assert_eq!(memory.backlog("onex-runtime", REQUESTS), 0, "every message acknowledged");

    // Each entity's version is the number of transitions accepted for it, over both paths.
    let http_accepted = http_accepted.lock().unwrap().clone();
    let host = running.host();
    for entity in 0..ENTITIES {
        let key = format!("c-{entity}");
        let accepted = http_accepted.get(&key).copied().unwrap_or(0) + bus_accepted.get(&key).copied().unwrap_or(0);
        let (_, version) = host.entity_state("counter", &key).await.unwrap().unwrap();
        assert_eq!(version, accepted, "{key}: version vs accepted transitions");
    }
    let total: u64 = http_accepted.values().sum::<u64>() + bus_accepted.values().sum::<u64>();
    eprintln!("accepted {total} of {} transitions", 2 * ENVELOPES_PER_PATH);
    running.shutdown(Duration::from_secs(5)).await;
    database.drop().await;
    drop(cluster);
}

/// Waits (at most two minutes) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    eventually(what, Duration::from_secs(120), || async { done().then_some(()) }).await;
}
