//! Host processes on Kafka (a tansu broker of each test's own) with reducer state and outbox on
//! PostgreSQL, under faults: 10,000 envelopes with exact replies and versions, a poison message
//! dead-lettered after its budget while its partition moves on, a host SIGKILLed five times in
//! 10,000 envelopes and restarted, three hosts in one group with one killed under load, and the
//! broker stopped for ten seconds mid-run. Every transition also emits an outbox event to Kafka,
//! and each must arrive, once per envelope id, with its row marked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod kafka_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::sync::Arc;

use kafka_support::{Broker, Client, KafkaRun, eventually};
use onex_e2e::host::{HostOptions, HostProcess};
use onex_e2e::postgres::Database;
use onex_e2e::{TOGGLE_REDUCER, contracts_with, scratch_dir};
use serde_json::{Value as Json, json};

/// How long the broker stays down in the outage test.
const OUTAGE: Duration = Duration::from_secs(10);

/// One test at a time: each loads a broker of its own and host processes onto two cores, and
/// its waits are sized for the machine to itself.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `entities` toggles, `per_entity` events each (flip, flop, …), keyed by entity.
fn toggles(entities: usize, per_entity: usize) -> Vec<(String, String, Json)> {
    let mut out = Vec::with_capacity(entities * per_entity);
    for n in 0..per_entity {
        for entity in 0..entities {
            let event = if n % 2 == 0 { "toggle.flip" } else { "toggle.flop" };
            let key = format!("e-{entity}");
            out.push((event.to_owned(), key.clone(), json!({"entity_key": key})));
        }
    }
    out
}

/// One test's world. Fields drop in this order: the client before the broker it talks to.
struct Rig {
    client: Arc<Client>,
    broker: Broker,
    database: Database,
    /// Host processes on the run's topics and database, with the toggle reducer.
    options: HostOptions,
}

impl Rig {
    /// A fresh database and broker, a run of `partitions` on it, its client, and options for
    /// `hosts` hosts in one group, whose delivery budget is `max_attempts`. The hosts' lanes
    /// make one group member per partition in all (12 in the three-host test, not 36): every
    /// member is a consumer tansu serves fetches and heartbeats for, on the same two cores.
    fn new(label: &str, partitions: u32, hosts: u32, max_attempts: u32) -> Self {
        let database = Database::create(label);
        let broker = Broker::start(label);
        let run = KafkaRun::new(label, partitions, Some(&broker.addr));
        let client = Arc::new(Client::connect(&run));
        let config = run.runtime_config(&database.url, (partitions / hosts).max(1), max_attempts);
        let files = [("reducers/toggle.yaml", TOGGLE_REDUCER), ("runtime/runtime_config.yaml", &config)];
        let options = HostOptions::new(&contracts_with(label, &files), &scratch_dir(label));
        Self { client, broker, database, options }
    }

    /// Publishes `requests` from a thread of its own; join it for their ids.
    fn publish_in_background(&self, requests: Vec<(String, String, Json)>) -> std::thread::JoinHandle<Vec<String>> {
        let client = Arc::clone(&self.client);
        std::thread::spawn(move || client.send_all(&requests))
    }

    /// After a run: the outbox is drained, every request is clean ([`assert_clean`]), and every
    /// entity is at version `per_entity` as `host` reports it.
    fn assert_landed(&self, requests: &[String], host: &HostProcess, entities: usize, per_entity: usize) {
        self.assert_outbox_drained(requests.len());
        assert_clean(&self.client, requests);
        assert_versions(host, entities, per_entity);
    }

    /// Every outbox row is marked published, and there is one per transition.
    fn assert_outbox_drained(&self, transitions: usize) {
        eventually("the outbox to be marked published", Duration::from_secs(60), || {
            self.database.count("SELECT COUNT(*) FROM onex_outbox WHERE published_at IS NULL") == 0
        });
        assert_eq!(self.database.count("SELECT COUNT(*) FROM onex_outbox"), transitions as u64);
    }
}

/// Every entity is at version `per_entity`, in state `off`, as `host` reports it.
fn assert_versions(host: &HostProcess, entities: usize, per_entity: usize) {
    for entity in 0..entities {
        let (status, state) = host.get_json(&format!("/v1/state/toggle/e-{entity}"));
        assert_eq!(status, 200, "{state}");
        assert_eq!(state["version"], per_entity as u64, "e-{entity}: {state}");
    }
}

