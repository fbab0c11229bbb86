//! Decoding YAML trees into contract models while collecting every diagnostic: the [`Cx`]
//! that gathers them, the checks every source passes (size, UTF-8, YAML), and [`Decode`] for
//! the scalar, list, map and JSON values models are made of. Mappings are read with
//! [`Fields`](super::fields::Fields).

use std::collections::BTreeMap;

use serde_json::{Number, Value as Json};

use super::diagnostic::{ContractErrors, Diagnostic, Loaded, Severity};
use super::fields::Fields;
use crate::error::{ErrorCode, codes};
use crate::yaml::{self, Node, Pos, TreeErrorKind, Value};

/// Collects diagnostics for one source while decoding it.
#[derive(Debug)]
pub struct Cx {
    source: String,
    /// Files `!include`d by the source: `Pos::file` n is `included[n - 1]`.
    included: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Cx {
    /// A context for the source named `source`.
    pub fn new(source: &str) -> Self {
        Self { source: source.to_owned(), included: Vec::new(), diagnostics: Vec::new() }
    }

    /// Files included by the source, in `Pos::file` order (from 1).
    pub fn included(&self) -> &[String] {
        &self.included
    }

    /// Registers a file included by the source; positions in it carry the returned index.
    pub fn add_source(&mut self, name: &str) -> u32 {
        self.included.push(name.to_owned());
        u32::try_from(self.included.len()).unwrap_or(u32::MAX)
    }

    fn push(&mut self, severity: Severity, code: ErrorCode, pos: Pos, field: &str, message: String) {
        let source = match pos.file {
            0 => &self.source,
            n => self.included.get(n as usize - 1).unwrap_or(&self.source),
        };
        self.diagnostics.push(Diagnostic {
            severity,
            code,
            source: source.clone(),
            pos,
            field: field.to_owned(),
            message,
        });
    }

    /// The source name (usually a path).
    pub fn source(&self) -> &str {
        &self.source
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

    /// How many errors have been recorded (to tell whether a part decoded cleanly).
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Ends decoding, keeping whatever could be decoded: the value (possibly partial when
    /// there are errors) and every diagnostic in source order.
    pub fn into_parts<T>(mut self, value: Option<T>) -> (Option<T>, Vec<Diagnostic>) {
        self.diagnostics.sort_by_key(|d| (d.pos.file, d.pos));
        (value, self.diagnostics)
    }

    /// Ends decoding: the value with its warnings, or every diagnostic when any is an error.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<Loaded<T>, ContractErrors> {
        self.diagnostics.sort_by_key(|d| (d.pos.file, d.pos));
        match value {
            Some(value) if !self.has_errors() => Ok(Loaded { value, warnings: self.diagnostics }),
            _ => {
                if !self.has_errors() {
                    self.error(codes::CONTRACT_INVALID_VALUE, Pos::new(1, 1), "", "contract could not be decoded");
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
    let start = Pos::new(1, 1);
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
            // Everything before the bad byte is UTF-8; columns count characters, like `Pos`.
            // Lines end where YAML ends them (`\n`, `\r\n` or a lone `\r`), so the position
            // is the one the parser would give.
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let line = valid.matches(['\n', '\r']).count() - valid.matches("\r\n").count() + 1;
            let column = valid.rsplit(['\n', '\r']).next().map_or(0, |l| l.chars().count()) + 1;
            cx.error(
                codes::CONTRACT_NOT_UTF8,
                Pos::new(line, column),
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

pub(super) fn wrong_type(cx: &mut Cx, node: &Node, path: &str, expected: &str) {
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

/// A count that must be at least 1 (`bus.lanes`): zero is an error naming the field.
impl Decode for std::num::NonZeroU32 {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let value = Self::new(u32::decode(cx, node, path)?);
        if value.is_none() {
            cx.error(codes::CONTRACT_INVALID_VALUE, node.pos, path, "must be at least 1");
        }
        value
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        match &node.value {
            _ if node.is_null() => Some(Vec::new()),
            // Items that fail are dropped after their error is recorded, so the rest are still
            // checked (and the load still fails): `validate` reports every problem at once.
            Value::Seq(items) => {
                Some(items.iter().enumerate().filter_map(|(i, item)| T::decode(cx, item, &index(path, i))).collect())
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
        for (k, v) in fields.entries() {
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
        Value::Scalar { text, plain: false } | Value::Include(text) => Json::String(text.clone()),
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
        Value::Map(entries) => {
            Json::Object(entries.iter().map(|(k, v)| (super::fields::key_text(k), to_json(v))).collect())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_typed_and_report_precisely() {
        let mut cx = Cx::new("t.yaml");
        let node = yaml::parse("a: 12\nb: '7'\nc: 1.5\nd: x\n").unwrap();
        let mut f = Fields::new(&mut cx, &node, "").unwrap();
        assert_eq!(f.req::<u64>(&mut cx, "a"), Some(12));
        assert_eq!(f.req::<u64>(&mut cx, "b"), Some(7));
        assert_eq!(f.req::<u64>(&mut cx, "c"), None);
        assert_eq!(f.req::<u64>(&mut cx, "d"), None);
        f.finish(&mut cx);
        let err = cx.finish(Some(())).unwrap_err();
        let msgs: Vec<String> = err.errors().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("t.yaml:3:4: error[ONEX_CORE_017_CONTRACT_INVALID_VALUE] c:"), "{}", msgs[0]);
        assert!(msgs[1].contains("d: expected a non-negative integer, found string"), "{}", msgs[1]);
    }

    #[test]
    fn a_bad_utf8_byte_is_located_on_yaml_s_lines() {
        // Found by the fuzz target `load_node_contract` (minimised): a lone `\r` ends a line for
        // the YAML parser, so it must for the UTF-8 check too.
        let at = |bytes: &[u8]| {
            let mut cx = Cx::new("t.yaml");
            assert!(parse_source(&mut cx, bytes).is_none());
            let (_, diagnostics) = cx.into_parts::<()>(None);
            assert_eq!(diagnostics[0].code, codes::CONTRACT_NOT_UTF8);
            (diagnostics[0].pos.line, diagnostics[0].pos.column)
        };
        assert_eq!(at(b"\r\xff"), (2, 1));
        assert_eq!(at(b"a: 1\r\nb: \xff"), (2, 4));
        assert_eq!(at(b"a\rb\nc\r\r\xc3\xa9t\xff"), (5, 3));
        assert_eq!(at(b"\xc3\xa9\xff"), (1, 2));
        assert_eq!(yaml::parse("a\rb: [").unwrap_err().pos.line, 2, "the parser's own line count");
    }
}
