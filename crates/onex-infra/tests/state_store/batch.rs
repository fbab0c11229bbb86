//! `commit_transitions`: many commits in one transaction, each in its own savepoint.

use std::time::Duration;

use onex_infra::stores::migrate_sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqliteConnection};

use super::*;

/// The outcomes of a batch, errors as `None`.
fn outcomes(results: &[onex_spi::SpiResult<CommitOutcome>]) -> Vec<Option<CommitOutcome>> {
    results.iter().map(|r| r.as_ref().ok().copied()).collect()
}

/// One batch with a fresh entity, a stale expected version, an envelope processed before, two
/// steps of one entity, an envelope twice and a step after the refused one: each commit gets
/// what `commit_transition` would have given it, run one after the other.
async fn batched_commits(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("batch"), scope.topic("batch"));
    assert!(store.commit_transitions(Vec::new()).await.unwrap().is_empty());
    // Before the batch: entity "old" at version 2, envelope 41 processed.
    let created = commit(scope.id(40), &fsm, "old", None, "created", Vec::new());
    assert_eq!(store.commit_transition(created).await.unwrap(), CommitOutcome::Committed { version: 1 });
    let paid = commit(scope.id(41), &fsm, "old", Some(1), "paid", Vec::new());
    assert_eq!(store.commit_transition(paid).await.unwrap(), CommitOutcome::Committed { version: 2 });

    let batch = vec![
        commit(scope.id(42), &fsm, "new", None, "created", vec![message(&topic, Some("new"), 42)]),
        commit(scope.id(43), &fsm, "old", Some(1), "stale", vec![message(&topic, Some("old"), 43)]),
        commit(scope.id(41), &fsm, "elsewhere", None, "created", vec![message(&topic, None, 44)]),
        commit(scope.id(45), &fsm, "seq", None, "one", vec![message(&topic, Some("seq"), 45)]),
        commit(scope.id(46), &fsm, "seq", Some(1), "two", vec![message(&topic, Some("seq"), 46)]),
        commit(scope.id(42), &fsm, "new", Some(1), "again", vec![message(&topic, None, 47)]),
        commit(scope.id(48), &fsm, "old", Some(2), "shipped", vec![message(&topic, Some("old"), 48)]),
    ];
    let results = store.commit_transitions(batch).await.unwrap();
    let committed = |version| Some(CommitOutcome::Committed { version });
    let duplicate = Some(CommitOutcome::Duplicate);
    assert_eq!(
        outcomes(&results),
        [committed(1), None, duplicate, committed(1), committed(2), duplicate, committed(3)]
    );
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.code(), codes::STATE_CONFLICT.as_str(), "{error}");
    assert_eq!(error.category(), ErrorCategory::Conflict);
    for part in ["entity old", "expected version 1", "found 2"] {
        assert!(error.message().contains(part), "{part:?} not in {:?}", error.message());
    }
    batch_is_durable(store, scope).await;
}

/// What [`batched_commits`] left in the store: the committed commits whole, nothing of the
/// refused or duplicate ones.
async fn batch_is_durable(store: &dyn StateStore, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("batch"), scope.topic("batch"));
    assert_eq!(store.load_state(&fsm, "new").await.unwrap(), entity(&fsm, "new", "created", 1));
    assert_eq!(store.load_state(&fsm, "old").await.unwrap(), entity(&fsm, "old", "shipped", 3));
    assert_eq!(store.load_state(&fsm, "seq").await.unwrap(), entity(&fsm, "seq", "two", 2));
    assert_eq!(store.load_state(&fsm, "elsewhere").await.unwrap(), None);
    let expected = [(Some("new"), 42), (Some("seq"), 45), (Some("seq"), 46), (Some("old"), 48)];
    let expected: Vec<_> = expected.into_iter().map(|(key, n)| message(&topic, key, n)).collect();
    assert_eq!(messages(&pending_on(store, &topic).await), expected, "the outbox holds the committed steps, in order");
    for (n, state) in [(41, Some("paid")), (42, Some("created")), (43, None), (45, Some("one")), (48, Some("shipped"))]
    {
        let reply = store.processed_reply(scope.id(n)).await.unwrap();
        assert_eq!(reply, state.map(|state| reply_of(scope.id(n), state)), "envelope {n}");
    }
}

