//! `StateStore` behaviour, one suite run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "state_store/batch.rs"]
mod batch;
mod common;
#[path = "state_store/concurrency.rs"]
mod concurrency;
#[path = "common/fresh_postgres.rs"]
mod fresh_postgres;
#[path = "common/host.rs"]
mod host_support;
#[path = "state_store/inspect.rs"]
mod inspect;
#[path = "state_store/leases.rs"]
mod leases;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use onex_core::envelope::ReplyError;
use onex_core::error::ErrorCategory;
use onex_core::workflow::{JournalEntry, StepOutcome};
use onex_infra::error::codes;
use onex_infra::stores::{PostgresStateStore, SqliteStateStore};
use onex_spi::{
    CommitOutcome, EntityState, HeaderMap, Lease, OutboundMessage, OutboxEntry, OutboxStore, RunRecord, RunStore,
    RunsToTake, StateStore, TransitionCommit,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

/// Names and ids that no other run of these tests uses: every fsm name and topic starts with
/// `prefix`, every envelope and run id lies in `base ..= base | 0xFFFF_FFFF`.
struct Scope {
    prefix: String,
    base: u128,
}

impl Scope {
    fn new(label: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let pid = std::process::id();
        let base = (u128::from(pid) << 96) | (u128::from(nanos as u64) << 32);
        Self { prefix: format!("state-test-{label}-{pid}-{nanos}"), base }
    }

    fn fsm(&self, name: &str) -> String {
        format!("{}.fsm.{name}", self.prefix)
    }

    fn topic(&self, name: &str) -> String {
        format!("{}.topic.{name}", self.prefix)
    }

    fn id(&self, n: u32) -> Uuid {
        Uuid::from_u128(self.base | u128::from(n))
    }

    fn id_range(&self) -> (String, String) {
        (Uuid::from_u128(self.base).to_string(), Uuid::from_u128(self.base | 0xFFFF_FFFF).to_string())
    }
}

fn message(topic: &str, key: Option<&str>, n: u32) -> OutboundMessage {
    OutboundMessage {
        topic: topic.into(),
        key: key.map(str::to_owned),
        // Not UTF-8, with a NUL: the payload column must keep bytes as they are.
        payload: vec![0, 0xff, 0xfe, b'{', (n % 256) as u8].into(),
        headers: Arc::new(HeaderMap::from([
            ("onex-envelope-id", format!("envelope-{n}")),
            ("note", "héllo \"quoted\" ✓".to_owned()),
        ])),
    }
}

fn commit(
    envelope_id: Uuid,
    fsm: &str,
    key: &str,
    expected_version: Option<u64>,
    state: &str,
    outbox: Vec<OutboundMessage>,
) -> TransitionCommit {
    TransitionCommit {
        envelope_id,
        fsm: fsm.to_owned(),
        entity_key: key.to_owned(),
        expected_version,
        state: state.to_owned(),
        outbox,
        reply: reply_of(envelope_id, state),
    }
}

/// The reply `commit` stores with a transition: names its envelope and new state, with text
/// and numbers that must come back as they went in.
fn reply_of(envelope_id: Uuid, state: &str) -> Json {
    json!({"envelope_id": envelope_id.to_string(), "to_state": state, "note": "héllo ✓ \"q\"", "n": [1, 0.5, null]})
}

fn entity(fsm: &str, key: &str, state: &str, version: u64) -> Option<EntityState> {
    Some(EntityState { fsm: fsm.to_owned(), entity_key: key.to_owned(), state: state.to_owned(), version })
}

/// The pending outbox entries on `topic`, oldest first (other tests may have entries pending
/// on other topics).
async fn pending_on(store: &dyn StateStore, topic: &str) -> Vec<OutboxEntry> {
    let all = store.pending_outbox(u32::MAX).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "pending entries must come oldest first");
    all.into_iter().filter(|e| *e.message.topic == *topic).collect()
}

fn messages(entries: &[OutboxEntry]) -> Vec<OutboundMessage> {
    entries.iter().map(|e| e.message.clone()).collect()
}

