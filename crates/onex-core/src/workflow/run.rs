//! The state of one workflow run: it takes step outcomes and says what to run next, so the
//! host only does I/O. Replaying a run's journal rebuilds the same state after a restart.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::plan::{PlanError, WorkflowPlan};
use crate::contract::ErrorAction;
use crate::envelope::ReplyError;

/// How one attempt of a step ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step's operation succeeded with this output.
    Succeeded {
        /// Reply payload.
        output: Json,
    },
    /// The step's operation failed (after the handler's own resilience).
    Failed {
        /// Why.
        error: ReplyError,
    },
}

/// A journal line: the outcome of one attempt of one step (or of its compensation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Step index.
    pub step: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// True for the step's compensation.
    pub compensation: bool,
    /// What happened.
    pub outcome: StepOutcome,
}

/// Something the host must do for the run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunAction {
    /// Dispatch the step's operation.
    Dispatch {
        /// Step index.
        step: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// Operation to dispatch.
        operation: String,
        /// Payload to send.
        payload: Json,
        /// Timeout of this attempt.
        timeout_ms: Option<u64>,
    },
    /// Dispatch the step's compensation.
    Compensate {
        /// Step index being undone.
        step: usize,
        /// Compensation operation.
        operation: String,
        /// The step's original payload.
        payload: Json,
    },
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StepState {
    /// Not started.
    Pending,
    /// Dispatched, outcome not yet recorded.
    Running {
        /// Current attempt.
        attempt: u32,
    },
    /// Finished successfully.
    Succeeded {
        /// Attempts used.
        attempts: u32,
    },
    /// Failed for good.
    Failed {
        /// Attempts used.
        attempts: u32,
        /// Last error.
        error: ReplyError,
    },
    /// Disabled, or not run because the workflow stopped.
    Skipped,
    /// Succeeded, then undone.
    Compensated,
}

/// Overall status of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// Work remains.
    Running,
    /// Every step succeeded (or failed with `continue`, or was disabled).
    Succeeded,
    /// A step failed and stopped the run.
    Failed {
        /// The failing step.
        step: usize,
        /// Its error.
        error: ReplyError,
    },
    /// A step failed and the completed steps were compensated.
    Compensated {
        /// The failing step.
        step: usize,
        /// Its error.
        error: ReplyError,
    },
}

/// A run in progress.
#[derive(Debug, Clone)]
pub struct WorkflowRun {
    plan: WorkflowPlan,
    states: Vec<StepState>,
    wave: usize,
    failure: Option<(usize, ReplyError, bool)>,
    completed_order: Vec<usize>,
    compensating: Option<usize>,
    /// Failed attempts waiting to be dispatched again: (step, next attempt, last error).
    redispatch: Vec<(usize, u32, ReplyError)>,
    /// After [`WorkflowRun::resume`]: steps left running by the journal (dispatched, outcome
    /// never recorded), to dispatch again on the next [`WorkflowRun::next_actions`].
    replayed_in_flight: Vec<usize>,
}

impl WorkflowRun {
    /// A fresh run of `plan`.
    pub fn new(plan: WorkflowPlan) -> Self {
        let states =
            plan.steps.iter().map(|s| if s.enabled { StepState::Pending } else { StepState::Skipped }).collect();
        Self {
            plan,
            states,
            wave: 0,
            failure: None,
            completed_order: Vec::new(),
            compensating: None,
            redispatch: Vec::new(),
            replayed_in_flight: Vec::new(),
        }
    }

    /// Rebuilds a run from its journal. Steps that were dispatched but have no outcome are
    /// dispatched again by the next [`WorkflowRun::next_actions`] (at-least-once).
    pub fn resume(plan: WorkflowPlan, journal: &[JournalEntry]) -> Result<Self, PlanError> {
        let mut run = Self::new(plan);
        for entry in journal {
            run.next_actions();
            run.record(entry.step, entry.compensation, entry.outcome.clone())?;
        }
        run.replayed_in_flight =
            (0..run.states.len()).filter(|&i| matches!(run.states[i], StepState::Running { .. })).collect();
        Ok(run)
    }

    /// The plan being run.
    pub fn plan(&self) -> &WorkflowPlan {
        &self.plan
    }

    /// Every step's state, in declaration order.
    pub fn step_states(&self) -> &[StepState] {
        &self.states
    }

