//! Behaviour of `WorkflowRun`: waves, error actions, compensation, disabled steps and resume.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use onex_core::contract::{ErrorAction, ExecutionMode, StepDef, StepType, WorkflowDefinition, WorkflowMetadata};
use onex_core::envelope::ReplyError;
use onex_core::error::codes;
use onex_core::workflow::{JournalEntry, PlanError, RunAction, RunStatus, StepOutcome, StepState, WorkflowRun, plan};
use onex_core::yaml::Pos;
use serde_json::{Value as Json, json};

/// A step builder.
#[derive(Clone)]
struct S {
    name: &'static str,
    deps: Vec<&'static str>,
    action: ErrorAction,
    retries: u32,
    compensation: Option<&'static str>,
    enabled: bool,
}

fn s(name: &'static str, deps: &[&'static str]) -> S {
    S { name, deps: deps.to_vec(), action: ErrorAction::Stop, retries: 0, compensation: None, enabled: true }
}

impl S {
    fn on_error(mut self, action: ErrorAction) -> Self {
        self.action = action;
        self
    }
    fn retries(mut self, n: u32) -> Self {
        self.action = ErrorAction::Retry;
        self.retries = n;
        self
    }
    fn compensation(mut self, op: &'static str) -> Self {
        self.compensation = Some(op);
        self
    }
    fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }
}

fn run_of(steps: &[S], mode: ExecutionMode) -> WorkflowRun {
    WorkflowRun::new(plan(&definition(steps, mode)).unwrap())
}

fn definition(steps: &[S], mode: ExecutionMode) -> WorkflowDefinition {
    WorkflowDefinition {
        metadata: WorkflowMetadata {
            workflow_name: "test".to_owned(),
            workflow_version: "1.0.0".to_owned(),
            description: None,
            execution_mode: mode,
            timeout_ms: None,
        },
        steps: steps
            .iter()
            .map(|st| StepDef {
                name: st.name.to_owned(),
                step_id: None,
                step_type: StepType::Effect,
                operation: format!("svc.{}", st.name),
                payload: json!({ "step": st.name }),
                depends_on: st.deps.iter().map(|d| (*d).to_owned()).collect(),
                timeout_ms: Some(1000),
                retry_count: st.retries,
                error_action: st.action,
                compensation: st.compensation.map(str::to_owned),
                enabled: st.enabled,
                pos: Pos::default(),
            })
            .collect(),
        pos: Pos::default(),
    }
}

fn parallel(steps: &[S]) -> WorkflowRun {
    run_of(steps, ExecutionMode::Parallel)
}

fn ok() -> StepOutcome {
    StepOutcome::Succeeded { output: json!({"ok": true}) }
}

fn error(message: &str) -> ReplyError {
    ReplyError::new(codes::OPERATION_TIMEOUT, message)
}

fn fail(message: &str) -> StepOutcome {
    StepOutcome::Failed { error: error(message) }
}

/// Dispatched (step, attempt) pairs, checking every action is a dispatch.
fn dispatched(actions: &[RunAction]) -> Vec<(usize, u32)> {
    actions
        .iter()
        .map(|a| match a {
            RunAction::Dispatch { step, attempt, .. } => (*step, *attempt),
            other => panic!("expected a dispatch, got {other:?}"),
        })
        .collect()
}

fn sorted(mut v: Vec<(usize, u32)>) -> Vec<(usize, u32)> {
    v.sort_unstable();
    v
}

/// Compensated steps, checking every action is a compensation.
fn compensated(actions: &[RunAction]) -> Vec<usize> {
    actions
        .iter()
        .map(|a| match a {
            RunAction::Compensate { step, .. } => *step,
            other => panic!("expected a compensation, got {other:?}"),
        })
        .collect()
}

