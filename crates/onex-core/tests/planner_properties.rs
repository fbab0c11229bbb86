//! Properties of the workflow planner over random DAGs declared in random order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};

use onex_core::contract::{ErrorAction, ExecutionMode, StepDef, StepType, WorkflowDefinition, WorkflowMetadata};
use onex_core::workflow::{PlanError, WorkflowPlan, plan, topological_waves};
use onex_core::yaml::Pos;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value as Json;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// A DAG over steps `0..n` (each depends only on lower numbers) and the order the steps are
/// declared in.
#[derive(Debug, Clone)]
struct Dag {
    deps: Vec<Vec<usize>>,
    order: Vec<usize>,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..60).prop_flat_map(|n| {
        let deps = prop::collection::vec(prop::collection::vec(any::<Index>(), 0..5), n).prop_map(|picks| {
            picks
                .into_iter()
                .enumerate()
                .map(|(i, picks)| {
                    let mut ds: Vec<usize> =
                        if i == 0 { Vec::new() } else { picks.iter().map(|p| p.index(i)).collect() };
                    ds.sort_unstable();
                    ds.dedup();
                    ds
                })
                .collect::<Vec<_>>()
        });
        (deps, Just((0..n).collect::<Vec<usize>>()).prop_shuffle()).prop_map(|(deps, order)| Dag { deps, order })
    })
}

fn name(i: usize) -> String {
    format!("step_{i}")
}

fn step(name: String, depends_on: Vec<String>) -> StepDef {
    StepDef {
        name,
        step_id: None,
        step_type: StepType::Effect,
        operation: "handler.op".to_owned(),
        payload: Json::Null,
        depends_on,
        timeout_ms: None,
        retry_count: 0,
        error_action: ErrorAction::Stop,
        compensation: None,
        enabled: true,
        pos: Pos::default(),
    }
}

/// The workflow of `deps` (by step number), declared in `order`.
fn definition(deps: &[Vec<usize>], order: &[usize], mode: ExecutionMode) -> WorkflowDefinition {
    WorkflowDefinition {
        metadata: WorkflowMetadata {
            workflow_name: "generated".to_owned(),
            workflow_version: "1.0.0".to_owned(),
            description: None,
            execution_mode: mode,
            timeout_ms: None,
        },
        steps: order.iter().map(|&i| step(name(i), deps[i].iter().map(|&d| name(d)).collect())).collect(),
        pos: Pos::default(),
    }
}

/// Wave number of every planned step (declaration index), checking each appears exactly once.
fn wave_of(plan: &WorkflowPlan) -> Result<Vec<usize>, TestCaseError> {
    let mut wave = vec![usize::MAX; plan.steps.len()];
    for (k, w) in plan.waves.iter().enumerate() {
        prop_assert!(!w.is_empty(), "wave {k} is empty");
        for &i in w {
            prop_assert!(i < plan.steps.len(), "wave {k} holds unknown index {i}");
            prop_assert_eq!(wave[i], usize::MAX, "step {} is in two waves", i);
            wave[i] = k;
        }
    }
    prop_assert!(wave.iter().all(|&w| w != usize::MAX), "some step is in no wave: {:?}", plan.waves);
    Ok(wave)
}

/// Dependency sets by step name, from the definition.
fn edges(def: &WorkflowDefinition) -> HashMap<&str, HashSet<&str>> {
    def.steps.iter().map(|s| (s.name.as_str(), s.depends_on.iter().map(String::as_str).collect())).collect()
}

/// Steps `i` depends on, directly or not.
fn ancestors(deps: &[Vec<usize>], i: usize) -> Vec<usize> {
    let mut seen = HashSet::new();
    let mut stack = deps[i].clone();
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            stack.extend(&deps[d]);
        }
    }
    let mut all: Vec<usize> = seen.into_iter().collect();
    all.sort_unstable();
    all
}

