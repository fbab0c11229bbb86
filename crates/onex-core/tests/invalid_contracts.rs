//! The invalid-contract corpus: every file under `tests/fixtures/invalid/` is broken in exactly
//! one way, and checking it strictly (as `validate --strict` does: warnings count, such as an
//! unknown key the Python runtime would drop) must report exactly one finding with the right
//! code, line and field.
//! Inputs too big or too odd to commit (10 MB, non-UTF-8, 10 000 levels deep) are generated here.

// Tests read their fixtures from disk, which `clippy.toml` forbids in the library itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::collections::BTreeSet;

use onex_core::contract::{
    ContractErrors, Diagnostic, Severity, check_document, load_document, load_fsm, load_node_contract,
    load_runtime_config, load_workflow,
};
use onex_core::error::{ErrorCode, codes};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/invalid/");

/// One broken fixture and the single error it must produce.
struct Case {
    /// File name under `tests/fixtures/invalid/` (also the source name given to the loader).
    file: &'static str,
    /// The error code.
    code: ErrorCode,
    /// The 1-based line the error points at.
    line: usize,
    /// A substring of the diagnostic's field path (`""` for errors about the whole document).
    field: &'static str,
    /// A substring of the message (`""` when the code says it all).
    message: &'static str,
}

const fn case(file: &'static str, code: ErrorCode, line: usize, field: &'static str, message: &'static str) -> Case {
    Case { file, code, line, field, message }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // YAML itself
    case("yaml_bad_indentation.yaml", codes::CONTRACT_SYNTAX, 6, "", ""),
    case("yaml_unclosed_flow.yaml", codes::CONTRACT_SYNTAX, 6, "", ""),
    case("yaml_duplicate_key.yaml", codes::CONTRACT_DUPLICATE_KEY, 10, "resilience.timeout_ms", "first at line 8"),
    case("yaml_two_documents.yaml", codes::CONTRACT_SYNTAX, 6, "", "one YAML document"),
    case("yaml_alias_bomb.yaml", codes::CONTRACT_TOO_LARGE, 6, "", "nodes"),
    case("not_a_contract_list.yaml", codes::CONTRACT_UNKNOWN_KIND, 1, "", "found sequence"),
    case("not_a_contract_mapping.yaml", codes::CONTRACT_UNKNOWN_KIND, 1, "", "not a contract"),
    // Types and fields
    case("wrong_type_priority.yaml", codes::CONTRACT_WRONG_TYPE, 11, "transitions[0].priority", "expected an integer"),
    case("wrong_type_timeout_list.yaml", codes::CONTRACT_WRONG_TYPE, 9, "resilience.timeout_ms", "found sequence"),
    case("wrong_type_states_scalar.yaml", codes::CONTRACT_WRONG_TYPE, 3, "states", "expected a sequence"),
    case("unknown_field_typo.yaml", codes::CONTRACT_UNKNOWN_FIELD, 3, "intial_state", "did you mean `initial_state`?"),
    case("unknown_field_nested.yaml", codes::CONTRACT_UNKNOWN_FIELD, 9, "resilience.retry_polcy", "did you mean `retry_policy`?"),
    case("missing_required_field.yaml", codes::CONTRACT_MISSING_FIELD, 6, "steps[1].operation", "missing"),
    // FSMs
    case("fsm_no_initial_state.yaml", codes::FSM_NO_INITIAL_STATE, 4, "states", "no state has `type: initial`"),
    case("fsm_two_initial_states.yaml", codes::FSM_NO_INITIAL_STATE, 5, "states", "more than one"),
    case("fsm_initial_state_undeclared.yaml", codes::FSM_NO_INITIAL_STATE, 3, "initial_state", "`created`"),
    case("fsm_bad_state_type.yaml", codes::CONTRACT_INVALID_VALUE, 4, "states[0].type", "`start`"),
    case("fsm_duplicate_state.yaml", codes::FSM_DUPLICATE_STATE, 6, "states[2]", "first at line 4"),
    case("fsm_unknown_from_state.yaml", codes::FSM_UNKNOWN_STATE, 14, "transitions[1].from_state", "`payed`"),
    case("fsm_unknown_to_state.yaml", codes::FSM_UNKNOWN_STATE, 9, "transitions[0].to_state", "`payed`"),
    case("fsm_unknown_terminal_state.yaml", codes::FSM_UNKNOWN_STATE, 6, "terminal_states", "`canceled`"),
    case("fsm_transition_from_terminal.yaml", codes::FSM_TRANSITION_FROM_TERMINAL, 13, "transitions[1].from_state", "terminal"),
    case("fsm_ambiguous_transitions.yaml", codes::FSM_AMBIGUOUS_TRANSITION, 11, "transitions[1]", "(line 8)"),
    case("fsm_unknown_condition_operator.yaml", codes::FSM_BAD_CONDITION, 14, "conditions[0].expression", "unknown operator `~=`"),
    case("fsm_malformed_condition.yaml", codes::FSM_BAD_CONDITION, 14, "conditions[0].expression", "field operator value"),
    case("fsm_bad_regex.yaml", codes::FSM_BAD_CONDITION, 13, "conditions[0].expression", "bad pattern"),
    // Workflows
    case("workflow_cycle.yaml", codes::WORKFLOW_CYCLE, 7, "steps[1]", "test -> publish -> build -> test"),
    case("workflow_unknown_dependency.yaml", codes::WORKFLOW_UNKNOWN_DEPENDENCY, 8, "steps[1].depends_on", "`biuld`"),
    case("workflow_duplicate_step.yaml", codes::WORKFLOW_DUPLICATE_STEP, 9, "steps[2]", "`build`"),
    case("workflow_bad_error_action.yaml", codes::CONTRACT_INVALID_VALUE, 7, "steps[0].error_action", "`explode`"),
    // Node contracts
    case("node_bad_node_type.yaml", codes::CONTRACT_INVALID_VALUE, 4, "node_type", "`TRANSFORMER`"),
    case("node_reducer_without_state_machine.yaml", codes::CONTRACT_MISSING_FIELD, 2, "state_machine", "REDUCER"),
    case("node_effect_without_operations.yaml", codes::CONTRACT_MISSING_FIELD, 1, "io_operations", "EFFECT"),
    case("node_bad_topic.yaml", codes::CONTRACT_INVALID_VALUE, 9, "consumed_events[1].topic", "orders.cancelled"),
    case("node_jitter_out_of_range.yaml", codes::CONTRACT_INVALID_VALUE, 11, "retry_policy.jitter_factor", "between 0.0 and 1.0"),
    // Runtime config
    case("runtime_literal_secret.yaml", codes::LITERAL_SECRET, 12, "handlers.db.config.password", "${env:NAME}"),
    case("runtime_kafka_without_servers.yaml", codes::CONTRACT_MISSING_FIELD, 3, "bus.bootstrap_servers", "kafka"),
];

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("cannot read fixture {name}: {e}"))
}

