//! Outbox claims, run leases and retention: what lets several hosts share one store. Each
//! backend gets a store of its own here (a fresh SQLite file, a fresh PostgreSQL database), since
//! claims, take-overs and pruning reach every row of a table.

use std::time::Duration;

use onex_spi::{RetentionPolicy, RowCounts};

use super::*;
use crate::host_support::eventually;

/// How long a lease expiring or a timestamp passing a second may take here.
const WITHIN: Duration = Duration::from_secs(10);

fn ids(entries: &[OutboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.id).collect()
}

/// The behaviour of claims, leases and retention on a store no one else uses.
pub(super) async fn claims_leases_and_retention(store: &dyn StateStore, scope: &Scope) {
    outbox_claims(store, scope).await;
    run_leases(store, scope).await;
    retention(store, scope).await;
}

async fn outbox_claims(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("claims"), scope.topic("claims"));
    let outbox: Vec<_> = (1..=4).map(|n| message(&topic, Some("c"), n)).collect();
    let c = commit(scope.id(1), &fsm, "c", None, "a", outbox.clone());
    assert_eq!(store.commit_transition(c).await.unwrap(), CommitOutcome::Committed { version: 1 });
    let all = store.pending_outbox(10).await.unwrap();
    assert_eq!(messages(&all), outbox);

    // Two relays claim disjoint rows, oldest first; a third finds nothing left.
    let (short, long) = (lease("relay-short", 300), lease("relay-long", 60_000));
    let first = store.claim_outbox(&short, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    let second = store.claim_outbox(&long, 10).await.unwrap();
    assert_eq!(second, all[2..]);
    assert_eq!(store.claim_outbox(&lease("relay-late", 60_000), 10).await.unwrap(), []);

    // One of the short claim's rows is published; the other comes back once the claim expires,
    // and only it: published rows and rows under a live claim are never claimed again.
    store.mark_published(&[all[0].id]).await.unwrap();
    let taker = lease("relay-taker", 60_000);
    let retaken = eventually("the expired claim being taken", WITHIN, || async {
        let got = store.claim_outbox(&taker, 10).await.unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(ids(&retaken), [all[1].id]);
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);
    store.mark_published(&ids(&all)).await.unwrap();
    assert_eq!(store.pending_outbox(10).await.unwrap(), []);
}

async fn run_leases(store: &dyn StateStore, scope: &Scope) {
    let (dying, other) = (lease("host-dying", 300), lease("host-other", 60_000));
    let run = RunRecord {
        run_id: scope.id(10),
        workflow: "w".to_owned(),
        trigger: json!({"n": 10}),
        status: "running".to_owned(),
        owner: Some(dying.owner.clone()),
    };
    let entries = journal_entries();
    assert!(store.start_run(&run, &dying).await.unwrap());
    assert_eq!(store.run(run.run_id).await.unwrap(), Some(run.clone()));
    store.append_journal(run.run_id, &dying.owner, &entries[0]).await.unwrap();

    // While the lease holds, nobody else takes the run, renews it or writes to it.
    assert_eq!(store.take_over_run(run.run_id, &other).await.unwrap(), None);
    assert_eq!(store.take_over_runs(&other, RunsToTake::Expired, 10).await.unwrap(), []);
    assert!(store.renew_run(run.run_id, &dying).await.unwrap());
    assert!(!store.renew_run(run.run_id, &other).await.unwrap());
    let refused = store.append_journal(run.run_id, &other.owner, &entries[1]).await.unwrap_err();
    assert_eq!(refused.code(), codes::RUN_LEASE_LOST.as_str());
    assert!(refused.message().contains("host-dying"), "{refused}");

    // The dying host stops renewing: the sweeper's query takes the run once the lease expires.
    let taken = eventually("the expired run being taken over", WITHIN, || async {
        let got = store.take_over_runs(&other, RunsToTake::Expired, 10).await.unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(taken, [RunRecord { owner: Some(other.owner.clone()), ..run.clone() }]);

    // The host that lost it is fenced off; the new holder carries on from the journal.
    assert!(!store.renew_run(run.run_id, &dying).await.unwrap());
    let fenced = store.append_journal(run.run_id, &dying.owner, &entries[1]).await.unwrap_err();
    assert_eq!(fenced.code(), codes::RUN_LEASE_LOST.as_str());
    let fenced = store.finish_run(run.run_id, &dying.owner, "failed").await.unwrap_err();
    assert_eq!(fenced.code(), codes::RUN_LEASE_LOST.as_str());
    store.append_journal(run.run_id, &other.owner, &entries[1]).await.unwrap();
    assert_eq!(store.journal(run.run_id).await.unwrap(), entries[..2]);
    store.finish_run(run.run_id, &other.owner, "succeeded").await.unwrap();
    assert_eq!(store.take_over_run(run.run_id, &dying).await.unwrap(), None, "a finished run is not taken");
    assert_eq!(store.run(run.run_id).await.unwrap().unwrap().status, "succeeded");

    // A redelivered trigger takes over its run directly once the lease expired; the holder itself
    // may always take its own run back.
    let second = RunRecord { run_id: scope.id(11), owner: Some(dying.owner.clone()), ..run.clone() };
    assert!(store.start_run(&second, &dying).await.unwrap());
    assert!(store.take_over_run(second.run_id, &dying).await.unwrap().is_some(), "its own run");
    let taken = eventually("the redelivered trigger taking over", WITHIN, || async {
        store.take_over_run(second.run_id, &other).await.unwrap()
    })
    .await;
    assert_eq!(taken.owner.as_deref(), Some("host-other"));
    store.finish_run(second.run_id, &other.owner, "failed").await.unwrap();
}

async fn retention(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("retention"), scope.topic("retention"));
    let kept_reply = json!({"kept": true});
    assert!(store.record_reply(scope.id(20), &kept_reply).await.unwrap());
    let c = commit(scope.id(21), &fsm, "r", None, "a", vec![message(&topic, None, 1), message(&topic, None, 2)]);
    assert_eq!(store.commit_transition(c).await.unwrap(), CommitOutcome::Committed { version: 1 });
    let pending = store.pending_outbox(10).await.unwrap();
    store.mark_published(&[pending[0].id]).await.unwrap();
    let host = lease("host", 60_000);
    let running = RunRecord {
        run_id: scope.id(22),
        workflow: "w".to_owned(),
        trigger: json!({}),
        status: "running".to_owned(),
        owner: Some(host.owner.clone()),
    };
    assert!(store.start_run(&running, &host).await.unwrap());
    store.append_journal(running.run_id, &host.owner, &journal_entries()[0]).await.unwrap();
    let before = store.row_counts().await.unwrap();

    // Within retention nothing goes, and a redelivery is still recognised.
    let long = Duration::from_secs(24 * 3600);
    let keep_all = RetentionPolicy { processed: long, published_outbox: long, finished_runs: long };
    assert_eq!(store.prune(&keep_all, 100).await.unwrap(), RowCounts::default());
    assert_eq!(store.processed_reply(scope.id(20)).await.unwrap(), Some(kept_reply));
    let again = commit(scope.id(21), &fsm, "r", None, "a", Vec::new());
    assert_eq!(store.commit_transition(again).await.unwrap(), CommitOutcome::Duplicate);

    // Past retention: idempotency records, published outbox rows and finished runs (with their
    // journals) go; unpublished rows and running runs stay, whatever their age.
    let keep_none =
        RetentionPolicy { processed: Duration::ZERO, published_outbox: Duration::ZERO, finished_runs: Duration::ZERO };
    let finished_ids = [scope.id(10), scope.id(11)];
    // Timestamps have whole seconds on SQLite: rows written this second pass next second.
    let removed = std::cell::RefCell::new(RowCounts::default());
    eventually("records passing their retention", WITHIN, || async {
        let round = store.prune(&keep_none, 100).await.unwrap();
        let mut removed = removed.borrow_mut();
        removed.processed += round.processed;
        removed.outbox += round.outbox;
        removed.runs += round.runs;
        removed.journal += round.journal;
        (removed.processed == before.processed && removed.runs == 2 && removed.outbox == before.outbox - 1)
            .then_some(())
    })
    .await;
    let removed = removed.into_inner();
    assert_eq!(removed.journal, 2, "the finished run's two journal entries went with it");
    let after = store.row_counts().await.unwrap();
    assert_eq!(after, RowCounts { processed: 0, outbox: 1, runs: 1, journal: 1 });
    assert_eq!(store.pending_outbox(10).await.unwrap(), pending[1..], "unpublished rows stay");
    assert_eq!(store.run(running.run_id).await.unwrap().map(|r| r.status).as_deref(), Some("running"));
    for id in finished_ids {
        assert_eq!(store.run(id).await.unwrap(), None);
        assert_eq!(store.journal(id).await.unwrap(), []);
    }
}

#[tokio::test]
async fn sqlite_claims_leases_and_retention() {
    let (path, dir) = temp_db("sqlite-leases");
    let store = SqliteStateStore::open(&path).await.unwrap();
    claims_leases_and_retention(&store, &Scope::new("sqlite-leases")).await;
    store.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_claims_leases_and_retention() {
    let database = crate::fresh_postgres::FreshPostgres::create("leases").await;
    let store = PostgresStateStore::connect(&database.url, 8).await.unwrap();
    claims_leases_and_retention(&store, &Scope::new("postgres-leases")).await;
    store.close().await;
    database.drop().await;
}

/// A relay never skips a row committed late with a lower id than rows it already published
/// (the cursor it once had did): claims look at every unpublished row.
#[tokio::test]
async fn postgres_a_late_commit_with_a_lower_id_is_still_claimed() {
    let database = crate::fresh_postgres::FreshPostgres::create("late-commit").await;
    let store = PostgresStateStore::connect(&database.url, 8).await.unwrap();
    let scope = Scope::new("late-commit");
    let topic = scope.topic("late");
    let insert =
        "INSERT INTO onex_outbox (topic, message_key, payload, headers) VALUES ($1, NULL, $2, '{}') RETURNING id";
    let mut slow = store.pool().begin().await.unwrap();
    let early_id: i64 =
        sqlx::query_scalar(insert).bind(&topic).bind(b"slow".as_slice()).fetch_one(&mut *slow).await.unwrap();
    let late_id: i64 =
        sqlx::query_scalar(insert).bind(&topic).bind(b"fast".as_slice()).fetch_one(store.pool()).await.unwrap();
    assert!(early_id < late_id);
    let relay = lease("relay", 60_000);
    assert_eq!(ids(&store.claim_outbox(&relay, 10).await.unwrap()), [late_id as u64]);
    store.mark_published(&[late_id as u64]).await.unwrap();
    slow.commit().await.unwrap();
    assert_eq!(ids(&store.claim_outbox(&relay, 10).await.unwrap()), [early_id as u64], "the late row is not skipped");
    store.close().await;
    database.drop().await;
}