#[test]
fn waves_are_dispatched_together_and_in_order() {
    // Wave 1: a, b. Wave 2: c (a), d (b). Wave 3: e (c, d).
    let mut run = parallel(&[s("a", &[]), s("b", &[]), s("c", &["a"]), s("d", &["b"]), s("e", &["c", "d"])]);
    let first = run.next_actions();
    assert_eq!(sorted(dispatched(&first)), [(0, 1), (1, 1)]);
    match &first[0] {
        RunAction::Dispatch { operation, payload, timeout_ms, .. } => {
            assert_eq!(operation, "svc.a");
            assert_eq!(payload, &json!({"step": "a"}));
            assert_eq!(*timeout_ms, Some(1000));
        }
        other => panic!("{other:?}"),
    }
    assert!(run.next_actions().is_empty(), "nothing new before outcomes");
    assert_eq!(run.step_states()[0], StepState::Running { attempt: 1 });
    run.record(0, false, ok()).unwrap();
    // c only needs a, but wave 2 waits for all of wave 1.
    assert!(run.next_actions().is_empty());
    assert_eq!(run.step_states()[2], StepState::Pending);
    assert_eq!(run.status(), RunStatus::Running);
    run.record(1, false, ok()).unwrap();
    assert_eq!(sorted(dispatched(&run.next_actions())), [(2, 1), (3, 1)]);
    run.record(3, false, ok()).unwrap();
    assert!(run.next_actions().is_empty());
    run.record(2, false, ok()).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(4, 1)]);
    assert_eq!(run.status(), RunStatus::Running);
    run.record(4, false, ok()).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert!(run.step_states().iter().all(|st| *st == StepState::Succeeded { attempts: 1 }));
}

#[test]
fn sequential_mode_runs_one_step_at_a_time() {
    let mut run = run_of(&[s("a", &[]), s("b", &[]), s("c", &["a"])], ExecutionMode::Sequential);
    let mut order = Vec::new();
    loop {
        let actions = dispatched(&run.next_actions());
        if actions.is_empty() {
            break;
        }
        assert_eq!(actions.len(), 1, "{actions:?}");
        order.push(actions[0].0);
        run.record(actions[0].0, false, ok()).unwrap();
    }
    assert_eq!(order, [0, 1, 2]);
    assert_eq!(run.status(), RunStatus::Succeeded);
}

#[test]
fn retry_redispatches_then_fails_the_run() {
    let mut run = parallel(&[s("a", &[]).retries(2), s("b", &["a"])]);
    assert_eq!(dispatched(&run.next_actions()), [(0, 1)]);
    run.record(0, false, fail("one")).unwrap();
    assert_eq!(run.status(), RunStatus::Running);
    assert_eq!(dispatched(&run.next_actions()), [(0, 2)]);
    assert_eq!(run.step_states()[0], StepState::Running { attempt: 2 });
    run.record(0, false, fail("two")).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(0, 3)]);
    run.record(0, false, fail("three")).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Failed { step: 0, error: error("three") });
    assert_eq!(run.step_states(), [StepState::Failed { attempts: 3, error: error("three") }, StepState::Skipped]);
}

#[test]
fn retry_that_succeeds_lets_the_run_go_on() {
    let mut run = parallel(&[s("a", &[]).retries(2), s("b", &["a"])]);
    assert_eq!(dispatched(&run.next_actions()), [(0, 1)]);
    run.record(0, false, fail("one")).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(0, 2)]);
    run.record(0, false, ok()).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(1, 1)]);
    run.record(1, false, ok()).unwrap();
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert_eq!(run.step_states()[0], StepState::Succeeded { attempts: 2 });
}

#[test]
fn continue_lets_dependants_run() {
    let mut run = parallel(&[s("a", &[]).on_error(ErrorAction::Continue), s("b", &["a"]), s("c", &["b"])]);
    assert_eq!(dispatched(&run.next_actions()), [(0, 1)]);
    run.record(0, false, fail("meh")).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(1, 1)]);
    run.record(1, false, ok()).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(2, 1)]);
    run.record(2, false, ok()).unwrap();
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert_eq!(run.step_states()[0], StepState::Failed { attempts: 1, error: error("meh") });
}

