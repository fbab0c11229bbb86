//! The Python system's own contracts (`../shared/upstream/contracts`), validated as a team moving
//! over would: every file loads (warnings allowed), and `--strict` still refuses what is only
//! tolerated for compatibility.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use onex_e2e::{host_binary, repo_root, scratch_dir, upstream_dir};

fn validate(args: &[&str]) -> Output {
    Command::new(host_binary()).arg("validate").args(args).current_dir(repo_root()).output().expect("run validate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_upstream_contract_loads() {
    let contracts = upstream_dir().join("contracts");
    let out = validate(&[contracts.to_str().unwrap()]);
    let text = stdout(&out);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": error[")).collect();
    assert!(errors.is_empty(), "{} upstream files refused:\n{}", errors.len(), errors.join("\n"));
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Every file the manifest lists was read: 131 contract files of every kind.
    let manifest = std::fs::read_to_string(contracts.join("manifest.tsv")).unwrap();
    let listed = manifest.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    assert!(text.contains(&format!("validated {listed} contract files: 0 errors")), "{text}");
}

#[test]
fn upstream_constructs_warn_by_name_and_strict_refuses_them() {
    let dir = scratch_dir("upstream-strict");
    let contract = "\
name: node_reporter_effect
contract_version: {major: 1, minor: 0, patch: 0}
node_type: EFFECT_GENERIC
event_bus:
  subscribe_topics: [onex.evt.omnibase-infra.db-error.v1]
handler_routing:
  routing_strategy: operation_match
  handlers:
    - operation: report_error
      handler: {name: HandlerLinearDbErrorReporter, module: x.y}
io_operations:
  - operation: report_error
    input_fields: [error_code]
health_chek: {}
";
    std::fs::write(dir.join("reporter.yaml"), contract).unwrap();
    let path = dir.join("reporter.yaml").display().to_string();
    let out = validate(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("{path}:14:1: warning[ONEX_CORE_015_CONTRACT_UNKNOWN_FIELD] health_chek")),
        "an unknown key is a warning naming file, line and key:\n{text}"
    );
    assert!(
        text.contains("warning[ONEX_CORE_047_HANDLER_UNBOUND]") && text.contains("HandlerLinearDbErrorReporter"),
        "an unbound handler is named:\n{text}"
    );
    let out = validate(&["--strict", &path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{path}:14:1: error[ONEX_CORE_015_CONTRACT_UNKNOWN_FIELD] health_chek")), "{text}");
}

#[test]
fn an_included_fragment_is_part_of_its_contract_not_a_document() {
    let dir = scratch_dir("upstream-include");
    std::fs::create_dir_all(dir.join("nodes/parts")).unwrap();
    std::fs::write(
        dir.join("nodes/effect.yaml"),
        "name: e\ncontract_version: '1'\nnode_type: EFFECT\nio_operations: !include parts/ops.yaml\n",
    )
    .unwrap();
    std::fs::write(dir.join("nodes/parts/ops.yaml"), "- operation: db.query\n- operation: db.qurey\n").unwrap();
    let out = validate(&[dir.to_str().unwrap()]);
    let text = stdout(&out);
    let fragment = dir.join("nodes/parts/ops.yaml").display().to_string();
    // The fragment alone is no contract: it is checked only as part of the file including it,
    // and a problem in it is reported under its own name and line.
    assert!(!text.contains("UNKNOWN_KIND"), "{text}");
    assert!(text.contains(&format!("{fragment}:2:3: error[ONEX_CORE_040_UNKNOWN_OPERATION]")), "{text}");
    assert!(text.contains("validated 2 contract files: 1 errors, 0 warnings"), "{text}");
}

/// A runtime config of this host's own (in-memory bus, no handlers), so the upstream contracts
/// run without the Kafka and database settings of the upstream one.
fn own_runtime_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("runtime.yaml");
    std::fs::write(&path, "runtime_name: upstream-host\nhandlers:\n  local: {enabled: true}\n").unwrap();
    path
}

#[test]
fn run_serves_the_upstream_contracts_and_reports_unbound_handlers_or_refuses_with_the_flag() {
    use onex_e2e::host::{HostOptions, HostProcess};
    let dir = scratch_dir("upstream-run");
    let config = own_runtime_config(&dir);
    let mut options = HostOptions::new(&upstream_dir().join("contracts"), &dir.join("data"));
    options.extra_args = vec!["--config".into(), config.display().to_string()];

    let host = HostProcess::start(&options);
    let (status, ready) = host.get_json("/health/ready");
    assert_eq!(status, 200, "{ready}");
    let unbound = ready["unbound_handlers"].as_object().expect("unbound_handlers in the body");
    assert!(unbound.contains_key("HandlerLinearDbErrorReporter"), "{ready}");
    assert_eq!(
        host.metric(
            "onex_unbound_handler{handler=\"HandlerLinearDbErrorReporter\",node=\"node_db_error_linear_effect\"}"
        ),
        Some(1.0)
    );
    assert!(host.logs().contains("HandlerLinearDbErrorReporter (node_db_error_linear_effect)"), "{}", host.logs());
    drop(host);

    options.extra_args.push("--require-all-handlers".into());
    let Err(failure) = HostProcess::try_start(&options) else { panic!("--require-all-handlers must refuse to start") };
    assert_eq!(failure.status.and_then(|s| s.code()), Some(1), "{}", failure.logs);
    assert!(
        failure.logs.contains("ONEX_INFRA_044_HANDLERS_UNBOUND")
            && failure.logs.contains("HandlerLinearDbErrorReporter"),
        "{}",
        failure.logs
    );
}
