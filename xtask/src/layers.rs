//! `cargo xtask check-layers`: enforces the crate layering rules on the
//! dependency graph reported by `cargo metadata`.
//!
//! Only normal and build edges are followed; dev-only edges are ignored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::cmd;

const CORE: &str = "onex-core";
const SPI: &str = "onex-spi";
const INFRA: &str = "onex-infra";

/// Crates that perform (or exist to perform) I/O.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio-util",
    "mio",
    "socket2",
    "sqlx",
    "sqlx-core",
    "sqlx-postgres",
    "sqlx-sqlite",
    "libsqlite3-sys",
    "rdkafka",
    "rdkafka-sys",
    "reqwest",
    "hyper",
    "hyper-util",
    "h2",
    "axum",
    "tower",
    "tonic",
    "vaultrs",
    "consulrs",
    "async-std",
    "smol",
    "futures-executor",
];

/// Extra crates onex-core must never reach: upper layers and randomness.
const CORE_EXTRA_DENY: &[&str] = &[SPI, INFRA, "getrandom", "rand"];

/// Extra crates onex-spi must never reach.
const SPI_EXTRA_DENY: &[&str] = &[INFRA];

/// The only crates onex-spi may depend on directly.
const SPI_DIRECT_ALLOW: &[&str] =
    &[CORE, "async-trait", "futures-core", "serde", "serde_json", "thiserror", "uuid", "chrono", "bytes"];

/// A breach of the layering rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A layered crate is not in the workspace.
    MissingCrate { krate: String },
    /// `krate` reaches a denylisted crate; `path` runs from `krate` to it.
    Forbidden { krate: String, dependency: String, path: Vec<String> },
    /// `krate` depends directly on a crate outside its allowlist.
    NotAllowlisted { krate: String, dependency: String },
    /// The metadata could not be interpreted.
    Malformed { reason: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCrate { krate } => {
                write!(f, "{krate}: crate not found in workspace metadata")
            }
            Self::Forbidden { krate, dependency, path } => {
                write!(f, "{krate}: forbidden dependency `{dependency}` via {}", path.join(" -> "))
            }
            Self::NotAllowlisted { krate, dependency } => write!(
                f,
                "{krate}: direct dependency `{dependency}` is not allowlisted \
                 ({krate} -> {dependency})"
            ),
            Self::Malformed { reason } => write!(f, "invalid cargo metadata: {reason}"),
        }
    }
}

/// Checks the layering rules against `cargo metadata --format-version 1` output.
pub fn check(metadata: &Value) -> Vec<Violation> {
    analyze(metadata).violations
}

/// Number of crates each layered crate depends on transitively (itself excluded).
pub fn closure_sizes(metadata: &Value) -> Vec<(&'static str, usize)> {
    analyze(metadata).closure_sizes
}

/// Outcome of a layer check.
#[derive(Debug, Default)]
struct Report {
    violations: Vec<Violation>,
    closure_sizes: Vec<(&'static str, usize)>,
}

fn analyze(metadata: &Value) -> Report {
    let graph = match Graph::parse(metadata) {
        Ok(graph) => graph,
        Err(reason) => {
            return Report { violations: vec![Violation::Malformed { reason }], ..Report::default() };
        }
    };
    let mut report = Report::default();
    let io_and = |extra: &[&'static str]| [IO_CRATES, extra].concat();
    for (krate, deny, allow) in
        [(CORE, io_and(CORE_EXTRA_DENY), None), (SPI, io_and(SPI_EXTRA_DENY), Some(SPI_DIRECT_ALLOW))]
    {
        let Some(id) = graph.member(krate) else {
            report.violations.push(Violation::MissingCrate { krate: krate.to_owned() });
            continue;
        };
        if let Some(allow) = allow {
            for dep in graph.direct_deps(id) {
                let name = graph.name(dep);
                if !allow.contains(&name) {
                    report
                        .violations
                        .push(Violation::NotAllowlisted { krate: krate.to_owned(), dependency: name.to_owned() });
                }
            }
        }
        let closure = graph.closure(id);
        report.closure_sizes.push((krate, closure.len() - 1));
        report.violations.extend(closure.forbidden(&graph, krate, &deny));
    }
    report
}

/// Runs `cargo metadata` in `root` and checks it, printing the outcome.
pub fn run(root: &Path) -> Result<(), String> {
    let stdout = cmd::output(root, &cmd::cargo(), &["metadata", "--format-version", "1"])?;
    let metadata: Value =
        serde_json::from_slice(&stdout).map_err(|e| format!("cannot parse `cargo metadata` output: {e}"))?;
    let violations = check(&metadata);
    if violations.is_empty() {
        let sizes: Vec<String> =
            closure_sizes(&metadata).iter().map(|(krate, n)| format!("{krate}: {n} crates")).collect();
        println!("check-layers: ok ({})", sizes.join(", "));
        return Ok(());
    }
    for violation in &violations {
        eprintln!("check-layers: {violation}");
    }
    Err(format!("{} layering violation(s)", violations.len()))
}

/// The resolved dependency graph, restricted to normal and build edges.
struct Graph<'a> {
    /// Package id -> package name.
    names: HashMap<&'a str, &'a str>,
    /// Package id -> ids of its normal/build dependencies, in metadata order.
    edges: HashMap<&'a str, Vec<&'a str>>,
    /// Ids of workspace members, or all packages if the list is absent.
    members: Vec<&'a str>,
}

impl<'a> Graph<'a> {
    fn parse(metadata: &'a Value) -> Result<Self, String> {
        let mut names = HashMap::new();
        for package in array(metadata, "packages")? {
            names.insert(string(package, "id")?, string(package, "name")?);
        }
        let resolve =
            metadata.get("resolve").filter(|r| !r.is_null()).ok_or("`resolve` is missing (was --no-deps used?)")?;
        let mut edges = HashMap::new();
        for node in array(resolve, "nodes")? {
            let mut deps = Vec::new();
            for dep in array(node, "deps")? {
                if is_non_dev(dep) {
                    deps.push(known(&names, string(dep, "pkg")?)?);
                }
            }
            edges.insert(known(&names, string(node, "id")?)?, deps);
        }
        let members = match metadata.get("workspace_members").and_then(Value::as_array) {
            Some(ids) => ids.iter().filter_map(Value::as_str).collect(),
            None => names.keys().copied().collect(),
        };
        Ok(Self { names, edges, members })
    }

