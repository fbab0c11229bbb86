//! Decoding YAML trees into contract models while collecting every diagnostic.
//!
//! Each model reads its mapping through [`Fields`], which knows the keys it consumed: whatever
//! is left at [`Fields::finish`] is an unknown field (with a "did you mean"), and keys the
//! upstream (Python) models define but this runtime does not act on are warnings.

use std::collections::BTreeMap;

use serde_json::{Number, Value as Json};

use super::diagnostic::{ContractErrors, Diagnostic, Loaded, Severity};
use crate::error::{codes, ErrorCode};
use crate::yaml::{self, Node, Pos, TreeErrorKind, Value};

/// Collects diagnostics for one source while decoding it.
#[derive(Debug)]
pub struct Cx {
    source: String,
    diagnostics: Vec<Diagnostic>,
}

impl Cx {
    /// A context for the source named `source`.
    pub fn new(source: &str) -> Self {
        Self { source: source.to_owned(), diagnostics: Vec::new() }
    }

    fn push(&mut self, severity: Severity, code: ErrorCode, pos: Pos, field: &str, message: String) {
        self.diagnostics.push(Diagnostic {
            severity,
            code,
            source: self.source.clone(),
            pos,
            field: field.to_owned(),
            message,
        });
    }

    /// Records an error.
    pub fn error(&mut self, code: ErrorCode, pos: Pos, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, code, pos, field, message.into());
    }

    /// Records a warning.
    pub fn warn(&mut self, code: ErrorCode, pos: Pos, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, code, pos, field, message.into());
    }

    /// Whether any error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// Ends decoding: the value with its warnings, or every diagnostic when any is an error.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<Loaded<T>, ContractErrors> {
        self.diagnostics.sort_by(|a, b| a.pos.cmp(&b.pos));
        match value {
            Some(value) if !self.has_errors() => Ok(Loaded { value, warnings: self.diagnostics }),
            _ => {
                if !self.has_errors() {
                    self.error(codes::CONTRACT_INVALID_VALUE, Pos { line: 1, column: 1 }, "", "contract could not be decoded");
                }
                Err(ContractErrors { diagnostics: self.diagnostics })
            }
        }
    }
}

/// Largest contract file accepted, in bytes.
pub const MAX_CONTRACT_BYTES: usize = 4 * 1024 * 1024;

/// Checks size and UTF-8 and parses the YAML tree, reporting failures into `cx`.
pub fn parse_source<'b>(cx: &mut Cx, bytes: &'b [u8]) -> Option<(Node, &'b str)> {
    let start = Pos { line: 1, column: 1 };
    if bytes.len() > MAX_CONTRACT_BYTES {
        cx.error(
            codes::CONTRACT_TOO_LARGE,
            start,
            "",
            format!("file is {} bytes; contracts are limited to {MAX_CONTRACT_BYTES} bytes", bytes.len()),
        );
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            cx.error(
                codes::CONTRACT_NOT_UTF8,
                Pos { line, column },
                "",
                format!("invalid UTF-8 at byte offset {}; contracts must be UTF-8 text", e.valid_up_to()),
            );
            return None;
        }
    };
    match yaml::parse(text) {
        Ok(node) => Some((node, text)),
        Err(e) => {
            let code = match e.kind {
                TreeErrorKind::Syntax => codes::CONTRACT_SYNTAX,
                TreeErrorKind::TooDeep => codes::CONTRACT_TOO_DEEP,
                TreeErrorKind::TooLarge => codes::CONTRACT_TOO_LARGE,
            };
            cx.error(code, e.pos, "", e.message);
            None
        }
    }
}

/// `parent.key`, or `key` at the root.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[index]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A type that can be decoded from a YAML node.
pub trait Decode: Sized {
    /// Decodes `node` found at field path `path`, recording problems in `cx`.
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self>;
}

fn wrong_type(cx: &mut Cx, node: &Node, path: &str, expected: &str) {
    cx.error(codes::CONTRACT_WRONG_TYPE, node.pos, path, format!("expected {expected}, found {}", node.type_name()));
}

fn scalar_text<'n>(cx: &mut Cx, node: &'n Node, path: &str, expected: &str) -> Option<&'n str> {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => Some(text),
        _ => {
            wrong_type(cx, node, path, expected);
            None
        }
    }
}