#[test]
fn stop_skips_pending_steps_and_waits_for_in_flight_ones() {
    let mut run = parallel(&[s("a", &[]), s("b", &[]), s("c", &["a"]), s("d", &["c"])]);
    assert_eq!(sorted(dispatched(&run.next_actions())), [(0, 1), (1, 1)]);
    run.record(0, false, fail("broken")).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Running, "b is still in flight");
    assert_eq!(run.step_states()[2], StepState::Skipped);
    assert_eq!(run.step_states()[3], StepState::Skipped);
    run.record(1, false, ok()).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Failed { step: 0, error: error("broken") });
    assert_eq!(
        run.step_states(),
        [
            StepState::Failed { attempts: 1, error: error("broken") },
            StepState::Succeeded { attempts: 1 },
            StepState::Skipped,
            StepState::Skipped,
        ]
    );
}

#[test]
fn stop_fails_a_retrying_step_waiting_for_its_next_attempt() {
    let mut run = parallel(&[s("a", &[]), s("b", &[]).retries(3), s("c", &["a", "b"])]);
    assert_eq!(sorted(dispatched(&run.next_actions())), [(0, 1), (1, 1)]);
    run.record(1, false, fail("b1")).unwrap();
    // b waits for attempt 2; a fails and stops the run before it is dispatched.
    run.record(0, false, fail("a1")).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Failed { step: 0, error: error("a1") });
    assert_eq!(run.step_states()[1], StepState::Failed { attempts: 1, error: error("b1") });
    assert_eq!(run.step_states()[2], StepState::Skipped);
}

#[test]
fn an_in_flight_retrying_step_is_not_retried_after_the_run_stopped() {
    let mut run = parallel(&[s("a", &[]), s("b", &[]).retries(3)]);
    assert_eq!(sorted(dispatched(&run.next_actions())), [(0, 1), (1, 1)]);
    run.record(0, false, fail("a1")).unwrap();
    assert_eq!(run.status(), RunStatus::Running, "b is in flight");
    run.record(1, false, fail("b1")).unwrap();
    assert!(run.next_actions().is_empty(), "no new attempts once the run has failed");
    assert_eq!(run.status(), RunStatus::Failed { step: 0, error: error("a1") });
    assert_eq!(run.step_states()[1], StepState::Failed { attempts: 1, error: error("b1") });
    assert!(!run.step_states().iter().any(|st| matches!(st, StepState::Pending | StepState::Running { .. })));
}

#[test]
fn compensate_undoes_completed_steps_in_reverse_completion_order() {
    // Wave 1: a, b, c (c has no compensation). Wave 2: d (fails, compensates), f (in flight).
    let mut run = parallel(&[
        s("a", &[]).compensation("svc.undo_a"),
        s("b", &[]).compensation("svc.undo_b"),
        s("c", &[]),
        s("d", &["a", "b", "c"]).on_error(ErrorAction::Compensate),
        s("f", &["a"]).compensation("svc.undo_f"),
    ]);
    assert_eq!(sorted(dispatched(&run.next_actions())), [(0, 1), (1, 1), (2, 1)]);
    for step in [1, 2, 0] {
        run.record(step, false, ok()).unwrap();
    }
    assert_eq!(sorted(dispatched(&run.next_actions())), [(3, 1), (4, 1)]);
    run.record(3, false, fail("bad")).unwrap();
    assert!(run.next_actions().is_empty(), "f is still in flight");
    assert_eq!(run.status(), RunStatus::Running);
    run.record(4, false, ok()).unwrap();
    // Completion order b, c, a, f: undo f, a, then b (c has nothing to undo), one at a time.
    let mut undone = Vec::new();
    loop {
        let actions = run.next_actions();
        if actions.is_empty() {
            break;
        }
        let steps = compensated(&actions);
        assert_eq!(steps.len(), 1, "one compensation at a time: {actions:?}");
        if let RunAction::Compensate { operation, payload, .. } = &actions[0] {
            assert_eq!(operation, &format!("svc.undo_{}", ["a", "b", "c", "d", "f"][steps[0]]));
            assert_eq!(payload["step"], ["a", "b", "c", "d", "f"][steps[0]]);
        }
        assert!(run.next_actions().is_empty(), "a second compensation before the first finished");
        assert_eq!(run.status(), RunStatus::Running);
        assert_eq!(run.record(steps[0], false, ok()), Err(PlanError::UnexpectedOutcome { step: steps[0] }));
        run.record(steps[0], true, ok()).unwrap();
        undone.push(steps[0]);
    }
    assert_eq!(undone, [4, 0, 1]);
    assert_eq!(run.status(), RunStatus::Compensated { step: 3, error: error("bad") });
    assert_eq!(
        run.step_states(),
        [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Succeeded { attempts: 1 },
            StepState::Failed { attempts: 1, error: error("bad") },
            StepState::Compensated,
        ]
    );
}