/// No request got a failed reply or a dead letter; every request answered more than once got
/// the same reply envelope each time; every request's transition published its outbox event on
/// Kafka, and a row published again carried the same event envelope.
fn assert_clean(client: &Client, requests: &[String]) {
    client.wait_for_events(requests, Duration::from_secs(120)).unwrap();
    let seen = client.seen.borrow();
    assert!(seen.failed_replies.is_empty(), "failed: {:?}", seen.failed_replies.iter().take(5).collect::<Vec<_>>());
    assert!(seen.dead.is_empty(), "dead letters: {:?}", seen.dead.iter().take(5).collect::<Vec<_>>());
    let mut redelivered = 0;
    for request in requests {
        let ids: BTreeSet<&String> = seen.replies[request].iter().collect();
        assert_eq!(ids.len(), 1, "request {request} got different replies: {ids:?}");
        redelivered += usize::from(seen.replies[request].len() > 1);
        let events: BTreeSet<&String> = seen.events[request].iter().collect();
        assert_eq!(events.len(), 1, "request {request} led to different events: {events:?}");
    }
    eprintln!(
        "{redelivered} of {} requests were answered more than once, each time with the same reply",
        requests.len()
    );
}

#[test]
fn ten_thousand_envelopes_get_exact_replies_and_a_poison_message_is_dead_lettered_after_its_budget() {
    let _serial = one_at_a_time();
    let (entities, per_entity): (usize, usize) = std::env::var("ONEX_TEST_KAFKA_SIZE")
        .ok()
        .and_then(|s| Some((s.split_once('x')?.0.parse().ok()?, s.split_once('x')?.1.parse().ok()?)))
        .unwrap_or((500, 20));
    let rig = Rig::new("kafka-10k", 4, 1, 3);
    let client = &rig.client;
    let host = HostProcess::start(&rig.options);

    // A poison message on e-0's partition first: tried 3 times, then dead-lettered; e-0's
    // events behind it go on.
    let poison = client.send("local.fail", "e-0", json!({"code": "ONEX_INFRA_032_KAFKA_UNAVAILABLE"}));
    let started = Instant::now();
    let requests = client.send_all(&toggles(entities, per_entity));
    client.wait_for_outcomes(&requests, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}\n{}", host.logs()));
    eprintln!("{} envelopes through Kafka and one host took {:?}", requests.len(), started.elapsed());
    client.wait_for_outcomes(std::slice::from_ref(&poison), Duration::from_secs(60)).unwrap();
    client.seen.send_modify(|seen| {
        assert_eq!(seen.dead.remove(&poison).as_deref(), Some("ONEX_INFRA_032_KAFKA_UNAVAILABLE"));
        seen.failed_replies.remove(&poison);
        assert_eq!(seen.replies.len(), entities * per_entity + 1, "a reply for each request and no other");
    });
    // Delivery is at least once: a reply may stand twice in the topic (a revoked partition's
    // commit that failed, a publish tried again), always as the same reply envelope, which
    // `assert_clean` checks. What explains any is printed with the figures.
    eprintln!(
        "the host consumed {:?} messages, tried {:?} bus calls again, took part in {:?} rebalances; \
         the client read {} messages again",
        host.metric("onex_bus_consumed_total"),
        host.metric("onex_bus_retries_total"),
        host.metric("onex_bus_rebalances_total"),
        client.seen.borrow().reread
    );
    rig.assert_landed(&requests, &host, entities, per_entity);
    assert_eq!(host.metric("onex_dlq_total"), Some(1.0));
}

#[test]
fn a_host_killed_five_times_and_restarted_loses_nothing_and_applies_each_transition_once() {
    let _serial = one_at_a_time();
    const ENTITIES: usize = 500;
    const PER_ENTITY: usize = 20;
    let rig = Rig::new("kafka-kill", 4, 1, 5);
    let (client, options) = (&rig.client, &rig.options);
    let mut host = HostProcess::start(options);
    let publisher = rig.publish_in_background(toggles(ENTITIES, PER_ENTITY));
    let total = ENTITIES * PER_ENTITY;
    // Kill points spread over the run, at a different place each run.
    let jitter = (std::process::id() as usize * 7919) % (total / 10);
    for kill in 0..5 {
        let at = (kill + 1) * total / 7 + jitter;
        client
            .wait_until(Duration::from_secs(300), |seen| seen.replies.len() >= at)
            .unwrap_or_else(|()| panic!("no {at} replies before kill {kill}\n{}", host.logs()));
        host.signal("KILL");
        assert!(host.wait_exit(Duration::from_secs(10)).is_some(), "the host did not die");
        eprintln!("killed the host after {} replies", client.seen.borrow().replies.len());
        host = HostProcess::start(options);
    }
    let requests = publisher.join().unwrap();
    client.wait_for_outcomes(&requests, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}\n{}", host.logs()));
    rig.assert_landed(&requests, &host, ENTITIES, PER_ENTITY);
}

