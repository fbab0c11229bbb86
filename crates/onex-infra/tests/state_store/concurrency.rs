//! Concurrent commits and journal appends on one store, from several tasks at once.

use std::sync::Arc;

use super::*;

/// Two commits of one entity at one expected version, started together, over and over: each
/// time exactly one is committed, the other is refused as a conflict and leaves no trace.
/// Even rounds race to update an existing entity, odd rounds to create a new one.
async fn concurrent_commits_one_wins(store: Arc<dyn StateStore>, scope: &Scope) {
    let (fsm, topic) = (scope.fsm("race"), scope.topic("race"));
    for round in 0..20u32 {
        let key = format!("e-{round}");
        let base = 100 + round * 3;
        let expected = if round % 2 == 0 {
            let setup = commit(scope.id(base), &fsm, &key, None, "new", Vec::new());
            assert_eq!(store.commit_transition(setup).await.unwrap(), CommitOutcome::Committed { version: 1 });
            Some(1)
        } else {
            None
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [0, 1].map(|side| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            let outbox = vec![message(&topic, Some(&key), side)];
            let c = commit(scope.id(base + 1 + side), &fsm, &key, expected, &format!("by-{side}"), outbox);
            tokio::spawn(async move {
                barrier.wait().await;
                store.commit_transition(c).await
            })
        });
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let version = expected.map_or(1, |v| v + 1);
        let winners: Vec<u32> = (0..2).filter(|&s| results[s as usize].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let (winner, loser) = (winners[0], 1 - winners[0]);
        assert_eq!(results[winner as usize].as_ref().unwrap(), &CommitOutcome::Committed { version });
        let error = results[loser as usize].as_ref().unwrap_err();
        assert_eq!(error.category(), ErrorCategory::Conflict, "round {round}: {error}");

        let state = format!("by-{winner}");
        assert_eq!(store.load_state(&fsm, &key).await.unwrap(), entity(&fsm, &key, &state, version));
        let winner_id = scope.id(base + 1 + winner);
        assert_eq!(store.processed_reply(winner_id).await.unwrap(), Some(reply_of(winner_id, &state)));
        assert_eq!(store.processed_reply(scope.id(base + 1 + loser)).await.unwrap(), None);
        let pending = pending_on(store.as_ref(), &topic).await;
        let of_key: Vec<_> = pending.iter().filter(|e| e.message.key.as_deref() == Some(&key)).collect();
        assert_eq!(of_key.len(), 1, "round {round}");
        assert_eq!(of_key[0].message, message(&topic, Some(&key), winner));
    }
}

/// Eight appends to one run's journal at once: all land, with distinct `seq`s (the journal
/// holds each entry once).
async fn concurrent_appends_all_land(store: Arc<dyn StateStore>, scope: &Scope) {
    let run_id = scope.id(500);
    let host = super::lease(&scope.prefix, 60_000);
    let run = RunRecord {
        run_id,
        workflow: "fan-out".to_owned(),
        trigger: json!({}),
        status: "running".to_owned(),
        owner: Some(host.owner.clone()),
    };
    assert!(store.start_run(&run, &host).await.unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8usize)
        .map(|step| {
            let (store, barrier, owner) = (Arc::clone(&store), Arc::clone(&barrier), host.owner.clone());
            let entry = JournalEntry {
                step,
                attempt: 1,
                compensation: false,
                outcome: StepOutcome::Succeeded { output: json!({"step": step}) },
            };
            tokio::spawn(async move {
                barrier.wait().await;
                store.append_journal(run_id, &owner, &entry).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut steps: Vec<usize> = store.journal(run_id).await.unwrap().iter().map(|e| e.step).collect();
    steps.sort_unstable();
    assert_eq!(steps, (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_commits_one_wins() {
    let (path, dir) = temp_db("sqlite-race");
    let store = Arc::new(SqliteStateStore::open(&path).await.unwrap());
    concurrent_commits_one_wins(store.clone(), &Scope::new("sqlite-race")).await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_appends_all_land() {
    let (path, dir) = temp_db("sqlite-appends");
    let store = Arc::new(SqliteStateStore::open(&path).await.unwrap());
    concurrent_appends_all_land(store.clone(), &Scope::new("sqlite-appends")).await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_commits_one_wins() {
    let store = Arc::new(postgres_store().await);
    let scope = Scope::new("postgres-race");
    concurrent_commits_one_wins(store.clone(), &scope).await;
    delete_postgres_rows(&store, &scope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_appends_all_land() {
    let store = Arc::new(postgres_store().await);
    let scope = Scope::new("postgres-appends");
    concurrent_appends_all_land(store.clone(), &scope).await;
    delete_postgres_rows(&store, &scope).await;
}
