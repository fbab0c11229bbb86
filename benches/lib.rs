//! Fixtures shared by the benchmarks in `benches/benches/`: the bundled machines and
//! deterministic workflow graphs, built the same way for every run; and [`check`], a
//! benchmark's verdict on a target.
// Fixtures fail loudly: a benchmark on a broken fixture measures nothing.
#![allow(clippy::panic)]

pub mod check;

use onex_core::contract::{
    ContractDocument, ErrorAction, ExecutionMode, FsmContract, StepDef, StepType, WorkflowDefinition, WorkflowMetadata,
    load_document,
};
use onex_core::yaml::Pos;
use serde_json::Value;

/// The state machine of a bundled reducer contract, e.g. `infrastructure_state`.
pub fn bundled_state_machine(reducer: &str) -> FsmContract {
    let path = format!("{}/../contracts/reducers/{reducer}.yaml", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match load_document(&path, &bytes).map(|l| l.value) {
        Ok(ContractDocument::Node(node)) => node.state_machine.unwrap_or_else(|| panic!("{path}: no state_machine")),
        other => panic!("{path}: not a reducer contract: {other:?}"),
    }
}

/// A deterministic pseudo-random DAG of `n` steps (step i depends on up to 3 earlier steps),
/// with its dependency lists already resolved to indices.
pub fn random_dag(n: usize) -> (WorkflowDefinition, Vec<Vec<usize>>) {
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

/// `len` bytes of Python-like source: 4-space indentation, a blank line every few lines and
/// the two blank lines PEP 8 puts between top-level definitions (which normalisation collapses).
pub fn source_text(len: usize) -> Vec<u8> {
    let block = "def handler_{n}(event, context):\n    \"\"\"Process one event.\"\"\"\n    value = compute(event[\"payload\"], context)\n\n    if value is None:\n        return {\"status\": \"skipped\"}\n    return {\"status\": \"ok\", \"value\": value}\n\n\n";
    let mut out = String::with_capacity(len + block.len());
    let mut n = 0;
    while out.len() < len {
        out.push_str(&block.replace("{n}", &n.to_string()));
        n += 1;
    }
    out.truncate(len);
    out.into_bytes()
}