/// The runs among `ids` still running.
async fn unfinished_among(store: &dyn StateStore, ids: &[Uuid]) -> Vec<Uuid> {
    let mut mine = Vec::new();
    for id in ids {
        if store.run(*id).await.unwrap().is_some_and(|r| r.status == "running") {
            mine.push(*id);
        }
    }
    mine.sort();
    mine
}

/// A lease of `owner` lasting `ms`.
fn lease(owner: &str, ms: u64) -> Lease {
    Lease { owner: owner.to_owned(), duration: std::time::Duration::from_millis(ms) }
}

/// The behaviour every `StateStore` must have; `scope` names what no other test uses.
async fn state_store_suite(store: &dyn StateStore, scope: &Scope) {
    versions_and_conflicts(store, scope).await;
    duplicates_and_replies(store, scope).await;
    outbox_order_and_publishing(store, scope).await;
    runs_and_journals(store, scope).await;
    inspect::counts_and_recent_runs(store, scope).await;
}

async fn versions_and_conflicts(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("order"), scope.topic("order"));
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), None);

    let created = commit(scope.id(1), &fsm, "o-1", None, "created", vec![message(&topic, Some("o-1"), 1)]);
    assert_eq!(store.commit_transition(created).await.unwrap(), CommitOutcome::Committed { version: 1 });
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "created", 1));

    let paid = commit(scope.id(2), &fsm, "o-1", Some(1), "paid", vec![message(&topic, Some("o-1"), 2)]);
    assert_eq!(store.commit_transition(paid).await.unwrap(), CommitOutcome::Committed { version: 2 });
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "paid", 2));
    let outbox_before = pending_on(store, &topic).await;
    assert_eq!(outbox_before.len(), 2);

    // A stale version, a "new" entity that exists and a version for an entity that does not:
    // each is a conflict naming the entity and both versions, and writes nothing.
    let stale = commit(scope.id(3), &fsm, "o-1", Some(1), "cancelled", vec![message(&topic, Some("o-1"), 3)]);
    let again_new = commit(scope.id(4), &fsm, "o-1", None, "created", vec![message(&topic, Some("o-1"), 4)]);
    let missing = commit(scope.id(5), &fsm, "o-missing", Some(1), "paid", vec![message(&topic, None, 5)]);
    for (refused, expected, found) in [(stale, "1", "2"), (again_new, "none", "2"), (missing, "1", "none")] {
        let envelope_id = refused.envelope_id;
        let key = refused.entity_key.clone();
        let error = store.commit_transition(refused).await.unwrap_err();
        assert_eq!(error.category(), ErrorCategory::Conflict, "{error}");
        assert_eq!(error.code(), codes::STATE_CONFLICT.as_str());
        assert!(!error.retryable());
        for part in [fsm.as_str(), &key, &format!("expected version {expected}"), &format!("found {found}")] {
            assert!(error.message().contains(part), "{part:?} not in {:?}", error.message());
        }
        assert_eq!(store.processed_reply(envelope_id).await.unwrap(), None, "a refused envelope is not recorded");
    }
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "paid", 2));
    assert_eq!(store.load_state(&fsm, "o-missing").await.unwrap(), None);
    assert_eq!(pending_on(store, &topic).await, outbox_before, "a refused commit adds no outbox entries");

    // The refused envelope, retried against the current version, goes through.
    let retried = commit(scope.id(3), &fsm, "o-1", Some(2), "cancelled", vec![message(&topic, Some("o-1"), 3)]);
    assert_eq!(store.commit_transition(retried.clone()).await.unwrap(), CommitOutcome::Committed { version: 3 });
    assert_eq!(store.processed_reply(retried.envelope_id).await.unwrap(), Some(retried.reply));
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "cancelled", 3));

    // Entities are independent: the same key in another state machine starts at version 1.
    let other_fsm = scope.fsm("invoice");
    let other = commit(scope.id(6), &other_fsm, "o-1", None, "open", Vec::new());
    assert_eq!(store.commit_transition(other).await.unwrap(), CommitOutcome::Committed { version: 1 });
    assert_eq!(store.load_state(&other_fsm, "o-1").await.unwrap(), entity(&other_fsm, "o-1", "open", 1));
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "cancelled", 3));
    let expected: Vec<_> = [1, 2, 3].map(|n| message(&topic, Some("o-1"), n)).into();
    assert_eq!(messages(&pending_on(store, &topic).await), expected);
}

