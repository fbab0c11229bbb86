//! Tests proving each layering rule can fail, on synthetic `cargo metadata` output.

use serde_json::{Value, json};

use super::{Violation, check, closure_sizes};

/// Dependency kind as it appears in `deps[].dep_kinds[].kind`.
const NORMAL: Option<&str> = None;
const BUILD: Option<&str> = Some("build");
const DEV: Option<&str> = Some("dev");

/// Package id in the format cargo uses: path ids for workspace crates
/// (`onex-*` and `xtask`), registry ids for everything else.
fn id(name: &str) -> String {
    if name.starts_with("onex-") {
        format!("path+file:///work/main/crates/{name}#0.1.0")
    } else if name == "xtask" {
        "path+file:///work/main/xtask#0.1.0".to_owned()
    } else {
        format!("registry+https://github.com/rust-lang/crates.io-index#{name}@1.0.0")
    }
}

fn is_member(name: &str) -> bool {
    name.starts_with("onex-") || name == "xtask"
}

/// Builds metadata shaped like `cargo metadata --format-version 1` from
/// package names and `(from, to, kinds)` edges.
fn metadata(packages: &[&str], edges: &[(&str, &str, &[Option<&str>])]) -> Value {
    let package_values: Vec<Value> = packages
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "version": "1.0.0",
                "id": id(name),
                "source": if is_member(name) {
                    Value::Null
                } else {
                    json!("registry+https://github.com/rust-lang/crates.io-index")
                },
                "dependencies": [],
                "targets": [],
                "features": {},
                "manifest_path": format!("/somewhere/{name}/Cargo.toml"),
            })
        })
        .collect();
    let nodes: Vec<Value> = packages
        .iter()
        .map(|name| {
            let outgoing: Vec<_> = edges.iter().filter(|(from, ..)| from == name).collect();
            let deps: Vec<Value> = outgoing
                .iter()
                .map(|(_, to, kinds)| {
                    let dep_kinds: Vec<Value> =
                        kinds.iter().map(|kind| json!({ "kind": kind, "target": null })).collect();
                    // Cargo reports the *library* name here, with underscores.
                    json!({ "name": to.replace('-', "_"), "pkg": id(to), "dep_kinds": dep_kinds })
                })
                .collect();
            let dependencies: Vec<String> = outgoing.iter().map(|(_, to, _)| id(to)).collect();
            json!({ "id": id(name), "dependencies": dependencies, "deps": deps, "features": [] })
        })
        .collect();
    let members: Vec<String> = packages.iter().filter(|name| is_member(name)).map(|name| id(name)).collect();
    json!({
        "packages": package_values,
        "workspace_members": members,
        "workspace_default_members": members,
        "resolve": { "nodes": nodes, "root": null },
        "target_directory": "/work/main/target",
        "version": 1,
        "workspace_root": "/work/main",
        "metadata": null,
    })
}

/// The intended architecture: infra on top of spi on top of core.
const CLEAN_PACKAGES: &[&str] = &[
    "onex-core",
    "onex-spi",
    "onex-infra",
    "xtask",
    "serde",
    "serde_json",
    "async-trait",
    "tokio",
    "mio",
    "proc-macro2",
];

fn clean_edges() -> Vec<(&'static str, &'static str, &'static [Option<&'static str>])> {
    vec![
        ("onex-core", "serde", &[NORMAL]),
        ("onex-core", "serde_json", &[NORMAL]),
        ("onex-core", "tokio", &[DEV]),
        ("onex-spi", "onex-core", &[NORMAL]),
        ("onex-spi", "async-trait", &[NORMAL]),
        ("onex-spi", "tokio", &[DEV]),
        ("async-trait", "proc-macro2", &[NORMAL]),
        ("serde_json", "serde", &[NORMAL]),
        ("onex-infra", "onex-spi", &[NORMAL]),
        ("onex-infra", "tokio", &[NORMAL]),
        ("tokio", "mio", &[NORMAL]),
        ("xtask", "serde_json", &[NORMAL]),
    ]
}

#[test]
fn clean_graph_has_no_violations() {
    let value = metadata(CLEAN_PACKAGES, &clean_edges());
    assert_eq!(check(&value), Vec::new());
    // core: serde, serde_json; spi: onex-core, serde, serde_json, async-trait, proc-macro2.
    assert_eq!(closure_sizes(&value), vec![("onex-core", 2), ("onex-spi", 5)]);
}

#[test]
fn transitive_io_crate_in_core_is_reported_with_path() {
    let mut edges = clean_edges();
    edges.push(("onex-core", "foo", &[NORMAL]));
    edges.push(("foo", "tokio", &[NORMAL]));
    let packages = [CLEAN_PACKAGES, &["foo"]].concat();
    let violations = check(&metadata(&packages, &edges));

    let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
    let core_tokio: Vec<&String> =
        messages.iter().filter(|m| m.starts_with("onex-core:") && m.contains("`tokio`")).collect();
    assert_eq!(core_tokio.len(), 1, "{messages:?}");
    assert!(core_tokio[0].contains("onex-core -> foo -> tokio"), "{messages:?}");
    // tokio pulls in mio, also denylisted, reached through the same path.
    assert!(messages.iter().any(|m| m.contains("onex-core -> foo -> tokio -> mio")));
    // spi reaches tokio through core, so it is flagged as well.
    assert!(
        violations.contains(&Violation::Forbidden {
            krate: "onex-spi".to_owned(),
            dependency: "tokio".to_owned(),
            path: ["onex-spi", "onex-core", "foo", "tokio"].map(String::from).to_vec(),
        }),
        "{violations:?}"
    );
}

