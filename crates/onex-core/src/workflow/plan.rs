//! Planning: a workflow definition becomes topological waves (pure, O(steps + edges)).

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::contract::{ErrorAction, ExecutionMode, WorkflowDefinition};
use crate::error::{Classified, ErrorCode, codes};

/// Why a workflow cannot be planned or advanced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Steps that depend on each other in a cycle, in cycle order.
    #[error("dependency cycle: {}", steps.join(" -> "))]
    Cycle {
        /// The steps on the cycle; the first is repeated at the end.
        steps: Vec<String>,
    },
    /// `depends_on` names no step.
    #[error("step `{step}` depends on unknown step `{dependency}`")]
    UnknownDependency {
        /// The depending step.
        step: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Two steps share a name.
    #[error("step name `{}` is used more than once", steps[0])]
    DuplicateStep {
        /// The repeated name.
        steps: Vec<String>,
    },
    /// No steps at all.
    #[error("a workflow needs at least one step")]
    Empty,
    /// An outcome for a step the run is not waiting on.
    #[error("workflow run is not waiting on step {step}")]
    UnexpectedOutcome {
        /// Step index given.
        step: usize,
    },
}

impl Classified for PlanError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Cycle { .. } => codes::WORKFLOW_CYCLE,
            Self::UnknownDependency { .. } => codes::WORKFLOW_UNKNOWN_DEPENDENCY,
            Self::DuplicateStep { .. } | Self::Empty => codes::WORKFLOW_DUPLICATE_STEP,
            Self::UnexpectedOutcome { .. } => codes::WORKFLOW_UNEXPECTED_OUTCOME,
        }
    }
}

/// A step ready to execute, with dependencies resolved to indices.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// Index in [`WorkflowPlan::steps`] (declaration order).
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Operation dispatched.
    pub operation: String,
    /// Static payload.
    pub payload: Json,
    /// Indices of the steps it waits for.
    pub depends_on: Vec<usize>,
    /// Timeout of one attempt.
    pub timeout_ms: Option<u64>,
    /// Extra attempts when `error_action` is `retry`.
    pub retry_count: u32,
    /// What a final failure does.
    pub error_action: ErrorAction,
    /// Undo operation.
    pub compensation: Option<String>,
    /// Whether the step runs at all.
    pub enabled: bool,
}

/// The executable plan of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowPlan {
    /// Workflow name.
    pub name: String,
    /// Whole-run timeout.
    pub timeout_ms: Option<u64>,
    /// Steps in declaration order.
    pub steps: Vec<PlannedStep>,
    /// Waves of step indices: every step's dependencies are in earlier waves. In sequential
    /// mode each wave holds one step.
    pub waves: Vec<Vec<usize>>,
}

/// Plans `def`, reporting every problem found (unknown dependencies, duplicates, one cycle).
pub fn plan(def: &WorkflowDefinition) -> Result<WorkflowPlan, Vec<PlanError>> {
    if def.steps.is_empty() {
        return Err(vec![PlanError::Empty]);
    }
    let mut errors = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(def.steps.len() * 2);
    for (i, s) in def.steps.iter().enumerate() {
        if by_name.insert(&s.name, i).is_some() {
            errors.push(PlanError::DuplicateStep { steps: vec![s.name.clone()] });
        }
    }
    for (i, s) in def.steps.iter().enumerate() {
        if let Some(id) = &s.step_id {
            by_name.entry(id).or_insert(i);
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(def.steps.len());
    for s in &def.steps {
        let mut resolved = Vec::with_capacity(s.depends_on.len());
        for d in &s.depends_on {
            match by_name.get(d.as_str()) {
                Some(&j) => resolved.push(j),
                None => errors.push(PlanError::UnknownDependency { step: s.name.clone(), dependency: d.clone() }),
            }
        }
        resolved.sort_unstable();
        resolved.dedup();
        deps.push(resolved);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let waves = match topological_waves(&deps) {
        Ok(waves) => waves,
        Err(cycle) => {
            let steps = cycle.iter().map(|&i| def.steps[i].name.clone()).collect();
            return Err(vec![PlanError::Cycle { steps }]);
        }
    };
    let waves = if def.metadata.execution_mode == ExecutionMode::Sequential {
        waves.into_iter().flatten().map(|i| vec![i]).collect()
    } else {
        waves
    };
    let steps = def
        .steps
        .iter()
        .zip(deps)
        .enumerate()
        .map(|(index, (s, depends_on))| PlannedStep {
            index,
            name: s.name.clone(),
            operation: s.operation.clone(),
            payload: s.payload.clone(),
            depends_on,
            timeout_ms: s.timeout_ms,
            retry_count: s.retry_count,
            error_action: s.error_action,
            compensation: s.compensation.clone(),
            enabled: s.enabled,
        })
        .collect();
    Ok(WorkflowPlan { name: def.metadata.workflow_name.clone(), timeout_ms: def.metadata.timeout_ms, steps, waves })
}

/// Kahn's algorithm by levels. `Err` holds one cycle (first node repeated at the end).
pub fn topological_waves(deps: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, Vec<usize>> {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependants[d].push(i);
        }
    }
    let mut wave: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut waves = Vec::new();
    let mut placed = 0;
    while !wave.is_empty() {
        placed += wave.len();
        let mut next = Vec::new();
        for &i in &wave {
            for &j in &dependants[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        waves.push(std::mem::replace(&mut wave, next));
    }
    if placed == n {
        return Ok(waves);
    }
    // Every unplaced node has an unplaced dependency: walking those must revisit a node.
    let mut seen_at = vec![usize::MAX; n];
    let mut path = Vec::new();
    let mut current = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    while seen_at[current] == usize::MAX {
        seen_at[current] = path.len();
        path.push(current);
        current = deps[current].iter().copied().find(|&d| indegree[d] > 0).unwrap_or(current);
    }
    let mut cycle: Vec<usize> = path[seen_at[current]..].to_vec();
    cycle.reverse();
    cycle.push(cycle[0]);
    Err(cycle)
}