async fn duplicates_and_replies(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("dedup"), scope.topic("dedup"));
    let first = commit(scope.id(10), &fsm, "d-1", None, "created", vec![message(&topic, Some("d-1"), 10)]);
    assert_eq!(store.commit_transition(first.clone()).await.unwrap(), CommitOutcome::Committed { version: 1 });

    // The same envelope again (as redelivered, or even with another version and state) is a
    // duplicate: no state change, no second outbox entry.
    assert_eq!(store.commit_transition(first.clone()).await.unwrap(), CommitOutcome::Duplicate);
    let mut changed = first.clone();
    changed.expected_version = Some(1);
    changed.state = "shipped".to_owned();
    changed.outbox = vec![message(&topic, Some("d-1"), 11)];
    changed.reply = json!({"changed": true});
    assert_eq!(store.commit_transition(changed).await.unwrap(), CommitOutcome::Duplicate);
    assert_eq!(store.load_state(&fsm, "d-1").await.unwrap(), entity(&fsm, "d-1", "created", 1));
    assert_eq!(messages(&pending_on(store, &topic).await), [message(&topic, Some("d-1"), 10)]);

    // One read gives the record and the state; an unknown envelope and entity, neither.
    let (reply, state) = store.load_for_event(first.envelope_id, &fsm, "d-1").await.unwrap();
    assert_eq!((reply, state), (Some(first.reply.clone()), entity(&fsm, "d-1", "created", 1)));
    assert_eq!(store.load_for_event(scope.id(19), &fsm, "d-none").await.unwrap(), (None, None));

    // A committed transition counts as processed, with the reply committed with it (not the
    // duplicate's, nor a reply recorded later).
    assert_eq!(store.processed_reply(first.envelope_id).await.unwrap(), Some(first.reply.clone()));
    assert!(!store.record_reply(first.envelope_id, &json!({"late": true})).await.unwrap());
    assert_eq!(store.processed_reply(first.envelope_id).await.unwrap(), Some(first.reply.clone()));

    // Replies of envelopes that change no state: recorded once, the first one kept.
    let envelope_id = scope.id(12);
    let reply = json!({"ok": true, "text": "héllo ✓ \"q\"\n", "u64_max": u64::MAX, "tenth": 0.1, "list": [null, {}]});
    assert_eq!(store.processed_reply(envelope_id).await.unwrap(), None);
    assert!(store.record_reply(envelope_id, &reply).await.unwrap());
    assert_eq!(store.processed_reply(envelope_id).await.unwrap(), Some(reply.clone()));
    assert!(!store.record_reply(envelope_id, &json!("other")).await.unwrap());
    assert_eq!(store.processed_reply(envelope_id).await.unwrap(), Some(reply));
    // ... and an envelope with a recorded reply is not committed as a transition either.
    let late = commit(envelope_id, &fsm, "d-2", None, "created", vec![message(&topic, None, 13)]);
    assert_eq!(store.commit_transition(late).await.unwrap(), CommitOutcome::Duplicate);
    assert_eq!(store.load_state(&fsm, "d-2").await.unwrap(), None);
}