#[tokio::test]
async fn sqlite_batched_commits_are_isolated_and_durable() {
    let (path, dir) = temp_db("sqlite-batch");
    let scope = Scope::new("sqlite-batch");
    let store = SqliteStateStore::open(&path).await.unwrap();
    batched_commits(&store, &scope).await;
    store.pool().close().await;
    let reopened = SqliteStateStore::open(&path).await.unwrap();
    batch_is_durable(&reopened, &scope).await;
    reopened.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// A database another connection holds the write lock of: the batch's first write gives up
/// after the busy timeout, and the whole batch fails as unavailable instead of every commit
/// waiting its turn to fail. Nothing is written.
#[tokio::test]
async fn sqlite_a_locked_database_fails_the_whole_batch() {
    let (path, dir) = temp_db("sqlite-batch-locked");
    let scope = Scope::new("sqlite-batch-locked");
    let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let pool =
        SqlitePoolOptions::new().connect_with(options.clone().busy_timeout(Duration::from_millis(200))).await.unwrap();
    migrate_sqlite(&pool).await.unwrap();
    let store = SqliteStateStore::from_pool(pool);
    let mut holder = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();

    let fsm = scope.fsm("locked");
    let batch: Vec<_> = (0..5).map(|n| commit(scope.id(n), &fsm, &format!("e-{n}"), None, "a", Vec::new())).collect();
    let started = Instant::now();
    let error = store.commit_transitions(batch).await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Unavailable, "{error}");
    assert!(started.elapsed() < Duration::from_secs(1), "one busy timeout, not five: {:?}", started.elapsed());

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    for n in 0..5 {
        assert_eq!(store.processed_reply(scope.id(n)).await.unwrap(), None);
        assert_eq!(store.load_state(&fsm, &format!("e-{n}")).await.unwrap(), None);
    }
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_batched_commits_are_isolated_and_durable() {
    let store = postgres_store().await;
    let scope = Scope::new("postgres-batch");
    batched_commits(&store, &scope).await;
    // Committed: another pool's connections see it all.
    let other = postgres_store().await;
    batch_is_durable(&other, &scope).await;
    other.pool().close().await;
    delete_postgres_rows(&store, &scope).await;
}

/// A statement PostgreSQL refuses (a NUL in text) aborts the transaction until its savepoint
/// is rolled back: only that commit fails, its neighbours are written and it leaves no trace.
#[tokio::test]
async fn postgres_a_refused_statement_in_a_batch_fails_only_its_commit() {
    let store = postgres_store().await;
    let scope = Scope::new("postgres-batch-refused");
    let (fsm, topic) = (scope.fsm("refused"), scope.topic("refused"));
    let batch = vec![
        commit(scope.id(1), &fsm, "a", None, "created", vec![message(&topic, Some("a"), 1)]),
        commit(scope.id(2), &fsm, "b", None, "bad\0state", vec![message(&topic, Some("b"), 2)]),
        commit(scope.id(3), &fsm, "c", None, "created", vec![message(&topic, Some("c"), 3)]),
    ];
    let results = store.commit_transitions(batch).await.unwrap();
    let committed = Some(CommitOutcome::Committed { version: 1 });
    assert_eq!(outcomes(&results), [committed, None, committed]);
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.code(), codes::STORE_FAILED.as_str(), "{error}");

    assert_eq!(store.load_state(&fsm, "a").await.unwrap(), entity(&fsm, "a", "created", 1));
    assert_eq!(store.load_state(&fsm, "b").await.unwrap(), None);
    assert_eq!(store.load_state(&fsm, "c").await.unwrap(), entity(&fsm, "c", "created", 1));
    assert_eq!(store.processed_reply(scope.id(2)).await.unwrap(), None, "the refused commit's record is rolled back");
    let expected = [message(&topic, Some("a"), 1), message(&topic, Some("c"), 3)];
    assert_eq!(messages(&pending_on(&store, &topic).await), expected);
    delete_postgres_rows(&store, &scope).await;
}
