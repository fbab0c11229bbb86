//! FSM step throughput on the bundled `infrastructure_state` machine, next to a hand-written
//! `match` state machine doing the same walk (the baseline), and with two guard conditions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onex_benches::bundled_state_machine;
use onex_core::contract::{ContractDocument, FsmContract, load_document};
use onex_core::fsm::{FsmEngine, StepResult};
use serde_json::json;

const CYCLE: [(&str, &str); 4] = [
    ("healthy", "service_degraded"),
    ("degraded", "service_failed"),
    ("unhealthy", "partial_recovery"),
    ("degraded", "service_recovered"),
];

fn guarded(mut fsm: FsmContract) -> FsmContract {
    let yaml = r#"
state_machine_name: guard
initial_state: a
states: [{state_name: a}, {state_name: b}]
transitions:
  - transition_name: t
    from_state: a
    to_state: b
    trigger: go
    conditions:
      - {condition_name: score, expression: "health_score >= 50"}
      - {condition_name: region, expression: "region in [eu, us]"}
"#;
    let ContractDocument::Fsm(g) = load_document("guard", yaml.as_bytes()).unwrap().value else { unreachable!() };
    let conditions = g.transitions[0].conditions.clone();
    for t in &mut fsm.transitions {
        t.conditions = conditions.clone();
    }
    fsm
}

/// The baseline: the same machine written by hand.
fn hand_written(state: &str, event: &str) -> Option<&'static str> {
    match (state, event) {
        (_, "shutdown_requested") if state != "shutdown" => Some("shutdown"),
        ("initializing", "initialization_complete") => Some("healthy"),
        ("healthy", "service_degraded") => Some("degraded"),
        ("degraded", "service_recovered") => Some("healthy"),
        ("degraded", "service_failed") => Some("unhealthy"),
        ("unhealthy", "partial_recovery") => Some("degraded"),
        _ => None,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fsm_step");
    group.throughput(Throughput::Elements(CYCLE.len() as u64));
    let ctx = json!({"health_score": 80, "region": "eu"});

    group.bench_function("baseline_hand_written_match", |b| {
        b.iter(|| {
            for (state, event) in CYCLE {
                black_box(hand_written(black_box(state), black_box(event)));
            }
        })
    });

    let engine = FsmEngine::compile(bundled_state_machine("infrastructure_state"));
    group.bench_function("engine_infrastructure_state", |b| {
        b.iter(|| {
            for (state, event) in CYCLE {
                let r = engine.step(black_box(state), black_box(event), &ctx).unwrap();
                black_box(matches!(r, StepResult::Moved { .. }));
            }
        })
    });

    let guarded_engine = FsmEngine::compile(guarded(bundled_state_machine("infrastructure_state")));
    group.bench_function("engine_two_conditions", |b| {
        b.iter(|| {
            for (state, event) in CYCLE {
                let r = guarded_engine.step(black_box(state), black_box(event), &ctx).unwrap();
                black_box(matches!(r, StepResult::Moved { .. }));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