async fn outbox_order_and_publishing(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("relay"), scope.topic("relay"));
    let batch = vec![message(&topic, Some("k"), 20), message(&topic, None, 21), message(&topic, Some("k"), 22)];
    let one = commit(scope.id(20), &fsm, "r-1", None, "a", batch.clone());
    let two = commit(scope.id(21), &fsm, "r-1", Some(1), "b", vec![message(&topic, Some("k"), 23)]);
    assert_eq!(store.commit_transition(one).await.unwrap(), CommitOutcome::Committed { version: 1 });
    assert_eq!(store.commit_transition(two).await.unwrap(), CommitOutcome::Committed { version: 2 });

    let pending = pending_on(store, &topic).await;
    let mut expected = batch;
    expected.push(message(&topic, Some("k"), 23));
    assert_eq!(messages(&pending), expected, "entries come back as committed, in order");
    let ids: Vec<u64> = pending.iter().map(|e| e.id).collect();

    let oldest = store.pending_outbox(2).await.unwrap();
    assert_eq!(oldest.len(), 2);
    assert!(oldest[0].id < oldest[1].id && oldest[1].id <= ids[1], "{oldest:?}");
    assert_eq!(store.pending_outbox(0).await.unwrap(), []);
    assert!(store.outbox_backlog().await.unwrap() >= 4, "our four entries are pending");

    store.mark_published(&[ids[0], ids[2]]).await.unwrap();
    assert_eq!(pending_on(store, &topic).await, [pending[1].clone(), pending[3].clone()]);
    // Marking again, nothing, or ids that name no entry changes nothing.
    store.mark_published(&[ids[0]]).await.unwrap();
    store.mark_published(&[]).await.unwrap();
    store.mark_published(&[u64::MAX, i64::MAX as u64]).await.unwrap();
    assert_eq!(pending_on(store, &topic).await, [pending[1].clone(), pending[3].clone()]);
    store.mark_published(&ids).await.unwrap();
    assert_eq!(pending_on(store, &topic).await, []);
}

fn journal_entries() -> Vec<JournalEntry> {
    (0..12)
        .map(|i| JournalEntry {
            step: i / 2,
            attempt: (i % 2 + 1) as u32,
            compensation: i == 11,
            outcome: if i % 3 == 0 {
                StepOutcome::Failed { error: ReplyError::new(codes::NOT_FOUND, format!("attempt {i} failed ✗")) }
            } else {
                StepOutcome::Succeeded { output: json!({"i": i, "nested": {"list": [1, "two", null]}, "ratio": 0.25}) }
            },
        })
        .collect()
}

async fn runs_and_journals(store: &dyn StateStore, scope: &Scope) {
    let host = lease(&scope.prefix, 60_000);
    let run = |id: u32, workflow: &str| RunRecord {
        run_id: scope.id(id),
        workflow: workflow.to_owned(),
        trigger: json!({"envelope_id": scope.id(id).to_string(), "payload": {"n": id, "text": "ü"}}),
        status: "running".to_owned(),
        owner: Some(host.owner.clone()),
    };
    let (a, b, unknown) = (run(30, "checkout"), run(31, "refund"), scope.id(39));
    assert_eq!(store.run(a.run_id).await.unwrap(), None);
    assert!(store.start_run(&a, &host).await.unwrap());
    assert!(store.start_run(&b, &host).await.unwrap());
    assert!(!store.start_run(&run(30, "another"), &host).await.unwrap(), "a run id is started once");
    assert_eq!(store.run(a.run_id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.journal(a.run_id).await.unwrap(), []);

    // Appends to two runs, interleaved: each journal comes back in its own append order.
    let entries = journal_entries();
    let b_entries = &entries[3..5];
    for (i, entry) in entries.iter().enumerate() {
        store.append_journal(a.run_id, &host.owner, entry).await.unwrap();
        if let Some(entry) = i.checked_sub(1).and_then(|j| b_entries.get(j)) {
            store.append_journal(b.run_id, &host.owner, entry).await.unwrap();
        }
    }
    assert_eq!(store.journal(a.run_id).await.unwrap(), entries);
    assert_eq!(store.journal(b.run_id).await.unwrap(), b_entries);

    let error = store.append_journal(unknown, &host.owner, &entries[0]).await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::NotFound, "{error}");
    assert_eq!(store.journal(unknown).await.unwrap(), []);
    assert_eq!(store.run(unknown).await.unwrap(), None);

    let ids = [a.run_id, b.run_id];
    assert_eq!(unfinished_among(store, &ids).await, [a.run_id, b.run_id]);
    store.finish_run(a.run_id, &host.owner, "succeeded").await.unwrap();
    assert_eq!(store.run(a.run_id).await.unwrap().unwrap().status, "succeeded");
    let after = store.append_journal(a.run_id, &host.owner, &entries[0]).await.unwrap_err();
    assert_eq!(after.code(), codes::RUN_LEASE_LOST.as_str(), "a finished run takes no more entries: {after}");
    assert_eq!(unfinished_among(store, &ids).await, [b.run_id]);
    assert_eq!(store.journal(a.run_id).await.unwrap(), entries, "finishing keeps the journal");
    store.finish_run(b.run_id, &host.owner, "compensated").await.unwrap();
    assert_eq!(unfinished_among(store, &ids).await, Vec::<Uuid>::new());
    let error = store.finish_run(unknown, &host.owner, "failed").await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::NotFound, "{error}");
}