    fn name(&self, id: &str) -> &'a str {
        self.names.get(id).copied().unwrap_or_default()
    }

    /// The id of the workspace member called `name`.
    fn member(&self, name: &str) -> Option<&'a str> {
        self.members.iter().copied().find(|id| self.name(id) == name)
    }

    fn direct_deps(&self, id: &str) -> &[&'a str] {
        self.edges.get(id).map_or(&[], Vec::as_slice)
    }

    /// Breadth-first transitive closure of `start`, including `start`.
    fn closure(&self, start: &'a str) -> Closure<'a> {
        let mut closure = Closure { order: vec![start], parent: HashMap::new() };
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            for &dep in self.direct_deps(id) {
                if dep != start && !closure.parent.contains_key(dep) {
                    closure.parent.insert(dep, id);
                    closure.order.push(dep);
                    queue.push_back(dep);
                }
            }
        }
        closure
    }
}

/// Crates reachable from one root, with a shortest-path tree back to it.
struct Closure<'a> {
    order: Vec<&'a str>,
    parent: HashMap<&'a str, &'a str>,
}

impl<'a> Closure<'a> {
    fn len(&self) -> usize {
        self.order.len()
    }

    /// One violation per denylisted crate name reached, with its shortest path.
    fn forbidden(&self, graph: &Graph<'a>, krate: &str, deny: &[&str]) -> Vec<Violation> {
        let mut seen = HashSet::new();
        let mut violations = Vec::new();
        for &id in &self.order {
            let name = graph.name(id);
            if deny.contains(&name) && seen.insert(name) {
                violations.push(Violation::Forbidden {
                    krate: krate.to_owned(),
                    dependency: name.to_owned(),
                    path: self.path_to(id).map(|id| graph.name(id).to_owned()).collect(),
                });
            }
        }
        violations
    }

    /// Ids from the root down to `id`.
    fn path_to(&self, id: &'a str) -> impl Iterator<Item = &'a str> {
        let mut path = vec![id];
        let mut current = id;
        while let Some(&parent) = self.parent.get(current) {
            path.push(parent);
            current = parent;
        }
        path.into_iter().rev()
    }
}

/// Whether a `resolve.nodes[].deps[]` entry has a normal (`null`) or build kind.
/// Entries without `dep_kinds` (very old cargo) are treated as normal.
fn is_non_dev(dep: &Value) -> bool {
    dep.get("dep_kinds").and_then(Value::as_array).is_none_or(|kinds| {
        kinds.iter().any(|k| match k.get("kind") {
            None | Some(Value::Null) => true,
            Some(kind) => kind.as_str() == Some("build"),
        })
    })
}

fn array<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    value.get(key).and_then(Value::as_array).ok_or_else(|| format!("expected array `{key}`"))
}

fn string<'a>(value: &'a Value, key: &str) -> Result<&'a str, String> {
    value.get(key).and_then(Value::as_str).ok_or_else(|| format!("expected string `{key}`"))
}

/// Returns `id` as borrowed from `names`, failing if no package has that id.
fn known<'a>(names: &HashMap<&'a str, &'a str>, id: &str) -> Result<&'a str, String> {
    names.get_key_value(id).map(|(&id, _)| id).ok_or_else(|| format!("package id `{id}` is not listed in `packages`"))
}

#[cfg(test)]
mod tests;
