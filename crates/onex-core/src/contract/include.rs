//! `!include path`: a node replaced by the tree of another file before decoding, as the Python
//! runtime's loader does. The host reads the file ([`IncludeSource`]; core does no I/O), relative
//! to the including file. Cycles, depth and the total size are bounded, and diagnostics inside an
//! included file name that file.

use super::decode::Cx;
use crate::error::codes;
use crate::yaml::{self, MAX_NODES, Node, Pos, Value};

/// How deep includes may nest (a file including a file including ...).
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most `!include`s one document may resolve, all levels together.
pub const MAX_INCLUDES: usize = 256;

/// Reads the files `!include` names.
pub trait IncludeSource {
    /// The source name and bytes of `path`, as written in an `!include` of the source `from`
    /// (relative paths are relative to `from`'s directory); or why it cannot be read.
    fn read(&self, from: &str, path: &str) -> Result<(String, Vec<u8>), String>;
}

/// For sources with no files around them: every `!include` is refused, naming why.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIncludes;

impl IncludeSource for NoIncludes {
    fn read(&self, _from: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        Err(format!("`!include {path}` cannot be resolved here: this source has no directory to read it from"))
    }
}

/// Replaces every `!include` under `root` (of the source `cx` decodes) by the included tree.
pub(crate) fn resolve(cx: &mut Cx, root: &mut Node, includes: &dyn IncludeSource) {
    let mut budget = Budget { nodes: MAX_NODES.saturating_sub(yaml::count_nodes(root)), includes: MAX_INCLUDES };
    let main = cx.source().to_owned();
    let mut chain = vec![main];
    walk(cx, root, includes, &mut chain, &mut budget);
}

/// What the includes of one document may still add.
struct Budget {
    nodes: usize,
    includes: usize,
}

fn walk(cx: &mut Cx, node: &mut Node, includes: &dyn IncludeSource, chain: &mut Vec<String>, budget: &mut Budget) {
    match &mut node.value {
        Value::Include(path) => {
            let path = std::mem::take(path);
            match include(cx, node.pos, &path, includes, chain, budget) {
                Some(tree) => *node = tree,
                // Reported; a null keeps the rest decoding.
                None => node.value = Value::Scalar { text: String::new(), plain: true },
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| walk(cx, n, includes, chain, budget)),
        Value::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                walk(cx, v, includes, chain, budget);
            }
        }
        Value::Scalar { .. } => {}
    }
}

fn include(
    cx: &mut Cx,
    at: Pos,
    path: &str,
    includes: &dyn IncludeSource,
    chain: &mut Vec<String>,
    budget: &mut Budget,
) -> Option<Node> {
    let refuse = |cx: &mut Cx, message: String| cx.error(codes::CONTRACT_INCLUDE, at, "", message);
    if chain.len() > MAX_INCLUDE_DEPTH {
        refuse(cx, format!("`!include {path}`: includes nest deeper than {MAX_INCLUDE_DEPTH} files"));
        return None;
    }
    if budget.includes == 0 {
        refuse(cx, format!("`!include {path}`: a document may resolve no more than {MAX_INCLUDES} includes"));
        return None;
    }
    budget.includes -= 1;
    let from = chain.last().cloned().unwrap_or_default();
    let (name, bytes) = match includes.read(&from, path) {
        Ok(found) => found,
        Err(why) => {
            refuse(cx, format!("`!include {path}`: {why}"));
            return None;
        }
    };
    if let Some(start) = chain.iter().position(|s| *s == name) {
        let cycle = chain[start..].iter().chain([&name]).cloned().collect::<Vec<_>>().join(" -> ");
        refuse(cx, format!("`!include {path}` makes a cycle: {cycle}"));
        return None;
    }
    let file = cx.add_source(&name);
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("invalid UTF-8 at byte offset {}; contracts must be UTF-8 text", e.valid_up_to());
            cx.error(codes::CONTRACT_NOT_UTF8, Pos { file, ..Pos::new(1, 1) }, "", message);
            return None;
        }
    };
    let mut tree = match yaml::parse(text) {
        Ok(tree) => tree,
        Err(e) => {
            cx.error(codes::CONTRACT_SYNTAX, Pos { file, ..e.pos }, "", e.message);
            return None;
        }
    };
    let size = yaml::count_nodes(&tree);
    if size > budget.nodes {
        refuse(cx, format!("`!include {path}`: the document with its includes expands to more than {MAX_NODES} nodes"));
        return None;
    }
    budget.nodes -= size;
    mark_file(&mut tree, file);
    chain.push(name);
    walk(cx, &mut tree, includes, chain, budget);
    chain.pop();
    Some(tree)
}

/// Points every position of an included tree at its file.
fn mark_file(node: &mut Node, file: u32) {
    node.pos.file = file;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| mark_file(n, file)),
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                mark_file(k, file);
                mark_file(v, file);
            }
        }
        Value::Scalar { .. } | Value::Include(_) => {}
    }
}
