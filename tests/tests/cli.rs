//! The `onex-runtime-host` binary's `validate` and `fsm` commands, run as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use onex_e2e::{host_binary, repo_root, scratch_dir};

fn host(args: &[&str]) -> Output {
    Command::new(host_binary()).args(args).current_dir(repo_root()).output().expect("run onex-runtime-host")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_accepts_the_bundled_contracts() {
    let out = host(&["validate", "--strict", "contracts"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(": 0 errors, 0 warnings"), "{}", stdout(&out));
}

#[test]
fn validate_lists_every_error_of_every_file_and_exits_1() {
    let dir = scratch_dir("validate");
    std::fs::write(
        dir.join("a.yaml"),
        "name: a\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: db.query\n  - operation: db.qurey\nresilence: {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "states: [{name: x, type: initial}]\ntransitions:\n  - {from: x, to: nowhere, event: go}\n",
    )
    .unwrap();
    std::fs::write(dir.join("ignored.txt"), "not yaml at all: [").unwrap();
    let out = host(&["validate", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let a = dir.join("a.yaml").display().to_string();
    let b = dir.join("b.yaml").display().to_string();
    assert!(text.contains(&format!("{a}:8:1: warning[ONEX_CORE_015_CONTRACT_UNKNOWN_FIELD] resilence: unknown field `resilence` (ignored); did you mean `resilience`?")), "{text}");
    assert!(
        text.contains(&format!("{a}:7:5: error[ONEX_CORE_040_UNKNOWN_OPERATION]")) && text.contains("db.qurey"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{b}:3:19: error[ONEX_CORE_021_FSM_UNKNOWN_STATE] transitions[0].to_state")),
        "{text}"
    );
    assert!(text.contains(&format!("{b}:1:1: error[ONEX_CORE_016_CONTRACT_MISSING_FIELD] name")), "{text}");
    assert!(text.contains("validated 2 contract files: 3 errors, 1 warnings"), "{text}");
}

#[test]
fn validate_names_a_missing_path() {
    let out = host(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no/such/dir:1:1: error[ONEX_INFRA_001_IO]"), "{}", stdout(&out));
}

#[test]
fn fsm_draws_mermaid_and_dot() {
    let out = host(&["fsm", "--format", "dot", "contracts/reducers/service_lifecycle.yaml"]);
    assert!(out.status.success());
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph \"service_lifecycle\""), "{dot}");
    assert!(dot.contains("\"stopped\" [shape=doublecircle]"), "{dot}");
    assert!(dot.contains("\"degraded\" -> \"failed\" [label=\"health_check_failed\"]"), "{dot}");
    let out = host(&["fsm", "contracts/reducers/infrastructure_state.yaml"]);
    assert!(stdout(&out).contains("degraded --> unhealthy: service_failed"), "{}", stdout(&out));
    let out = host(&["fsm", "contracts/effects/postgres.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no state_machine"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(host(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(host(&["fsm", "--format", "svg", "x.yaml"]).status.code(), Some(2));
}
