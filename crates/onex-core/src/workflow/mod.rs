//! Workflows: pure planning into waves and the run state machine the host drives.

mod plan;
mod run;

pub use plan::{plan, topological_waves, PlanError, PlannedStep, WorkflowPlan};
pub use run::{JournalEntry, RunAction, RunStatus, StepOutcome, StepState, WorkflowRun};