    /// Marks what can start now as running and returns it. Calling it again before recording
    /// outcomes returns nothing new.
    pub fn next_actions(&mut self) -> Vec<RunAction> {
        let mut actions: Vec<RunAction> = std::mem::take(&mut self.replayed_in_flight)
            .into_iter()
            .filter_map(|i| match self.states[i] {
                StepState::Running { attempt } => Some(self.dispatch(i, attempt)),
                _ => None,
            })
            .collect();
        if self.failure.is_some() {
            actions.extend(self.next_compensation());
            return actions;
        }
        actions.extend(std::mem::take(&mut self.redispatch).into_iter().map(|(i, attempt, _)| {
            self.states[i] = StepState::Running { attempt };
            self.dispatch(i, attempt)
        }));
        while self.wave < self.plan.waves.len() {
            for &i in &self.plan.waves[self.wave] {
                if self.states[i] == StepState::Pending {
                    self.states[i] = StepState::Running { attempt: 1 };
                    actions.push(self.dispatch(i, 1));
                }
            }
            if !self.wave_done() {
                break;
            }
            self.wave += 1;
        }
        actions
    }

    fn dispatch(&self, i: usize, attempt: u32) -> RunAction {
        let s = &self.plan.steps[i];
        RunAction::Dispatch {
            step: i,
            attempt,
            operation: s.operation.clone(),
            payload: s.payload.clone(),
            timeout_ms: s.timeout_ms,
        }
    }

    fn wave_done(&self) -> bool {
        self.plan.waves[self.wave]
            .iter()
            .all(|&i| !matches!(self.states[i], StepState::Pending | StepState::Running { .. }))
    }

    fn anything_running(&self) -> bool {
        self.states.iter().any(|s| matches!(s, StepState::Running { .. }))
    }

    fn next_compensation(&mut self) -> Option<RunAction> {
        let (_, _, compensate) = self.failure.as_ref()?;
        if !*compensate || self.compensating.is_some() || self.anything_running() {
            return None;
        }
        while let Some(i) = self.completed_order.pop() {
            if let Some(op) = &self.plan.steps[i].compensation {
                self.compensating = Some(i);
                return Some(RunAction::Compensate {
                    step: i,
                    operation: op.clone(),
                    payload: self.plan.steps[i].payload.clone(),
                });
            }
        }
        None
    }

    /// Records the outcome of the running attempt of `step` (or of its compensation).
    pub fn record(&mut self, step: usize, compensation: bool, outcome: StepOutcome) -> Result<(), PlanError> {
        if compensation {
            if self.compensating != Some(step) {
                return Err(PlanError::UnexpectedOutcome { step });
            }
            self.compensating = None;
            // A failed compensation is recorded in the journal; the step stays succeeded.
            if matches!(outcome, StepOutcome::Succeeded { .. }) {
                self.states[step] = StepState::Compensated;
            }
            return Ok(());
        }
        let Some(StepState::Running { attempt }) = self.states.get(step).cloned() else {
            return Err(PlanError::UnexpectedOutcome { step });
        };
        let planned = &self.plan.steps[step];
        match outcome {
            StepOutcome::Succeeded { .. } => {
                self.states[step] = StepState::Succeeded { attempts: attempt };
                self.completed_order.push(step);
            }
            StepOutcome::Failed { error } => match planned.error_action {
                // Once the run has failed, no new attempt is started.
                ErrorAction::Retry if attempt <= planned.retry_count && self.failure.is_none() => {
                    self.states[step] = StepState::Pending;
                    self.redispatch.push((step, attempt + 1, error));
                }
                ErrorAction::Continue => self.states[step] = StepState::Failed { attempts: attempt, error },
                action => {
                    self.states[step] = StepState::Failed { attempts: attempt, error: error.clone() };
                    if self.failure.is_none() {
                        self.failure = Some((step, error, action == ErrorAction::Compensate));
                    }
                    for (i, attempts, error) in std::mem::take(&mut self.redispatch) {
                        self.states[i] = StepState::Failed { attempts: attempts - 1, error };
                    }
                    for s in &mut self.states {
                        if *s == StepState::Pending {
                            *s = StepState::Skipped;
                        }
                    }
                }
            },
        }
        Ok(())
    }

    /// The run's overall status.
    pub fn status(&self) -> RunStatus {
        if let Some((step, error, compensate)) = &self.failure {
            let settled = !self.anything_running() && self.compensating.is_none();
            let pending_comp =
                *compensate && self.completed_order.iter().any(|&i| self.plan.steps[i].compensation.is_some());
            return match (settled && !pending_comp, compensate) {
                (false, _) => RunStatus::Running,
                (true, true) => RunStatus::Compensated { step: *step, error: error.clone() },
                (true, false) => RunStatus::Failed { step: *step, error: error.clone() },
            };
        }
        if self.states.iter().all(|s| !matches!(s, StepState::Pending | StepState::Running { .. })) {
            RunStatus::Succeeded
        } else {
            RunStatus::Running
        }
    }
}