/// 1,000 transitions of one entity, one after the other, each with one outbox message; prints
/// how long they took (`-- --nocapture` shows it).
#[allow(clippy::print_stderr)]
async fn sequential_commits(store: &dyn StateStore, scope: &Scope, backend: &str) {
    const N: u32 = 1_000;
    let (fsm, topic) = (scope.fsm("timing"), scope.topic("timing"));
    let started = Instant::now();
    for i in 0..N {
        let expected = (i > 0).then_some(u64::from(i));
        let c = commit(scope.id(10_000 + i), &fsm, "t-1", expected, &format!("s{i}"), vec![message(&topic, None, i)]);
        assert_eq!(store.commit_transition(c).await.unwrap(), CommitOutcome::Committed { version: u64::from(i) + 1 });
    }
    let took = started.elapsed();
    eprintln!("{backend}: {N} sequential commit_transition calls took {took:?}, {:?} each", took / N);
    assert_eq!(store.load_state(&fsm, "t-1").await.unwrap(), entity(&fsm, "t-1", "s999", 1_000));
    assert_eq!(pending_on(store, &topic).await.len(), N as usize);
}

/// A fresh database path under the temp dir, in a directory that does not exist yet.
fn temp_db(label: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(Scope::new(label).prefix);
    (dir.join("nested/state.db"), dir)
}