#[test]
fn three_hosts_share_twelve_partitions_and_one_killed_under_load_loses_nothing() {
    let _serial = one_at_a_time();
    const ENTITIES: usize = 240;
    const PER_ENTITY: usize = 20;
    let rig = Rig::new("kafka-three", 12, 3, 5);
    let client = &rig.client;
    let mut hosts: Vec<HostProcess> = (0..3).map(|_| HostProcess::start(&rig.options)).collect();
    // Published from a thread of its own, so the kill comes a third of the way through the run,
    // with most of the requests still to come, not after the last one is sent.
    let publisher = rig.publish_in_background(toggles(ENTITIES, PER_ENTITY));
    client
        .wait_until(Duration::from_secs(300), |seen| seen.replies.len() >= ENTITIES * PER_ENTITY / 3)
        .unwrap_or_else(|()| panic!("not a third of the replies\n{}", bus_report(&hosts)));
    let killed = hosts.remove(1);
    killed.signal("KILL");
    drop(killed);
    let at = Instant::now();
    eprintln!("killed host 1 after {} replies", client.seen.borrow().replies.len());
    let requests = publisher.join().unwrap();
    client
        .wait_for_outcomes(&requests, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}\n{}", bus_report(&hosts)));
    eprintln!("the rest of the run after the kill took {:?}", at.elapsed());
    rig.assert_landed(&requests, &hosts[0], ENTITIES, PER_ENTITY);
    let consumed: f64 = hosts.iter().map(|h| h.metric("onex_bus_consumed_total").unwrap_or(0.0)).sum();
    assert!(
        consumed > 0.0 && hosts.iter().all(|h| h.metric("onex_bus_consumed_total").unwrap_or(0.0) > 0.0),
        "both surviving hosts consumed"
    );
}

/// What each host says of its partitions (rebalances, lag per partition, messages consumed)
/// and its log, for a failure message: whether a dead member's partitions moved shows here.
fn bus_report(hosts: &[HostProcess]) -> String {
    let report = |(i, host): (usize, &HostProcess)| {
        let (_, metrics) = host.get("/metrics");
        let bus: Vec<&str> = metrics.lines().filter(|l| l.starts_with("onex_bus_")).collect();
        format!("host {i}, /metrics:\n{}\nhost {i}, log:\n{}", bus.join("\n"), host.logs())
    };
    hosts.iter().enumerate().map(report).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_broker_stopped_for_ten_seconds_mid_run_is_ridden_out_without_losing_anything() {
    let _serial = one_at_a_time();
    const ENTITIES: usize = 100;
    const PER_ENTITY: usize = 20;
    let mut rig = Rig::new("kafka-broker", 4, 1, 5);
    let client = Arc::clone(&rig.client);
    let host = HostProcess::start(&rig.options);
    let ready = || host.get("/health/ready").0;
    assert_eq!(ready(), 200);

    let publisher = rig.publish_in_background(toggles(ENTITIES, PER_ENTITY));
    client
        .wait_until(Duration::from_secs(300), |seen| seen.replies.len() >= ENTITIES * PER_ENTITY / 3)
        .unwrap_or_else(|()| panic!("not a third of the replies\n{}", host.logs()));
    rig.broker.kill();
    let stopped = Instant::now();
    eventually("/health/ready to say 503", Duration::from_secs(20), || ready() == 503);
    // Not a wait for a condition: the fault itself, the broker down for OUTAGE from its stop,
    // whatever the host does meanwhile.
    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    rig.broker.start_again();
    eventually("/health/ready to say 200 again", Duration::from_secs(60), || ready() == 200);

    let requests = publisher.join().unwrap();
    client.wait_for_outcomes(&requests, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}\n{}", host.logs()));
    rig.assert_landed(&requests, &host, ENTITIES, PER_ENTITY);
}