fn fixture_files() -> BTreeSet<String> {
    std::fs::read_dir(FIXTURES)
        .expect("fixtures/invalid exists")
        .map(|entry| entry.expect("readable directory entry").file_name().into_string().expect("UTF-8 file name"))
        .collect()
}

fn errors_of(result: &ContractErrors) -> Vec<&Diagnostic> {
    result.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect()
}

/// Checks `bytes` as any document, strictly: its errors, or when it has none its warnings (which
/// `--strict` refuses). A clean document is a failure of the caller's expectation, as `Err`.
fn load_errors(source: &str, bytes: &[u8]) -> Result<Vec<Diagnostic>, String> {
    let (_, found) = check_document(source, bytes);
    let errors: Vec<Diagnostic> = found.iter().filter(|d| d.severity == Severity::Error).cloned().collect();
    match (errors.is_empty(), found.is_empty()) {
        (_, true) => Err(format!("{source}: checked without any finding")),
        (true, false) => Ok(found),
        (false, _) => Ok(errors),
    }
}

/// Every way `errors` differs from the single error `case` expects.
fn mismatches(case: &Case, errors: &[Diagnostic]) -> Vec<String> {
    let listing = errors.iter().map(|d| format!("\n      {d}")).collect::<String>();
    let [d] = errors else {
        return vec![format!("expected exactly one error, got {}:{listing}", errors.len())];
    };
    let mut problems = Vec::new();
    if d.code != case.code {
        problems.push(format!("code is {}, expected {}", d.code, case.code));
    }
    if d.pos.line != case.line {
        problems.push(format!("line is {}, expected {}", d.pos.line, case.line));
    }
    if !d.field.contains(case.field) {
        problems.push(format!("field path `{}` does not contain `{}`", d.field, case.field));
    }
    if !d.message.contains(case.message) {
        problems.push(format!("message `{}` does not contain `{}`", d.message, case.message));
    }
    if d.source != case.file {
        problems.push(format!("source is `{}`, expected `{}`", d.source, case.file));
    }
    let located = format!("{}:{}:", case.file, case.line);
    if !d.to_string().starts_with(&located) {
        problems.push(format!("display `{d}` does not start with `{located}`"));
    }
    if !problems.is_empty() {
        problems.push(format!("reported:{listing}"));
    }
    problems
}

