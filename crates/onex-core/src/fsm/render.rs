//! Drawing a state machine as Mermaid or Graphviz DOT.

use std::fmt::Write;

use crate::contract::{FromState, FsmContract};

fn sources(fsm: &FsmContract, from: &FromState) -> Vec<String> {
    match from {
        FromState::State(s) => vec![s.clone()],
        FromState::Any => fsm.states.iter().filter(|s| !s.is_terminal).map(|s| s.name.clone()).collect(),
    }
}

/// A Mermaid `stateDiagram-v2`.
pub fn to_mermaid(fsm: &FsmContract) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let _ = writeln!(out, "    [*] --> {}", fsm.initial_state);
    for t in &fsm.transitions {
        for from in sources(fsm, &t.from) {
            let guard = if t.conditions.is_empty() { String::new() } else { " [guarded]".to_owned() };
            let _ = writeln!(out, "    {from} --> {}: {}{guard}", t.to, t.trigger);
        }
    }
    for s in fsm.states.iter().filter(|s| s.is_terminal) {
        let _ = writeln!(out, "    {} --> [*]", s.name);
    }
    out
}

/// A Graphviz digraph.
pub fn to_dot(fsm: &FsmContract) -> String {
    let mut out = format!("digraph \"{}\" {{\n    rankdir=LR;\n    __start [shape=point];\n", fsm.name);
    for s in &fsm.states {
        let shape = if s.is_terminal { "doublecircle" } else { "circle" };
        let _ = writeln!(out, "    \"{}\" [shape={shape}];", s.name);
    }
    let _ = writeln!(out, "    __start -> \"{}\";", fsm.initial_state);
    for t in &fsm.transitions {
        for from in sources(fsm, &t.from) {
            let _ = writeln!(out, "    \"{from}\" -> \"{}\" [label=\"{}\"];", t.to, t.trigger);
        }
    }
    out.push_str("}\n");
    out
}
