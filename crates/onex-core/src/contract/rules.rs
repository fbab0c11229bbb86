//! [`Rules`]: what a decoded runtime-config section must hold beyond each value's type (ranges,
//! values that must agree), written once and checked twice: after decoding, pointing at the
//! YAML, and after `ONEX_*` overrides changed the section, naming the variable.

use super::decode::{Cx, join};
use super::fields::Fields;
use crate::error::ErrorCode;

/// One rule a section breaks: the key it is reported on, its code and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    /// The key (within the section) the diagnostic names.
    pub key: &'static str,
    /// The diagnostic's code.
    pub code: ErrorCode,
    /// Why, for the diagnostic.
    pub message: String,
}

impl Broken {
    /// A broken rule on `key`.
    pub fn new(key: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { key, code, message: message.into() }
    }
}

/// A section's rules.
pub trait Rules {
    /// Every rule the section breaks as it stands.
    fn broken(&self) -> Vec<Broken>;
}

/// Finishes reading `fields` ([`Fields::finish`]) and reports each rule `section` breaks at the
/// position of its key (the mapping's, when the key is not written).
pub fn finish_checked(cx: &mut Cx, fields: Fields<'_>, section: &impl Rules) {
    let broken: Vec<_> = section.broken().into_iter().map(|b| (fields.pos_of(b.key), b)).collect();
    let path = fields.path().to_owned();
    fields.finish(cx);
    for (pos, b) in broken {
        cx.error(b.code, pos, &join(&path, b.key), b.message);
    }
}
