//! The FSM engine: a contract compiled once into a (state x trigger) table, stepped without
//! allocating on the unguarded path.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::FsmError;
use crate::contract::{ConditionDef, FromState, FsmContract};

/// Which part of a step produced an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentPhase {
    /// An exit action of the state left.
    Exit,
    /// An action of the transition.
    Transition,
    /// An entry action of the state entered.
    Entry,
    /// The host must persist the new state (persistence enabled).
    Persist,
}

/// Work a reducer asks the host to do; published after the new state is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The action name (or `persist_state`).
    pub intent_type: String,
    /// Where in the step it came from.
    pub phase: IntentPhase,
    /// The state machine.
    pub fsm: String,
    /// State left.
    pub from_state: String,
    /// State entered.
    pub to_state: String,
    /// The action's configuration.
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub config: Json,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult<'e> {
    /// The machine moved (possibly to the same state).
    Moved {
        /// Name of the transition taken.
        transition: &'e str,
        /// New state.
        to: &'e str,
        /// Intents in order: exit, transition, entry, persist.
        intents: &'e [Intent],
    },
    /// A required condition failed; the state is unchanged.
    Blocked {
        /// Name of the transition that was refused.
        transition: &'e str,
        /// The condition that failed.
        condition: &'e str,
        /// Why (the condition's error message, or a generated one).
        reason: String,
    },
}

impl StepResult<'_> {
    /// The state after the step, given the state before it.
    pub fn state<'a>(&'a self, before: &'a str) -> &'a str {
        match self {
            Self::Moved { to, .. } => to,
            Self::Blocked { .. } => before,
        }
    }
}

#[derive(Debug)]
struct Candidate {
    transition: usize,
    to: usize,
    intents: Box<[Intent]>,
}

/// A compiled state machine. Cheap to share (`Arc` inside); steps are `&self`.
#[derive(Debug, Clone)]
pub struct FsmEngine {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    contract: FsmContract,
    states: HashMap<Box<str>, usize>,
    triggers: HashMap<Box<str>, usize>,
    /// `table[state * triggers + trigger]`: candidates, exact before `*`, priority descending.
    table: Vec<Box<[Candidate]>>,
    terminal: Vec<bool>,
}

impl FsmEngine {
    /// Compiles a contract (already validated by the loader).
    pub fn compile(contract: FsmContract) -> Self {
        let states: HashMap<Box<str>, usize> =
            contract.states.iter().enumerate().map(|(i, s)| (Box::from(s.name.as_str()), i)).collect();
        let mut triggers: HashMap<Box<str>, usize> = HashMap::new();
        for t in &contract.transitions {
            let next = triggers.len();
            triggers.entry(Box::from(t.trigger.as_str())).or_insert(next);
        }
        let terminal: Vec<bool> = contract.states.iter().map(|s| s.is_terminal).collect();
        let width = triggers.len();
        let mut cells: Vec<Vec<(bool, i64, Candidate)>> = (0..states.len() * width).map(|_| Vec::new()).collect();
        for (ti, t) in contract.transitions.iter().enumerate() {
            let (Some(&to), Some(&trigger)) = (states.get(t.to.as_str()), triggers.get(t.trigger.as_str())) else {
                continue;
            };
            for (si, state) in contract.states.iter().enumerate() {
                let exact = match &t.from {
                    FromState::State(f) if f == &state.name => true,
                    FromState::Any if !terminal[si] => false,
                    _ => continue,
                };
                let intents = intents_for(&contract, si, ti, to);
                cells[si * width + trigger].push((exact, t.priority, Candidate { transition: ti, to, intents }));
            }
        }
        let table = cells
            .into_iter()
            .map(|mut c| {
                c.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
                c.into_iter().map(|(_, _, cand)| cand).collect()
            })
            .collect();
        Self { inner: Arc::new(Compiled { contract, states, triggers, table, terminal }) }
    }

    /// The contract compiled.
    pub fn contract(&self) -> &FsmContract {
        &self.inner.contract
    }

    /// The state a new entity starts in.
    pub fn initial_state(&self) -> &str {
        &self.inner.contract.initial_state
    }

    /// Whether `state` is declared and terminal.
    pub fn is_terminal(&self, state: &str) -> bool {
        self.inner.states.get(state).is_some_and(|&i| self.inner.terminal[i])
    }

    /// Applies `trigger` to an entity in `state`. `context` is what conditions read (the
    /// event payload, typically merged with entity data by the host).
    pub fn step(&self, state: &str, trigger: &str, context: &Json) -> Result<StepResult<'_>, FsmError> {
        let c = &*self.inner;
        let &si = c
            .states
            .get(state)
            .ok_or_else(|| FsmError::UnknownState { fsm: c.contract.name.clone(), state: state.to_owned() })?;
        let no_transition = || FsmError::NoTransition {
            fsm: c.contract.name.clone(),
            state: state.to_owned(),
            trigger: trigger.to_owned(),
            terminal: c.terminal[si],
        };
        let &ti = c.triggers.get(trigger).ok_or_else(no_transition)?;
        let candidates = &c.table[si * c.triggers.len() + ti];
        let mut first_block: Option<StepResult<'_>> = None;
        for cand in candidates.iter() {
            let t = &c.contract.transitions[cand.transition];
            match failed_condition(&t.conditions, context) {
                None => {
                    return Ok(StepResult::Moved {
                        transition: &t.name,
                        to: &c.contract.states[cand.to].name,
                        intents: &cand.intents,
                    });
                }
                Some((cond, reason)) => {
                    first_block.get_or_insert(StepResult::Blocked {
                        transition: &t.name,
                        condition: &cond.name,
                        reason,
                    });
                }
            }
        }
        first_block.ok_or_else(no_transition)
    }
}

fn failed_condition<'c>(conditions: &'c [ConditionDef], context: &Json) -> Option<(&'c ConditionDef, String)> {
    conditions
        .iter()
        .filter(|c| c.required)
        .find_map(|c| c.expression.evaluate(context).err().map(|why| (c, c.error_message.clone().unwrap_or(why))))
}

fn intents_for(contract: &FsmContract, from: usize, transition: usize, to: usize) -> Box<[Intent]> {
    let t = &contract.transitions[transition];
    let (from_s, to_s) = (&contract.states[from], &contract.states[to]);
    let make = |name: &str, phase, config: &Json| Intent {
        intent_type: name.to_owned(),
        phase,
        fsm: contract.name.clone(),
        from_state: from_s.name.clone(),
        to_state: to_s.name.clone(),
        config: config.clone(),
    };
    let mut intents = Vec::new();
    intents.extend(from_s.exit_actions.iter().map(|a| make(a, IntentPhase::Exit, &Json::Null)));
    intents.extend(t.actions.iter().map(|a| make(&a.name, IntentPhase::Transition, &a.config)));
    intents.extend(to_s.entry_actions.iter().map(|a| make(a, IntentPhase::Entry, &Json::Null)));
    if contract.persistence_enabled {
        intents.push(make("persist_state", IntentPhase::Persist, &Json::Null));
    }
    intents.into_boxed_slice()
}