#[test]
fn every_invalid_fixture_reports_its_one_error_precisely() {
    let mut failures = Vec::new();
    for case in CASES {
        let problems = match load_errors(case.file, &read_fixture(case.file)) {
            Ok(errors) => mismatches(case, &errors),
            Err(unexpected_success) => vec![unexpected_success],
        };
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", case.file, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid fixtures misreported:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_is_large_and_every_fixture_is_in_the_table() {
    let files = fixture_files();
    assert!(files.len() >= 20, "the invalid corpus has only {} files", files.len());
    let table: BTreeSet<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(table.len(), CASES.len(), "a fixture is listed twice in CASES");
    let untested: Vec<_> = files.difference(&table).collect();
    assert!(untested.is_empty(), "fixtures without an entry in CASES (add one): {untested:?}");
    let missing: Vec<_> = table.difference(&files).collect();
    assert!(missing.is_empty(), "CASES entries without a fixture file: {missing:?}");
}

#[test]
fn display_is_source_line_column_code_field_message() {
    let errors = load_errors("unknown_field_typo.yaml", &read_fixture("unknown_field_typo.yaml")).unwrap();
    assert_eq!(
        errors[0].to_string(),
        "unknown_field_typo.yaml:3:1: error[ONEX_CORE_015_CONTRACT_UNKNOWN_FIELD] intial_state: \
         unknown field `intial_state`; did you mean `initial_state`? (required here, and missing)"
    );
}

/// A loader, reduced to "did it load".
type Loader = fn(&[u8]) -> bool;

/// Runs every loader over `bytes`, turning a panic into a test failure that names the input.
fn load_with_every_loader(label: &str, bytes: &[u8]) {
    let loaders: [(&str, Loader); 5] = [
        ("load_document", |b| load_document("input.yaml", b).is_ok()),
        ("load_fsm", |b| load_fsm("input.yaml", b).is_ok()),
        ("load_workflow", |b| load_workflow("input.yaml", b).is_ok()),
        ("load_node_contract", |b| load_node_contract("input.yaml", b).is_ok()),
        ("load_runtime_config", |b| load_runtime_config("input.yaml", b).is_ok()),
    ];
    for (name, load) in loaders {
        if std::panic::catch_unwind(|| load(bytes)).is_err() {
            panic!("{name} panicked on {label}");
        }
    }
}

fn single_error(source: &str, bytes: &[u8]) -> Diagnostic {
    let errors = load_errors(source, bytes).unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn huge_input_is_refused_up_front() {
    let line = b"description: padding padding padding padding padding padding padding padding\n";
    let bytes: Vec<u8> = line.iter().copied().cycle().take(10 * 1024 * 1024).collect();
    let d = single_error("huge.yaml", &bytes);
    assert_eq!((d.code, d.pos.line, d.pos.column), (codes::CONTRACT_TOO_LARGE, 1, 1), "{d}");
    assert!(d.message.contains(&bytes.len().to_string()), "{d}");
    assert!(d.to_string().starts_with("huge.yaml:1:1: error[ONEX_CORE_012_CONTRACT_TOO_LARGE]"), "{d}");
    load_with_every_loader("10 MB of YAML", &bytes);
}

#[test]
fn non_utf8_is_reported_at_the_bad_byte() {
    let mut bytes = b"name: door\nstates:\n  - name: ".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b"closed\n    type: initial\ntransitions: []\n");
    let d = single_error("latin1.yaml", &bytes);
    assert_eq!((d.code, d.pos.line, d.pos.column), (codes::CONTRACT_NOT_UTF8, 3, 11), "{d}");
    assert!(d.to_string().starts_with("latin1.yaml:3:11: "), "{d}");
    load_with_every_loader("invalid UTF-8", &bytes);

    // A bad byte on the first line, and a truncated multi-byte sequence at the very end.
    assert_eq!(single_error("a.yaml", b"\xc3(: x\n").pos.line, 1);
    let d = single_error("b.yaml", "name: caf\u{e9}\nx: y\nz: \u{e9}".as_bytes().split_last().unwrap().1);
    assert_eq!((d.code, d.pos.line, d.pos.column), (codes::CONTRACT_NOT_UTF8, 3, 4));
    // Columns count characters, as everywhere else: `é` before the bad byte is one column.
    let d = single_error("c.yaml", b"a: 1\nname: caf\xc3\xa9\xff\n");
    assert_eq!((d.pos.line, d.pos.column), (2, 11), "{d}");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let levels = 10_000;
    let flow = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let block = format!("{}x\n", "- ".repeat(levels));
    let mapping = format!("{}1{}", "{a: ".repeat(levels), "}".repeat(levels));
    for (label, text) in [("flow sequences", flow), ("block sequences", block), ("flow mappings", mapping)] {
        let d = single_error("deep.yaml", text.as_bytes());
        assert_eq!((d.code, d.pos.line), (codes::CONTRACT_TOO_DEEP, 1), "{label}: {d}");
        load_with_every_loader(&format!("{levels} levels of {label}"), text.as_bytes());
    }
}

#[test]
fn no_loader_panics_on_the_corpus_or_any_prefix_of_it() {
    for file in fixture_files() {
        let bytes = read_fixture(&file);
        load_with_every_loader(&file, &bytes);
        if file == "yaml_alias_bomb.yaml" {
            // Each prefix expands up to the node limit before being refused: slow, and the whole
            // file already shows the limit holds.
            continue;
        }
        for end in 0..bytes.len() {
            // `load_document` dispatches to every decoder; the prefixes are what a half-saved
            // file looks like.
            let prefix = &bytes[..end];
            if std::panic::catch_unwind(|| load_document("prefix.yaml", prefix)).is_err() {
                panic!("load_document panicked on {file}[..{end}]");
            }
        }
    }
}

#[test]
fn every_independent_error_is_reported() {
    let text = "\
state_machine_name: order
initial_state: pending
owner: payments-team
states:
  - state_name: pending
    colour: amber
  - state_name: paid
transitions:
  - transition_name: pay
    from_state: pending
    to_state: payed
    trigger: payment_received
";
    let e = load_document("several.yaml", text.as_bytes()).unwrap_err();
    let found: Vec<(ErrorCode, usize, &str)> =
        e.diagnostics.iter().map(|d| (d.code, d.pos.line, d.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (codes::CONTRACT_UNKNOWN_FIELD, 3, "owner"),
            (codes::CONTRACT_UNKNOWN_FIELD, 6, "states[0].colour"),
            (codes::FSM_UNREACHABLE_STATE, 7, "states"),
            (codes::FSM_UNKNOWN_STATE, 11, "transitions[0].to_state"),
        ],
        "{e}"
    );
    // `Display` of the whole failure lists each error (not the warnings) on its own line.
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 1, "{shown}");
    for (line, n) in lines.iter().zip([11]) {
        assert!(line.starts_with(&format!("several.yaml:{n}:")), "{shown}");
    }
}