impl Decode for String {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        scalar_text(cx, node, path, "a string").map(str::to_owned)
    }
}

impl Decode for bool {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let text = scalar_text(cx, node, path, "a boolean")?;
        let parsed = yaml::parse_bool(text);
        if parsed.is_none() {
            wrong_type(cx, node, path, "a boolean (true or false)");
        }
        parsed
    }
}

macro_rules! decode_number {
    ($($ty:ty => $what:literal),*) => {$(
        impl Decode for $ty {
            fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
                let text = scalar_text(cx, node, path, $what)?;
                let parsed = text.trim().replace('_', "").parse::<$ty>().ok();
                if parsed.is_none() {
                    if text.trim().parse::<f64>().is_ok() {
                        cx.error(codes::CONTRACT_INVALID_VALUE, node.pos, path, format!("`{text}` is not {}", $what));
                    } else {
                        wrong_type(cx, node, path, $what);
                    }
                }
                parsed
            }
        }
    )*};
}

decode_number!(u64 => "a non-negative integer", u32 => "a non-negative integer (32-bit)", i64 => "an integer", f64 => "a number");

impl<T: Decode> Decode for Vec<T> {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        match &node.value {
            _ if node.is_null() => Some(Vec::new()),
            Value::Seq(items) => {
                let decoded: Vec<Option<T>> =
                    items.iter().enumerate().map(|(i, item)| T::decode(cx, item, &index(path, i))).collect();
                decoded.into_iter().collect()
            }
            _ => {
                wrong_type(cx, node, path, "a sequence");
                None
            }
        }
    }
}