#[test]
fn a_failed_compensation_leaves_the_step_succeeded_and_goes_on() {
    let mut run = parallel(&[
        s("a", &[]).compensation("svc.undo_a"),
        s("b", &["a"]).compensation("svc.undo_b"),
        s("c", &["b"]).on_error(ErrorAction::Compensate),
    ]);
    for step in 0..2 {
        assert_eq!(dispatched(&run.next_actions()), [(step, 1)]);
        run.record(step, false, ok()).unwrap();
    }
    assert_eq!(dispatched(&run.next_actions()), [(2, 1)]);
    run.record(2, false, fail("bad")).unwrap();
    assert_eq!(compensated(&run.next_actions()), [1]);
    run.record(1, true, fail("undo failed")).unwrap();
    assert_eq!(compensated(&run.next_actions()), [0]);
    run.record(0, true, ok()).unwrap();
    assert!(run.next_actions().is_empty());
    assert_eq!(run.status(), RunStatus::Compensated { step: 2, error: error("bad") });
    assert_eq!(run.step_states()[0], StepState::Compensated);
    assert_eq!(run.step_states()[1], StepState::Succeeded { attempts: 1 });
}

#[test]
fn disabled_steps_are_skipped_and_do_not_hold_dependants() {
    let mut run = parallel(&[s("a", &[]), s("b", &[]).disabled(), s("c", &["b"]), s("d", &[]).disabled()]);
    assert_eq!(run.step_states()[1], StepState::Skipped);
    assert_eq!(dispatched(&run.next_actions()), [(0, 1)]);
    run.record(0, false, ok()).unwrap();
    assert_eq!(dispatched(&run.next_actions()), [(2, 1)]);
    run.record(2, false, ok()).unwrap();
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert_eq!(
        run.step_states(),
        [
            StepState::Succeeded { attempts: 1 },
            StepState::Skipped,
            StepState::Succeeded { attempts: 1 },
            StepState::Skipped
        ]
    );
    // Everything disabled: nothing to do, and the run is already done.
    let mut idle = parallel(&[s("a", &[]).disabled(), s("b", &["a"]).disabled()]);
    assert!(idle.next_actions().is_empty());
    assert_eq!(idle.status(), RunStatus::Succeeded);
}

#[test]
fn unexpected_outcomes_are_refused() {
    let mut run = parallel(&[s("a", &[]), s("b", &["a"])]);
    // Nothing dispatched yet.
    assert_eq!(run.record(0, false, ok()), Err(PlanError::UnexpectedOutcome { step: 0 }));
    run.next_actions();
    // b is pending, not running; 7 does not exist; no compensation is running.
    assert_eq!(run.record(1, false, ok()), Err(PlanError::UnexpectedOutcome { step: 1 }));
    assert_eq!(run.record(7, false, ok()), Err(PlanError::UnexpectedOutcome { step: 7 }));
    assert_eq!(run.record(0, true, ok()), Err(PlanError::UnexpectedOutcome { step: 0 }));
    run.record(0, false, ok()).unwrap();
    // Twice.
    assert_eq!(run.record(0, false, ok()), Err(PlanError::UnexpectedOutcome { step: 0 }));
    assert_eq!(run.step_states()[0], StepState::Succeeded { attempts: 1 });
}

