//! `InspectStore`: entities counted by state, and the latest runs newest first (what the status
//! page shows).

use super::*;

pub(super) async fn counts_and_recent_runs(store: &dyn StateStore, scope: &Scope) {
    let fsm = scope.fsm("inspect");
    assert_eq!(store.state_counts(&fsm).await.unwrap(), [], "no entity yet");
    for (n, key, state) in [(200, "a", "paid"), (201, "b", "pending"), (202, "c", "paid")] {
        store.commit_transition(commit(scope.id(n), &fsm, key, None, state, Vec::new())).await.unwrap();
    }
    let moved = commit(scope.id(203), &fsm, "b", Some(1), "paid", Vec::new());
    store.commit_transition(moved).await.unwrap();
    let counts = store.state_counts(&fsm).await.unwrap();
    assert_eq!(counts, [("paid".to_owned(), 3)], "b left `pending`: a state without entities is left out");

    let host = lease(&scope.prefix, 60_000);
    let run = |n: u32| RunRecord {
        run_id: scope.id(n),
        workflow: format!("{}-inspect", scope.prefix),
        trigger: json!({ "n": n }),
        status: "running".to_owned(),
        owner: Some(host.owner.clone()),
    };
    for n in [210, 211] {
        assert!(store.start_run(&run(n), &host).await.unwrap());
    }
    let recent = store.recent_runs(1000).await.unwrap();
    let ours: Vec<Uuid> = recent.iter().filter(|r| r.workflow == run(210).workflow).map(|r| r.run_id).collect();
    assert_eq!(ours, [scope.id(211), scope.id(210)], "newest first");
    assert_eq!(recent.iter().find(|r| r.run_id == scope.id(211)), Some(&run(211)), "the whole record");
    assert!(store.recent_runs(1).await.unwrap().len() <= 1, "the limit holds");
}