impl<T: Decode> Decode for BTreeMap<String, T> {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let fields = Fields::new(cx, node, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in fields.entries {
            let Some(key) = String::decode(cx, k, path) else {
                ok = false;
                continue;
            };
            match T::decode(cx, v, &join(path, &key)) {
                Some(value) => {
                    out.insert(key, value);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Converts any node into JSON, resolving plain scalars with the YAML core schema.
pub fn to_json(node: &Node) -> Json {
    match &node.value {
        _ if node.is_null() => Json::Null,
        Value::Scalar { text, plain: false } => Json::String(text.clone()),
        Value::Scalar { text, plain: true } => {
            if let Some(b) = yaml::parse_bool(text) {
                Json::Bool(b)
            } else if let Ok(i) = text.parse::<i64>() {
                Json::Number(i.into())
            } else if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                Json::Number(n)
            } else {
                Json::String(text.clone())
            }
        }
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match &k.value {
                        Value::Scalar { text, .. } => text.clone(),
                        _ => to_json(k).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

impl Decode for Json {
    fn decode(_cx: &mut Cx, node: &Node, _path: &str) -> Option<Self> {
        Some(to_json(node))
    }
}

/// Implements [`Decode`] for a fieldless enum from its YAML spellings (case-insensitive).
macro_rules! decode_enum {
    ($ty:ty, $what:literal, { $($text:literal => $variant:expr),+ $(,)? }) => {
        impl $crate::contract::decode::Decode for $ty {
            fn decode(cx: &mut $crate::contract::decode::Cx, node: &$crate::yaml::Node, path: &str) -> Option<Self> {
                let text = <String as $crate::contract::decode::Decode>::decode(cx, node, path)?;
                match text.to_ascii_lowercase().as_str() {
                    $($text => Some($variant),)+
                    _ => {
                        cx.error(
                            $crate::error::codes::CONTRACT_INVALID_VALUE,
                            node.pos,
                            path,
                            format!(concat!("`{}` is not a valid ", $what, "; expected one of: ", $($text, " "),+), text),
                        );
                        None
                    }
                }
            }
        }
    };
}
pub(crate) use decode_enum;

/// The keys of one mapping, consumed one by one by a model's decoder.
#[derive(Debug)]
pub struct Fields<'n> {
    /// Position of the mapping.
    pub pos: Pos,
    path: String,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
}

static EMPTY: [(Node, Node); 0] = [];

impl<'n> Fields<'n> {
    /// Opens `node` as a mapping (null counts as empty); reports duplicate keys.
    pub fn new(cx: &mut Cx, node: &'n Node, path: &str) -> Option<Self> {
        let entries: &'n [(Node, Node)] = match &node.value {
            _ if node.is_null() => &EMPTY,
            Value::Map(entries) => entries,
            _ => {
                wrong_type(cx, node, path, "a mapping");
                return None;
            }
        };
        for (i, (k, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..i].iter().find(|(other, _)| other.value == k.value) {
                cx.error(
                    codes::CONTRACT_DUPLICATE_KEY,
                    k.pos,
                    &join(path, &key_text(k)),
                    format!("key given twice (first at line {})", first.pos.line),
                );
            }
        }
        Some(Self { pos: node.pos, path: path.to_owned(), entries, used: vec![false; entries.len()] })
    }

    /// The field path of this mapping.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw node under `key`, marking it consumed.
    pub fn node(&mut self, key: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// Whether `key` is present (without consuming it).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
    }

    /// A required field.
    pub fn req<T: Decode>(&mut self, cx: &mut Cx, key: &str) -> Option<T> {
        let path = join(&self.path, key);
        match self.node(key) {
            Some(node) if !node.is_null() => T::decode(cx, node, &path),
            Some(node) => {
                cx.error(codes::CONTRACT_MISSING_FIELD, node.pos, &path, "required field is empty");
                None
            }
            None => {
                cx.error(codes::CONTRACT_MISSING_FIELD, self.pos, &path, "required field is missing");
                None
            }
        }
    }

    /// An optional field: `None` when absent or null (and when invalid, after reporting it).
    pub fn opt<T: Decode>(&mut self, cx: &mut Cx, key: &str) -> Option<T> {
        let path = join(&self.path, key);
        self.node(key).filter(|n| !n.is_null()).and_then(|node| T::decode(cx, node, &path))
    }

    /// An optional field with a default when absent or null.
    pub fn or<T: Decode>(&mut self, cx: &mut Cx, key: &str, default: T) -> T {
        self.opt(cx, key).unwrap_or(default)
    }

    /// Keys the upstream models define that this runtime accepts but does not act on:
    /// each one present yields a warning.
    pub fn ignored(&mut self, cx: &mut Cx, keys: &[&str]) {
        for key in keys {
            if let Some(node) = self.node(key) {
                let path = join(&self.path, key);
                cx.warn(codes::IGNORED_FIELD, node.pos, &path, "accepted for compatibility with the Python runtime; not acted on");
            }
        }
    }

    /// Keys that only describe (descriptions, version labels, type labels): accepted silently.
    pub fn descriptive(&mut self, keys: &[&str]) {
        for key in keys {
            self.node(key);
        }
    }

    /// Reports every key not consumed as an unknown field, naming the keys that are allowed.
    pub fn finish(self, cx: &mut Cx, known: &[&str]) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let key = key_text(k);
            let hint = match suggest(&key, known) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => format!("; allowed here: {}", known.join(", ")),
            };
            cx.error(codes::CONTRACT_UNKNOWN_FIELD, k.pos, &join(&self.path, &key), format!("unknown field `{key}`{hint}"));
        }
    }
}

fn key_text(k: &Node) -> String {
    match &k.value {
        Value::Scalar { text, .. } => text.clone(),
        _ => to_json(k).to_string(),
    }
}

/// The closest allowed key within two edits, if any.
pub fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(input, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_matches_only() {
        assert_eq!(suggest("intial_state", &["initial_state", "states"]), Some("initial_state"));
        assert_eq!(suggest("colour", &["initial_state", "states"]), None);
    }

    #[test]
    fn numbers_decode_typed_and_report_precisely() {
        let mut cx = Cx::new("t.yaml");
        let node = yaml::parse("a: 12\nb: '7'\nc: 1.5\nd: x\n").unwrap();
        let mut f = Fields::new(&mut cx, &node, "").unwrap();
        assert_eq!(f.req::<u64>(&mut cx, "a"), Some(12));
        assert_eq!(f.req::<u64>(&mut cx, "b"), Some(7));
        assert_eq!(f.req::<u64>(&mut cx, "c"), None);
        assert_eq!(f.req::<u64>(&mut cx, "d"), None);
        f.finish(&mut cx, &["a", "b", "c", "d"]);
        let err = cx.finish(Some(())).unwrap_err();
        let msgs: Vec<String> = err.errors().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("t.yaml:3:4: error[ONEX_CORE_017_CONTRACT_INVALID_VALUE] c:"), "{}", msgs[0]);
        assert!(msgs[1].contains("d: expected a non-negative integer, found string"), "{}", msgs[1]);
    }
}
