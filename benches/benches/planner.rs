//! Planning a 1,000-step random DAG, next to the bare level-by-level Kahn pass over the same
//! pre-resolved edges (the baseline: what planning costs beyond the algorithm itself).
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use onex_benches::random_dag;
use onex_core::workflow::{plan, topological_waves};

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
