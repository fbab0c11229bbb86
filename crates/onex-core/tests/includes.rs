//! `!include`: resolved relative to the including file, bounded in depth and size, refusing
//! cycles, and reporting problems inside an included file under that file's name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use onex_core::contract::{ContractDocument, IncludeSource, MAX_INCLUDE_DEPTH, Severity, check_document_with};
use onex_core::error::codes;

/// Files by path; paths are joined to the including file's directory like the host does.
struct Files(BTreeMap<String, String>);

impl Files {
    fn new(files: &[(&str, &str)]) -> Self {
        Self(files.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect())
    }
}

impl IncludeSource for Files {
    fn read(&self, from: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for segment in path.split('/') {
            match segment {
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        let name = parts.join("/");
        self.0.get(&name).map(|t| (name.clone(), t.as_bytes().to_vec())).ok_or_else(|| format!("no file {name}"))
    }
}

const NODE: &str = "name: n\ncontract_version: '1'\nnode_type: EFFECT\nio_operations: !include parts/ops.yaml\n";

#[test]
fn an_include_is_replaced_by_the_included_tree() {
    let files = Files::new(&[("c/parts/ops.yaml", "- operation: db.query\n- operation: db.execute\n")]);
    let (doc, found) = check_document_with("c/node.yaml", NODE.as_bytes(), &files);
    assert!(found.is_empty(), "{found:#?}");
    let Some(ContractDocument::Node(node)) = doc else { panic!("a node") };
    let ops: Vec<&str> = node.io_operations.iter().map(|o| o.operation.as_str()).collect();
    assert_eq!(ops, ["db.query", "db.execute"]);
}

#[test]
fn a_problem_inside_an_included_file_names_that_file_and_line() {
    let files =
        Files::new(&[("c/parts/ops.yaml", "- operation: db.query\n- operation: db.query\n  timeout_ms: soon\n")]);
    let (_, found) = check_document_with("c/node.yaml", NODE.as_bytes(), &files);
    let d = found.iter().find(|d| d.severity == Severity::Error).unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!((d.source.as_str(), d.pos.line, d.code), ("c/parts/ops.yaml", 3, codes::CONTRACT_WRONG_TYPE), "{d}");
    assert!(d.to_string().starts_with("c/parts/ops.yaml:3:"), "{d}");
}

#[test]
fn missing_files_and_cycles_are_refused_where_the_include_is_written() {
    let (_, found) = check_document_with("c/node.yaml", NODE.as_bytes(), &Files::new(&[]));
    let d = found.iter().find(|d| d.code == codes::CONTRACT_INCLUDE).unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!((d.code, d.source.as_str(), d.pos.line), (codes::CONTRACT_INCLUDE, "c/node.yaml", 4), "{d}");
    assert!(d.message.contains("no file c/parts/ops.yaml"), "{d}");

    let files = Files::new(&[("c/parts/ops.yaml", "!include ../node.yaml\n"), ("c/node.yaml", NODE)]);
    let (_, found) = check_document_with("c/node.yaml", NODE.as_bytes(), &files);
    let cycle = found.iter().find(|d| d.code == codes::CONTRACT_INCLUDE).unwrap_or_else(|| panic!("{found:#?}"));
    assert!(cycle.message.contains("cycle") && cycle.message.contains("c/node.yaml -> c/parts/ops.yaml"), "{cycle}");
}

#[test]
fn includes_nest_only_so_deep() {
    // f0 includes f1 includes f2 ... one more than allowed.
    let chain: Vec<(String, String)> =
        (0..=MAX_INCLUDE_DEPTH + 1).map(|i| (format!("f{i}.yaml"), format!("!include f{}.yaml\n", i + 1))).collect();
    let files = Files(chain.iter().cloned().collect());
    let (_, found) = check_document_with("f0.yaml", chain[0].1.as_bytes(), &files);
    assert!(found.iter().any(|d| d.code == codes::CONTRACT_INCLUDE && d.message.contains("deeper")), "{found:#?}");
}

#[test]
fn includes_cannot_multiply_a_document() {
    // Each level includes the next ten times: 10^7 includes if nothing stopped it.
    let mut files = Vec::new();
    for i in 0..7 {
        let items: String = (0..10).map(|_| format!("- !include l{}.yaml\n", i + 1)).collect();
        files.push((format!("l{i}.yaml"), items));
    }
    files.push(("l7.yaml".to_owned(), "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n".to_owned()));
    let root = files[0].1.clone();
    let (_, found) = check_document_with("l0.yaml", root.as_bytes(), &Files(files.into_iter().collect()));
    let refused: Vec<_> = found.iter().filter(|d| d.code == codes::CONTRACT_INCLUDE).collect();
    assert!(refused.iter().any(|d| d.message.contains("more than")), "{found:#?}");
}
