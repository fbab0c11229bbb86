//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Built iteratively from `granit-parser` events (a panic-free, fuzzed parser), so hostile
//! input cannot overflow the stack: nesting and alias expansion are bounded.

use std::collections::HashMap;

use granit_parser::{ErrorKind, Event, Options, Parser, ScalarStyle};

/// Deepest nesting of mappings and sequences a contract may use.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases included): stops "billion laughs".
pub const MAX_NODES: usize = 1_000_000;

/// A 1-based line and column in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Which file: 0 for the document itself, n for the n-th file it `!include`d.
    pub file: u32,
}

impl Pos {
    /// Line and column in the document itself.
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column, file: 0 }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub value: Value,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar; `plain` is false for quoted, block and `!!str`-tagged scalars, which are
    /// always strings.
    Scalar {
        /// The scalar's text after escape processing.
        text: String,
        /// Whether the YAML core schema may resolve it to null/bool/number.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order (duplicates are kept for the decoder to report).
    Map(Vec<(Node, Node)>),
    /// `!include path`: replaced by the included file's tree before decoding (see
    /// `contract::IncludeSource`); one left unresolved is refused where it stands.
    Include(String),
}

impl Node {
    /// Whether the node is YAML null (`~`, `null`, empty plain scalar).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { plain: false, .. } => "string",
            Value::Scalar { text, .. } => {
                if parse_bool(text).is_some() {
                    "boolean"
                } else if text.parse::<f64>().is_ok() {
                    "number"
                } else {
                    "string"
                }
            }
            Value::Include(_) => "an unresolved `!include`",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }
}

/// The YAML 1.2 core-schema booleans.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Why a document could not be read as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    /// Where the problem was found.
    pub pos: Pos,
    /// What kind of problem.
    pub kind: TreeErrorKind,
    /// Description.
    pub message: String,
}