#[tokio::test]
async fn sqlite_state_store_behaves() {
    let (path, dir) = temp_db("sqlite");
    let store = SqliteStateStore::open(&path).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(store.pool()).await.unwrap();
    assert_eq!(synchronous, 2, "synchronous = FULL: a committed transition survives a power loss");
    state_store_suite(&store, &Scope::new("sqlite")).await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_state_survives_reopening() {
    let (path, dir) = temp_db("sqlite-reopen");
    let scope = Scope::new("sqlite-reopen");
    let (fsm, topic) = (scope.fsm("order"), scope.topic("order"));
    let before = lease("host-before-restart", 60_000);
    let run = RunRecord {
        run_id: scope.id(2),
        workflow: "w".to_owned(),
        trigger: json!({"a": 1}),
        status: "running".into(),
        owner: Some(before.owner.clone()),
    };
    let entries = journal_entries();
    {
        let store = SqliteStateStore::open(&path).await.unwrap();
        let c = commit(scope.id(1), &fsm, "o-1", None, "created", vec![message(&topic, Some("o-1"), 1)]);
        assert_eq!(store.commit_transition(c).await.unwrap(), CommitOutcome::Committed { version: 1 });
        assert!(store.record_reply(scope.id(3), &json!({"done": 1})).await.unwrap());
        assert!(store.start_run(&run, &before).await.unwrap());
        store.append_journal(run.run_id, &before.owner, &entries[0]).await.unwrap();
        store.pool().close().await;
    }
    let store = SqliteStateStore::open(&path).await.unwrap();
    assert_eq!(store.load_state(&fsm, "o-1").await.unwrap(), entity(&fsm, "o-1", "created", 1));
    assert_eq!(store.processed_reply(scope.id(1)).await.unwrap(), Some(reply_of(scope.id(1), "created")));
    assert_eq!(store.processed_reply(scope.id(3)).await.unwrap(), Some(json!({"done": 1})));
    assert_eq!(messages(&store.pending_outbox(10).await.unwrap()), [message(&topic, Some("o-1"), 1)]);
    // The restarted host is alone on its file: it takes every running run, leases or not.
    let after = lease("host-after-restart", 60_000);
    assert_eq!(store.take_over_runs(&after, RunsToTake::Expired, 10).await.unwrap(), [], "the lease still holds");
    let taken = store.take_over_runs(&after, RunsToTake::AllRunning, 10).await.unwrap();
    assert_eq!(taken, [RunRecord { owner: Some(after.owner.clone()), ..run.clone() }]);
    assert_eq!(store.journal(run.run_id).await.unwrap(), entries[..1]);

    let redelivered = commit(scope.id(1), &fsm, "o-1", None, "created", vec![message(&topic, Some("o-1"), 1)]);
    assert_eq!(store.commit_transition(redelivered).await.unwrap(), CommitOutcome::Duplicate);
    let next = commit(scope.id(4), &fsm, "o-1", Some(1), "paid", Vec::new());
    assert_eq!(store.commit_transition(next).await.unwrap(), CommitOutcome::Committed { version: 2 });
    let lost = store.append_journal(run.run_id, &before.owner, &entries[1]).await.unwrap_err();
    assert_eq!(lost.code(), codes::RUN_LEASE_LOST.as_str(), "{lost}");
    store.append_journal(run.run_id, &after.owner, &entries[1]).await.unwrap();
    assert_eq!(store.journal(run.run_id).await.unwrap(), entries[..2]);
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_sequential_commits() {
    let (path, dir) = temp_db("sqlite-timing");
    let store = SqliteStateStore::open(&path).await.unwrap();
    sequential_commits(&store, &Scope::new("sqlite-timing"), "sqlite").await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The test server's store; fails (never skips) if PostgreSQL is not running.
async fn postgres_store() -> PostgresStateStore {
    let url = common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    match PostgresStateStore::connect(&url, 8).await {
        Ok(store) => store,
        Err(e) => panic!(
            "PostgreSQL is needed for this test and did not answer ({e}); \
             run `cargo xtask services up` (or set ONEX_POSTGRES_URL)"
        ),
    }
}

/// Deletes every row `scope` wrote (journals go with their runs).
async fn delete_postgres_rows(store: &PostgresStateStore, scope: &Scope) {
    let pattern = format!("{}.%", scope.prefix);
    let (first, last) = scope.id_range();
    sqlx::query("DELETE FROM onex_fsm_state WHERE fsm LIKE $1").bind(&pattern).execute(store.pool()).await.unwrap();
    sqlx::query("DELETE FROM onex_outbox WHERE topic LIKE $1").bind(&pattern).execute(store.pool()).await.unwrap();
    for sql in [
        "DELETE FROM onex_processed WHERE envelope_id BETWEEN $1::uuid AND $2::uuid",
        "DELETE FROM onex_workflow_runs WHERE run_id BETWEEN $1::uuid AND $2::uuid",
    ] {
        sqlx::query(sql).bind(&first).bind(&last).execute(store.pool()).await.unwrap();
    }
}

#[tokio::test]
async fn postgres_state_store_behaves() {
    let store = postgres_store().await;
    let scope = Scope::new("postgres");
    state_store_suite(&store, &scope).await;
    delete_postgres_rows(&store, &scope).await;
}

#[tokio::test]
async fn postgres_sequential_commits() {
    let store = postgres_store().await;
    let scope = Scope::new("postgres-timing");
    sequential_commits(&store, &scope, "postgres").await;
    delete_postgres_rows(&store, &scope).await;
}

#[tokio::test]
async fn postgres_connect_to_a_closed_port_is_unavailable_and_hides_the_password() {
    let started = Instant::now();
    let error = PostgresStateStore::connect("postgres://u:s3cret@127.0.0.1:1/db", 2).await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Unavailable, "{error}");
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    assert!(started.elapsed().as_secs() < 5, "a refused connection must fail fast");
}