proptest! {
    #![proptest_config(config())]

    /// (a)-(d): acyclic graphs plan; each step is in exactly one wave, after all of its
    /// dependencies, and as early as possible.
    #[test]
    fn acyclic_graphs_plan_into_earliest_waves(dag in dag()) {
        let def = definition(&dag.deps, &dag.order, ExecutionMode::Parallel);
        let planned = plan(&def);
        prop_assert!(planned.is_ok(), "{:?}", planned.err());
        let planned = planned.unwrap();
        prop_assert_eq!(planned.steps.len(), def.steps.len());
        let wave = wave_of(&planned)?;
        for (i, s) in planned.steps.iter().enumerate() {
            prop_assert_eq!(s.index, i);
            prop_assert_eq!(&s.name, &def.steps[i].name);
            let dep_names: HashSet<&str> = s.depends_on.iter().map(|&d| planned.steps[d].name.as_str()).collect();
            let declared: HashSet<&str> = def.steps[i].depends_on.iter().map(String::as_str).collect();
            prop_assert_eq!(dep_names, declared);
            for &d in &s.depends_on {
                prop_assert!(wave[d] < wave[i], "{} (wave {}) depends on {} (wave {})", s.name, wave[i], planned.steps[d].name, wave[d]);
            }
            let earliest = s.depends_on.iter().map(|&d| wave[d] + 1).max().unwrap_or(0);
            prop_assert_eq!(wave[i], earliest, "{} is not in its earliest wave", &s.name);
        }
        for w in &planned.waves {
            prop_assert!(w.windows(2).all(|p| p[0] < p[1]), "wave not in declaration order: {:?}", w);
        }
    }

    /// (e) One back edge closing a cycle is reported as a real cycle of the graph.
    #[test]
    fn a_back_edge_is_reported_as_a_real_cycle(dag in dag(), pick_a in any::<Index>(), pick_b in any::<Index>()) {
        let mut deps = dag.deps.clone();
        let n = deps.len();
        let a = pick_a.index(n);
        // b is `a` itself or something `a` depends on; `b depends on a` closes a cycle.
        let mut reachable = ancestors(&deps, a);
        reachable.push(a);
        let b = reachable[pick_b.index(reachable.len())];
        deps[b].push(a);
        let def = definition(&deps, &dag.order, ExecutionMode::Parallel);
        let errors = plan(&def).expect_err("a cyclic workflow was planned");
        let cycles: Vec<&Vec<String>> = errors.iter().filter_map(|e| match e { PlanError::Cycle { steps } => Some(steps), _ => None }).collect();
        prop_assert_eq!(cycles.len(), 1, "{:?}", errors);
        let cycle = cycles[0];
        prop_assert!(cycle.len() >= 2, "{:?}", cycle);
        prop_assert_eq!(cycle.first(), cycle.last());
        let inner: HashSet<&String> = cycle[1..].iter().collect();
        prop_assert_eq!(inner.len(), cycle.len() - 1, "the cycle repeats a step: {:?}", cycle);
        let edges = edges(&def);
        let depends = |x: &str, y: &str| edges.get(x).is_some_and(|ds| ds.contains(y));
        // Either each step depends on the next, or each is depended on by the next.
        let forward = cycle.windows(2).all(|p| depends(&p[0], &p[1]));
        let backward = cycle.windows(2).all(|p| depends(&p[1], &p[0]));
        prop_assert!(forward || backward, "not a cycle of the graph: {:?}", cycle);
        // The message lists the cycle.
        let message = PlanError::Cycle { steps: cycle.clone() }.to_string();
        prop_assert!(message.contains(&cycle.join(" -> ")));
    }

    /// (f) A dependency on a name no step has is reported with the step and the name.
    #[test]
    fn unknown_dependencies_are_named(dag in dag(), pick in any::<Index>(), ghost in "[a-z]{1,8}") {
        let mut def = definition(&dag.deps, &dag.order, ExecutionMode::Parallel);
        let k = pick.index(def.steps.len());
        let missing = format!("ghost_{ghost}");
        def.steps[k].depends_on.push(missing.clone());
        let errors = plan(&def).expect_err("an unknown dependency was planned");
        let expected = PlanError::UnknownDependency { step: def.steps[k].name.clone(), dependency: missing };
        prop_assert!(errors.contains(&expected), "{:?}", errors);
        prop_assert_eq!(errors.len(), 1, "{:?}", errors);
    }

    /// (g) Sequential mode runs one step per wave, in a topological order.
    #[test]
    fn sequential_mode_is_one_step_per_wave_in_topological_order(dag in dag()) {
        let def = definition(&dag.deps, &dag.order, ExecutionMode::Sequential);
        let planned = plan(&def).unwrap();
        prop_assert!(planned.waves.iter().all(|w| w.len() == 1), "{:?}", planned.waves);
        let order: Vec<usize> = planned.waves.iter().flatten().copied().collect();
        let mut position = vec![usize::MAX; order.len()];
        for (p, &i) in order.iter().enumerate() {
            prop_assert_eq!(position[i], usize::MAX, "step {} appears twice", i);
            position[i] = p;
        }
        prop_assert_eq!(order.len(), def.steps.len());
        for s in &planned.steps {
            for &d in &s.depends_on {
                prop_assert!(position[d] < position[s.index], "{} runs before its dependency {}", s.name, planned.steps[d].name);
            }
        }
    }

    /// `topological_waves` on raw index lists: the same levels, and one real cycle otherwise.
    #[test]
    fn raw_topological_waves(dag in dag(), extra in prop::option::of((any::<Index>(), any::<Index>()))) {
        let mut deps = dag.deps.clone();
        if let Some((a, b)) = extra {
            let n = deps.len();
            let (a, b) = (a.index(n), b.index(n));
            deps[a].push(b);
        }
        match topological_waves(&deps) {
            Ok(waves) => {
                let mut wave = vec![usize::MAX; deps.len()];
                for (k, w) in waves.iter().enumerate() {
                    for &i in w {
                        prop_assert_eq!(wave[i], usize::MAX);
                        wave[i] = k;
                    }
                }
                for (i, ds) in deps.iter().enumerate() {
                    prop_assert_eq!(wave[i], ds.iter().map(|&d| wave[d] + 1).max().unwrap_or(0));
                }
            }
            Err(cycle) => {
                prop_assert!(extra.is_some(), "a DAG was reported cyclic: {:?}", cycle);
                prop_assert!(cycle.len() >= 2);
                prop_assert_eq!(cycle.first(), cycle.last());
                // Each element is a dependency of the next.
                prop_assert!(cycle.windows(2).all(|p| deps[p[1]].contains(&p[0])), "{:?}", cycle);
            }
        }
    }
}

#[test]
fn empty_and_duplicate_workflows_are_refused() {
    let empty = definition(&[], &[], ExecutionMode::Parallel);
    assert_eq!(plan(&empty).unwrap_err(), vec![PlanError::Empty]);
    let mut dup = definition(&[vec![], vec![0]], &[0, 1], ExecutionMode::Parallel);
    dup.steps[1].name = name(0);
    let errors = plan(&dup).unwrap_err();
    assert!(errors.contains(&PlanError::DuplicateStep { steps: vec![name(0)] }), "{errors:?}");
}

#[test]
fn self_dependency_is_a_cycle_of_one() {
    let def = definition(&[vec![0]], &[0], ExecutionMode::Parallel);
    assert_eq!(plan(&def).unwrap_err(), vec![PlanError::Cycle { steps: vec![name(0), name(0)] }]);
}
