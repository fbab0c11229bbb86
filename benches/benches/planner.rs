//! Planning a 1,000-step random DAG, next to the bare level-by-level Kahn pass over the same
//! pre-resolved edges (the baseline: what planning costs beyond the algorithm itself).
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use onex_core::contract::{ErrorAction, ExecutionMode, StepDef, StepType, WorkflowDefinition, WorkflowMetadata};
use onex_core::workflow::{plan, topological_waves};
use onex_core::yaml::Pos;
use serde_json::Value;

/// A deterministic pseudo-random DAG: step i depends on up to 3 earlier steps.
fn random_dag(n: usize) -> (WorkflowDefinition, Vec<Vec<usize>>) {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut deps = Vec::with_capacity(n);
    let steps = (0..n)
        .map(|i| {
            let mut d: Vec<usize> =
                if i == 0 { Vec::new() } else { (0..next() % 4).map(|_| (next() % i as u64) as usize).collect() };
            d.sort_unstable();
            d.dedup();
            let step = StepDef {
                name: format!("step_{i}"),
                step_id: None,
                step_type: StepType::Effect,
                operation: "local.echo".into(),
                payload: Value::Null,
                depends_on: d.iter().map(|j| format!("step_{j}")).collect(),
                timeout_ms: None,
                retry_count: 0,
                error_action: ErrorAction::Stop,
                compensation: None,
                enabled: true,
                pos: Pos::default(),
            };
            deps.push(d);
            step
        })
        .collect();
    let metadata = WorkflowMetadata {
        workflow_name: "bench".into(),
        workflow_version: "1.0.0".into(),
        description: None,
        execution_mode: ExecutionMode::Parallel,
        timeout_ms: None,
    };
    (WorkflowDefinition { metadata, steps, pos: Pos::default() }, deps)
}

fn bench(c: &mut Criterion) {
    let (definition, deps) = random_dag(1000);
    let mut group = c.benchmark_group("plan_1000_step_dag");
    group.bench_function("baseline_kahn_on_resolved_edges", |b| {
        b.iter(|| black_box(topological_waves(black_box(&deps)).unwrap()))
    });
    group.bench_function("plan", |b| b.iter(|| black_box(plan(black_box(&definition)).unwrap())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