// ---------------------------------------------------------------------------------------------
// Resume.

/// A scripted host: it calls `next_actions` after every outcome (as a real host does) and
/// completes in-flight work in a fixed order, journaling every outcome. After each journal
/// entry it keeps a snapshot: the states, the status, and what `next_actions` returned next.
struct Snapshot {
    states: Vec<StepState>,
    status: RunStatus,
    next: Vec<RunAction>,
}

fn drive(
    mut run: WorkflowRun,
    mut outcome: impl FnMut(usize, u32, bool) -> StepOutcome,
    lifo: bool,
) -> (Vec<JournalEntry>, Vec<Snapshot>) {
    let mut journal = Vec::new();
    let mut snapshots = Vec::new();
    let mut in_flight: Vec<RunAction> = run.next_actions();
    while !in_flight.is_empty() {
        let action = if lifo { in_flight.pop().unwrap() } else { in_flight.remove(0) };
        let (step, attempt, compensation) = match action {
            RunAction::Dispatch { step, attempt, .. } => (step, attempt, false),
            RunAction::Compensate { step, .. } => (step, 1, true),
        };
        let result = outcome(step, attempt, compensation);
        run.record(step, compensation, result.clone()).unwrap();
        journal.push(JournalEntry { step, attempt, compensation, outcome: result });
        let states = run.step_states().to_vec();
        let status = run.status();
        let next = run.next_actions();
        in_flight.extend(next.clone());
        snapshots.push(Snapshot { states, status, next });
    }
    (journal, snapshots)
}

fn key(action: &RunAction) -> (usize, u32, bool) {
    match action {
        RunAction::Dispatch { step, attempt, .. } => (*step, *attempt, false),
        RunAction::Compensate { step, .. } => (*step, 0, true),
    }
}

/// Resumes from every prefix of the journal and compares with the original run at that point.
fn check_resume(steps: &[S], outcome: impl FnMut(usize, u32, bool) -> StepOutcome + Clone, lifo: bool) {
    let planned = plan(&definition(steps, ExecutionMode::Parallel)).unwrap();
    let (journal, snapshots) = drive(WorkflowRun::new(planned.clone()), outcome, lifo);
    assert!(!journal.is_empty());
    for (k, snap) in snapshots.iter().enumerate() {
        let mut resumed = WorkflowRun::resume(planned.clone(), &journal[..=k]).unwrap();
        assert_eq!(resumed.step_states(), snap.states.as_slice(), "states after {} entries", k + 1);
        assert_eq!(resumed.status(), snap.status, "status after {} entries", k + 1);
        // What the original does next, plus the in-flight work dispatched again.
        let mut expected: BTreeSet<(usize, u32, bool)> = snap.next.iter().map(key).collect();
        for (i, st) in snap.states.iter().enumerate() {
            if let StepState::Running { attempt } = st {
                expected.insert((i, *attempt, false));
            }
        }
        let actions = resumed.next_actions();
        let got: BTreeSet<(usize, u32, bool)> = actions.iter().map(key).collect();
        assert_eq!(got.len(), actions.len(), "an action twice: {actions:?}");
        assert_eq!(got, expected, "next actions after {} entries", k + 1);
        // Full actions (operation, payload) agree with the original's for the new work.
        for a in &snap.next {
            assert!(actions.contains(a), "{a:?} missing from {actions:?}");
        }
        assert!(resumed.next_actions().is_empty(), "nothing new on a second call");
    }
    let resumed = WorkflowRun::resume(planned, &journal).unwrap();
    let last = snapshots.last().unwrap();
    assert_eq!(resumed.step_states(), last.states.as_slice());
    assert_eq!(resumed.status(), last.status);
    assert_ne!(last.status, RunStatus::Running);
}

