//! Workflows: pure planning into waves and the run state machine the host drives.

mod plan;
mod run;

pub use plan::{PlanError, PlannedStep, WorkflowPlan, plan, topological_waves};
pub use run::{JournalEntry, RunAction, RunStatus, StepOutcome, StepState, WorkflowRun};
