//! [`Fields`]: one YAML mapping read key by key. It knows which keys a model consumed, so the
//! rest are unknown fields (with a "did you mean"); upstream keys we accept but do not act on
//! are warnings; missing required keys are reported once, and not beside a near-miss typo.

use super::decode::{Cx, Decode, join, wrong_type};
use crate::error::codes;
use crate::yaml::{Node, Pos, Value};

/// The keys of one mapping, consumed one by one by a model's decoder.
#[derive(Debug)]
pub struct Fields<'n> {
    /// Position of the mapping.
    pub pos: Pos,
    path: String,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    /// Required keys found absent, reported by [`Fields::finish`] (see [`Fields::missing`]).
    absent: Vec<String>,
    /// Every key a decoder asked for: the keys allowed here, offered as "did you mean".
    asked: Vec<&'static str>,
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
        let mut used = vec![false; entries.len()];
        for (i, (k, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..i].iter().find(|(other, _)| other.value == k.value) {
                cx.error(
                    codes::CONTRACT_DUPLICATE_KEY,
                    k.pos,
                    &join(path, &key_text(k)),
                    format!("key given twice (first at line {})", first.pos.line),
                );
                // Reported once, as a duplicate; `finish` must not call it unknown as well.
                used[i] = true;
            }
        }
        Some(Self { pos: node.pos, path: path.to_owned(), entries, used, absent: Vec::new(), asked: Vec::new() })
    }

    /// Every key and value, in source order.
    pub fn entries(&self) -> &'n [(Node, Node)] {
        self.entries
    }

    /// The field path of this mapping.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw node under `key`, marking it consumed.
    pub fn node(&mut self, key: &'static str) -> Option<&'n Node> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        let i = self.entries.iter().position(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// Whether `key` is present (without consuming it).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
    }

    /// Where the value of `key` is written (without consuming it); the mapping's position when
    /// the key is absent. Checks made after decoding point their diagnostics here.
    pub fn pos_of(&self, key: &str) -> Pos {
        entry(self.entries, key).map_or(self.pos, |n| n.pos)
    }

    /// Records that the required `key` is absent. Reported by [`Fields::finish`] as a missing
    /// field, unless an unknown key of this mapping is a near miss of it (`intial_state`): that
    /// typo is then reported once, as an unknown field with a "did you mean".
    pub fn missing(&mut self, key: &str) {
        self.absent.push(key.to_owned());
    }

    /// A required field.
    pub fn req<T: Decode>(&mut self, cx: &mut Cx, key: &'static str) -> Option<T> {
        let path = join(&self.path, key);
        match self.node(key) {
            Some(node) if !node.is_null() => T::decode(cx, node, &path),
            Some(node) => {
                cx.error(codes::CONTRACT_MISSING_FIELD, node.pos, &path, "required field is empty");
                None
            }
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// An optional field: `None` when absent or null (and when invalid, after reporting it).
    pub fn opt<T: Decode>(&mut self, cx: &mut Cx, key: &'static str) -> Option<T> {
        let path = join(&self.path, key);
        self.node(key).filter(|n| !n.is_null()).and_then(|node| T::decode(cx, node, &path))
    }

    /// An optional field with a default when absent or null.
    pub fn or<T: Decode>(&mut self, cx: &mut Cx, key: &'static str, default: T) -> T {
        self.opt(cx, key).unwrap_or(default)
    }

    /// Keys the upstream models define that this runtime accepts but does not act on:
    /// each one present yields a warning.
    pub fn ignored(&mut self, cx: &mut Cx, keys: &[&'static str]) {
        for key in keys {
            if let Some(node) = self.node(key) {
                let path = join(&self.path, key);
                cx.warn(
                    codes::IGNORED_FIELD,
                    node.pos,
                    &path,
                    "accepted for compatibility with the Python runtime; not acted on",
                );
            }
        }
    }

    /// Keys that only describe (descriptions, version labels, type labels): accepted silently.
    pub fn descriptive(&mut self, keys: &[&'static str]) {
        for &key in keys {
            self.node(key);
        }
    }

    /// Reports every key not consumed as an unknown field (a warning: the Python runtime drops
    /// keys its models do not know; `validate --strict` makes it an error), with a "did you
    /// mean" or the keys allowed here (those the decoder asked for). A required key recorded
    /// as [missing](Fields::missing) is always an error; when an unknown key is a near miss of
    /// it (`intial_state`), that one error names the misspelling instead of a second warning.
    /// Every decoder calls it before giving up on a missing value.
    pub fn finish(self, cx: &mut Cx) {
        let known = self.asked.as_slice();
        let mut misspelt: Vec<(&str, String, Pos)> = Vec::new();
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let key = key_text(k);
            let hint = match suggest(&key, known) {
                Some(s) if self.absent.iter().any(|a| a == s) => {
                    misspelt.push((s, key, k.pos));
                    continue;
                }
                Some(s) => format!("; did you mean `{s}`?"),
                None => format!("; allowed here: {}", known.join(", ")),
            };
            cx.warn(
                codes::CONTRACT_UNKNOWN_FIELD,
                k.pos,
                &join(&self.path, &key),
                format!("unknown field `{key}` (ignored){hint}"),
            );
        }
        for key in &self.absent {
            match misspelt.iter().find(|(s, _, _)| s == key) {
                Some((_, typo, pos)) => cx.error(
                    codes::CONTRACT_UNKNOWN_FIELD,
                    *pos,
                    &join(&self.path, typo),
                    format!("unknown field `{typo}`; did you mean `{key}`? (required here, and missing)"),
                ),
                None => cx.error(
                    codes::CONTRACT_MISSING_FIELD,
                    self.pos,
                    &join(&self.path, key),
                    "required field is missing",
                ),
            }
        }
    }
}

/// The value of `key` in a mapping's entries.
fn entry<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key)).map(|(_, v)| v)
}

/// The value of `key` when `node` is a mapping holding it.
pub fn value_of<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entry(entries, key),
        _ => None,
    }
}

/// The text of a mapping key. A key that is itself a mapping or sequence (YAML's `? ` complex
/// keys) is named by its kind and place, not written out: written out, keys nested in keys
/// escape each other's quotes and grow exponentially with depth (found by fuzzing).
pub fn key_text(k: &Node) -> String {
    match &k.value {
        Value::Scalar { text, .. } | Value::Include(text) => text.clone(),
        _ => format!("<{} key at {}:{}>", k.type_name(), k.pos.line, k.pos.column),
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
    use crate::contract::decode::to_json;

    #[test]
    fn nested_complex_keys_are_named_not_written_out() {
        // Fuzzing found this: 90 bytes of `?` marks whose key texts grew to megabytes.
        let hostile = "  ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ?\n";
        let node = crate::yaml::parse(hostile).unwrap();
        let json = to_json(&node).to_string();
        assert!(json.len() < 200, "{} bytes: {json}", json.len());
        assert!(json.contains("<mapping key at 1:"), "{json}");
    }

    #[test]
    fn suggestions_are_close_matches_only() {
        assert_eq!(suggest("intial_state", &["initial_state", "states"]), Some("initial_state"));
        assert_eq!(suggest("colour", &["initial_state", "states"]), None);
    }
}