#[test]
fn errors_after_a_broken_list_item_keep_their_source_index() {
    // transitions[0] lacks its trigger; the unknown target of transitions[1] must still be
    // reported under index 1 at its own line.
    let text = "\
state_machine_name: order
initial_state: pending
states:
  - state_name: pending
  - state_name: paid
transitions:
  - transition_name: pay
    from_state: pending
    to_state: paid
  - transition_name: refund
    from_state: paid
    to_state: refunded
    trigger: refund_requested
";
    let e = load_document("items.yaml", text.as_bytes()).unwrap_err();
    let found: Vec<(ErrorCode, usize, &str)> =
        errors_of(&e).iter().map(|d| (d.code, d.pos.line, d.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (codes::CONTRACT_MISSING_FIELD, 7, "transitions[0].trigger"),
            (codes::FSM_UNKNOWN_STATE, 12, "transitions[1].to_state"),
        ],
        "{e}"
    );
}

#[test]
fn a_literal_secret_is_found_at_any_depth_and_references_pass() {
    let text = "\
bus:
  kind: inmemory
handlers:
  vault:
    config:
      address: http://127.0.0.1:8200
      token: ${env:VAULT_TOKEN}
      approle:
        role_id: ${env:ROLE_ID}
        secret_id: s3cr3t
";
    let d = single_error("runtime.yaml", text.as_bytes());
    assert_eq!(
        (d.code, d.pos.line, d.field.as_str()),
        (codes::LITERAL_SECRET, 10, "handlers.vault.config.approle.secret_id")
    );
    assert!(!d.message.contains("s3cr3t"), "the secret must not be echoed: {d}");
}