fn diamond() -> Vec<S> {
    vec![
        s("a", &[]).compensation("svc.undo_a"),
        s("b", &[]).compensation("svc.undo_b"),
        s("c", &[]),
        s("d", &["a", "b"]).retries(2).compensation("svc.undo_d"),
        s("e", &["b", "c"]).on_error(ErrorAction::Continue),
        s("f", &["d", "e"]).on_error(ErrorAction::Compensate),
        s("g", &["d"]).compensation("svc.undo_g"),
    ]
}

#[test]
fn resume_matches_the_original_run_on_success() {
    for lifo in [false, true] {
        check_resume(&diamond(), |_, _, _| ok(), lifo);
    }
}

#[test]
fn resume_matches_the_original_run_with_retries_continue_and_compensation() {
    let outcome = |step: usize, attempt: u32, compensation: bool| match (step, attempt, compensation) {
        (3, 1 | 2, false) => fail("d flaky"),
        (4, _, false) => fail("e broken"),
        (5, _, false) => fail("f broken"),
        (0, _, true) => fail("undo a failed"),
        _ => ok(),
    };
    for lifo in [false, true] {
        check_resume(&diamond(), outcome, lifo);
    }
}

#[test]
fn resume_matches_the_original_run_when_it_stops() {
    let steps = vec![s("a", &[]), s("b", &[]).retries(1), s("c", &[]), s("d", &["a", "b", "c"])];
    let outcome = |step: usize, _: u32, _: bool| if step == 1 || step == 2 { fail("down") } else { ok() };
    for lifo in [false, true] {
        check_resume(&steps, outcome, lifo);
    }
}

#[test]
fn resume_redispatches_steps_without_an_outcome() {
    let planned = plan(&definition(&[s("a", &[]), s("b", &[]), s("c", &["a", "b"])], ExecutionMode::Parallel)).unwrap();
    let mut run = WorkflowRun::new(planned.clone());
    assert_eq!(sorted(dispatched(&run.next_actions())), [(0, 1), (1, 1)]);
    run.record(0, false, ok()).unwrap();
    // The host crashes: b was dispatched but its outcome never arrived.
    let journal = [JournalEntry { step: 0, attempt: 1, compensation: false, outcome: ok() }];
    let mut resumed = WorkflowRun::resume(planned, &journal).unwrap();
    assert_eq!(resumed.step_states(), run.step_states());
    assert_eq!(dispatched(&resumed.next_actions()), [(1, 1)], "b is dispatched again (at-least-once)");
    assert!(resumed.next_actions().is_empty());
    resumed.record(1, false, ok()).unwrap();
    assert_eq!(dispatched(&resumed.next_actions()), [(2, 1)]);
    resumed.record(2, false, ok()).unwrap();
    assert_eq!(resumed.status(), RunStatus::Succeeded);
}

#[test]
fn resume_refuses_a_journal_that_does_not_fit_the_plan() {
    let planned = plan(&definition(&[s("a", &[]), s("b", &["a"])], ExecutionMode::Parallel)).unwrap();
    let entry = |step, compensation| JournalEntry { step, attempt: 1, compensation, outcome: ok() };
    // b cannot have finished before a.
    assert_eq!(
        WorkflowRun::resume(planned.clone(), &[entry(1, false)]).unwrap_err(),
        PlanError::UnexpectedOutcome { step: 1 }
    );
    // a cannot finish twice, nor be compensated without a failure.
    assert_eq!(
        WorkflowRun::resume(planned.clone(), &[entry(0, false), entry(0, false)]).unwrap_err(),
        PlanError::UnexpectedOutcome { step: 0 }
    );
    assert_eq!(
        WorkflowRun::resume(planned, &[entry(0, false), entry(0, true)]).unwrap_err(),
        PlanError::UnexpectedOutcome { step: 0 }
    );
}

#[test]
fn journal_entries_round_trip_through_json() {
    let entry = JournalEntry { step: 3, attempt: 2, compensation: false, outcome: fail("x") };
    let text = serde_json::to_string(&entry).unwrap();
    let back: JournalEntry = serde_json::from_str(&text).unwrap();
    assert_eq!(back, entry);
    let value: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(value["outcome"]["status"], "failed");
}