#[test]
fn build_dependency_edges_are_followed() {
    let mut edges = clean_edges();
    edges.push(("onex-core", "foo", &[BUILD]));
    edges.push(("foo", "getrandom", &[NORMAL]));
    let packages = [CLEAN_PACKAGES, &["foo", "getrandom"]].concat();
    let violations = check(&metadata(&packages, &edges));
    assert!(
        violations.contains(&Violation::Forbidden {
            krate: "onex-core".to_owned(),
            dependency: "getrandom".to_owned(),
            path: ["onex-core", "foo", "getrandom"].map(String::from).to_vec(),
        }),
        "{violations:?}"
    );
}

#[test]
fn dev_only_edges_are_ignored() {
    let mut edges = clean_edges();
    edges.push(("onex-core", "reqwest", &[DEV]));
    edges.push(("onex-spi", "regex", &[DEV]));
    let packages = [CLEAN_PACKAGES, &["reqwest", "regex"]].concat();
    assert_eq!(check(&metadata(&packages, &edges)), Vec::new());
}

#[test]
fn edge_with_both_dev_and_normal_kinds_is_followed() {
    let mut edges = clean_edges();
    edges.retain(|(from, to, _)| !(*from == "onex-core" && *to == "tokio"));
    edges.push(("onex-core", "tokio", &[DEV, NORMAL]));
    let violations = check(&metadata(CLEAN_PACKAGES, &edges));
    assert!(violations.iter().any(|v| v.to_string().contains("onex-core -> tokio")), "{violations:?}");
}

#[test]
fn spi_direct_io_dependency_is_a_violation() {
    let mut edges = clean_edges();
    edges.push(("onex-spi", "reqwest", &[NORMAL]));
    let packages = [CLEAN_PACKAGES, &["reqwest"]].concat();
    let violations = check(&metadata(&packages, &edges));
    assert!(
        violations
            .contains(&Violation::NotAllowlisted { krate: "onex-spi".to_owned(), dependency: "reqwest".to_owned() })
    );
    assert!(violations.contains(&Violation::Forbidden {
        krate: "onex-spi".to_owned(),
        dependency: "reqwest".to_owned(),
        path: ["onex-spi", "reqwest"].map(String::from).to_vec(),
    }));
}

#[test]
fn spi_direct_dependency_outside_allowlist_is_a_violation() {
    let mut edges = clean_edges();
    edges.push(("onex-spi", "regex", &[NORMAL]));
    let packages = [CLEAN_PACKAGES, &["regex"]].concat();
    let violations = check(&metadata(&packages, &edges));
    assert_eq!(
        violations,
        vec![Violation::NotAllowlisted { krate: "onex-spi".to_owned(), dependency: "regex".to_owned() }]
    );
    let message = violations[0].to_string();
    assert!(message.contains("onex-spi") && message.contains("regex"), "{message}");
}

#[test]
fn core_depending_on_infra_is_a_violation() {
    let mut edges = clean_edges();
    edges.push(("onex-core", "onex-infra", &[NORMAL]));
    let violations = check(&metadata(CLEAN_PACKAGES, &edges));
    assert!(
        violations.contains(&Violation::Forbidden {
            krate: "onex-core".to_owned(),
            dependency: "onex-infra".to_owned(),
            path: ["onex-core", "onex-infra"].map(String::from).to_vec(),
        }),
        "{violations:?}"
    );
    let message = violations[0].to_string();
    assert!(message.contains("onex-core -> onex-infra"), "{message}");
}

#[test]
fn spi_depending_on_infra_is_a_violation() {
    let mut edges = clean_edges();
    edges.push(("onex-spi", "onex-infra", &[NORMAL]));
    let violations = check(&metadata(CLEAN_PACKAGES, &edges));
    assert!(violations.contains(&Violation::Forbidden {
        krate: "onex-spi".to_owned(),
        dependency: "onex-infra".to_owned(),
        path: ["onex-spi", "onex-infra"].map(String::from).to_vec(),
    }));
}

#[test]
fn missing_core_package_is_a_violation() {
    let packages: Vec<&str> = CLEAN_PACKAGES.iter().copied().filter(|name| *name != "onex-core").collect();
    let edges: Vec<_> =
        clean_edges().into_iter().filter(|(from, to, _)| *from != "onex-core" && *to != "onex-core").collect();
    let violations = check(&metadata(&packages, &edges));
    assert_eq!(violations, vec![Violation::MissingCrate { krate: "onex-core".to_owned() }]);
    assert_eq!(violations[0].to_string(), "onex-core: crate not found in workspace metadata");
}

#[test]
fn non_member_package_with_layer_name_does_not_count() {
    let mut value = metadata(CLEAN_PACKAGES, &clean_edges());
    value["workspace_members"] = json!([id("onex-spi"), id("onex-infra"), id("xtask")]);
    assert_eq!(check(&value), vec![Violation::MissingCrate { krate: "onex-core".to_owned() }]);
}

#[test]
fn metadata_without_resolve_is_rejected() {
    let mut value = metadata(CLEAN_PACKAGES, &clean_edges());
    value["resolve"] = Value::Null;
    let violations = check(&value);
    assert!(matches!(violations.as_slice(), [Violation::Malformed { .. }]), "{violations:?}");
}