/// The kinds of [`TreeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeErrorKind {
    /// Not valid YAML.
    Syntax,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_NODES`] nodes after alias expansion.
    TooLarge,
}

/// A collection being built; `inner` is the height of its tallest child so far.
enum Frame {
    Seq { pos: Pos, anchor: usize, items: Vec<Node>, inner: usize },
    Map { pos: Pos, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node>, inner: usize },
}

fn pos_of(marker: &granit_parser::Marker) -> Pos {
    Pos::new(marker.line(), marker.col() + 1)
}

/// How many nodes `node` holds, itself included.
pub fn count_nodes(node: &Node) -> usize {
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        count += 1;
        match &n.value {
            Value::Scalar { .. } | Value::Include(_) => {}
            Value::Seq(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.iter().flat_map(|(k, v)| [k, v])),
        }
    }
    count
}

/// Parses a single YAML document. An empty document is a null node at 1:1.
pub fn parse(src: &str) -> Result<Node, TreeError> {
    let mut options = Options::default();
    options.flow_nesting_limit = MAX_DEPTH;
    options.block_nesting_limit = MAX_DEPTH;
    options.emit_comments = false;
    let mut parser = Parser::new_from_str_with_options(src, options);
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes with their height (collections nested in them, themselves included), so an
    // alias cannot nest deeper than MAX_DEPTH where it is used.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    let err = |pos, kind, message: String| TreeError { pos, kind, message };

    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| match e.kind() {
            ErrorKind::RecursionLimitExceeded => {
                err(pos_of(e.marker()), TreeErrorKind::TooDeep, format!("nesting deeper than {MAX_DEPTH} levels"))
            }
            _ => err(pos_of(e.marker()), TreeErrorKind::Syntax, e.info()),
        })?;
        let pos = pos_of(&span.start);
        // (node, anchor id, height)
        let completed: Option<(Node, usize, usize)> = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        pos,
                        TreeErrorKind::Syntax,
                        "a contract file holds exactly one YAML document".into(),
                    ));
                }
                None
            }
            Event::Scalar(text, _, anchor, tag)
                if tag.as_deref().is_some_and(|t| t.handle() == "!" && t.suffix() == "include") =>
            {
                Some((Node { pos, value: Value::Include(text.into_owned()) }, anchor, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_deref().is_some_and(|t| t.is_yaml_core_schema_tag("str"));
                let plain = style == ScalarStyle::Plain && !is_str_tag;
                Some((Node { pos, value: Value::Scalar { text: text.into_owned(), plain } }, anchor, 0))
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(pos, TreeErrorKind::TooDeep, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq { pos, anchor, items: Vec::new(), inner: 0 }
                } else {
                    Frame::Map { pos, anchor, entries: Vec::new(), key: None, inner: 0 }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items, inner }) => {
                    Some((Node { pos, value: Value::Seq(items) }, anchor, inner + 1))
                }
                Some(Frame::Map { pos, anchor, entries, inner, .. }) => {
                    Some((Node { pos, value: Value::Map(entries) }, anchor, inner + 1))
                }
                None => return Err(err(pos, TreeErrorKind::Syntax, "unbalanced collection end".into())),
            },
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, height)) => {
                    if stack.len() + height > MAX_DEPTH {
                        return Err(err(
                            pos,
                            TreeErrorKind::TooDeep,
                            format!("nesting deeper than {MAX_DEPTH} levels (through an alias)"),
                        ));
                    }
                    nodes += count_nodes(node);
                    Some((Node { pos, value: node.value.clone() }, 0, *height))
                }
                None => return Err(err(pos, TreeErrorKind::Syntax, "alias to an unknown anchor".into())),
            },
            _ => None,
        };
        let Some((node, anchor, height)) = completed else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(err(pos, TreeErrorKind::TooLarge, format!("document expands to more than {MAX_NODES} nodes")));
        }
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), height));
        }
        match stack.last_mut() {
            Some(Frame::Seq { items, inner, .. }) => {
                *inner = (*inner).max(height);
                items.push(node);
            }
            Some(Frame::Map { entries, key, inner, .. }) => {
                *inner = (*inner).max(height);
                match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => *key = Some(node),
                }
            }
            None => root = Some(node),
        }
    }
    Ok(root.unwrap_or(Node { pos: Pos::new(1, 1), value: Value::Scalar { text: String::new(), plain: true } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let Value::Map(entries) = doc.value else { panic!("not a map") };
        assert_eq!(entries[1].0.pos, Pos::new(2, 1));
        let Value::Seq(items) = &entries[1].1.value else { panic!("not a seq") };
        assert_eq!(items[1].pos, Pos::new(4, 5));
        assert!(matches!(&items[1].value, Value::Scalar { plain: false, .. }));
    }

    #[test]
    fn aliases_expand_and_are_bounded() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(entries) = doc.value else { panic!("not a map") };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, prev) in ('b'..='k').zip('a'..) {
            bomb.push_str(&format!(
                "{i}: &{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert_eq!(parse(&bomb).unwrap_err().kind, TreeErrorKind::TooLarge);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.kind, TreeErrorKind::TooDeep);
        assert_eq!(e.pos.line, 1);
    }

    #[test]
    fn an_alias_cannot_nest_deeper_than_the_bound() {
        // Broke the depth invariant of the fuzz target `yaml_parse` (the input was written by
        // hand after reading the alias path, then minimised by libFuzzer): a tree 31 deep
        // anchored, used under 35 levels, made a tree 66 deep; chained aliases of that kind
        // reached 11,000 levels in 25 KB.
        let min = format!("a: &a {}{}\nb: {}*a{}\n", "[".repeat(31), "]".repeat(31), "[".repeat(34), "]".repeat(34));
        let e = parse(&min).unwrap_err();
        assert_eq!((e.kind, e.pos.line), (TreeErrorKind::TooDeep, 2), "{e:?}");
        // Up to the bound, aliases work: 1 (root map) + 32 + 31 = 64.
        let fits = format!("a: &a {}{}\nb: {}*a{}\n", "[".repeat(31), "]".repeat(31), "[".repeat(32), "]".repeat(32));
        assert!(parse(&fits).is_ok());
        // The height of an anchored mapping counts its deepest value, not its first.
        let nested = format!(
            "a: &a {{x: 1, y: {}{}}}\nb: {}*a{}\n",
            "[".repeat(30),
            "]".repeat(30),
            "[".repeat(33),
            "]".repeat(33)
        );
        assert_eq!(parse(&nested).unwrap_err().kind, TreeErrorKind::TooDeep);
    }

    #[test]
    fn two_documents_are_refused() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!((e.kind, e.pos.line), (TreeErrorKind::Syntax, 2));
    }
}
