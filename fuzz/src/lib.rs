//! The invariants the fuzz targets assert, shared between them: where a diagnostic may point,
//! what a loader's result must look like, and how a typed loader must agree with
//! `check_document`. A broken invariant panics, which libFuzzer reports as a crash.

// Panicking is how a fuzz target reports a broken invariant.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;

use onex_core::contract::{ContractDocument, ContractErrors, Diagnostic, Loaded, Severity, check_document};
use onex_core::yaml::Pos;

/// The source name every target passes to the loaders; every diagnostic must carry it.
pub const SOURCE: &str = "fuzz.yaml";

/// The text a position is measured against: the input as UTF-8, each invalid sequence one
/// U+FFFD (so a position just past the valid prefix is still inside it).
pub fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The lines of `text` under YAML's rules: `\r\n`, `\n` and a lone `\r` each end a line.
pub fn lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\n', '\r']) {
        lines.push(&rest[..at]);
        let width = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + width..];
    }
    lines.push(rest);
    lines
}

/// The length in characters of each line of a text: what a position may point at.
#[derive(Debug)]
pub struct Extent(Vec<usize>);

impl Extent {
    /// The extent of `text`, lines as [`lines`] splits them.
    pub fn of(text: &str) -> Self {
        Self(lines(text).iter().map(|line| line.chars().count()).collect())
    }

    /// Whether `pos` (1-based line, 1-based column in characters) names a line of the text and
    /// a column at most one past that line's last character (where an "unexpected end" points).
    pub fn contains(&self, pos: Pos) -> bool {
        pos.column >= 1 && pos.line.checked_sub(1).and_then(|i| self.0.get(i)).is_some_and(|len| pos.column <= len + 1)
    }

    /// How many lines the text has.
    pub fn lines(&self) -> usize {
        self.0.len()
    }
}

/// Every diagnostic names [`SOURCE`], says something, points inside the input, and the list
/// is in source order.
pub fn assert_diagnostics(bytes: &[u8], diagnostics: &[Diagnostic]) {
    let extent = Extent::of(&text_of(bytes));
    for d in diagnostics {
        assert_eq!(d.source, SOURCE, "diagnostic names another source: {d}");
        assert!(!d.message.is_empty(), "diagnostic without a message: {d:?}");
        assert!(!d.code.as_str().is_empty(), "diagnostic without a code: {d:?}");
        assert!(extent.contains(d.pos), "diagnostic outside the input ({} lines): {d}", extent.lines());
    }
    assert!(diagnostics.windows(2).all(|w| w[0].pos <= w[1].pos), "diagnostics not in source order: {diagnostics:?}");
}

/// A loader's result is well formed: a success carries only warnings, a refusal at least one
/// error; either way [`assert_diagnostics`] holds.
pub fn assert_loaded<T>(bytes: &[u8], result: &Result<Loaded<T>, ContractErrors>) {
    match result {
        Ok(loaded) => {
            assert_diagnostics(bytes, &loaded.warnings);
            assert!(
                loaded.warnings.iter().all(|d| d.severity == Severity::Warning),
                "a loaded contract carries an error: {:?}",
                loaded.warnings
            );
        }
        Err(errors) => {
            assert_diagnostics(bytes, &errors.diagnostics);
            assert!(errors.errors().next().is_some(), "a refusal without an error: {:?}", errors.diagnostics);
        }
    }
}

/// A typed loader agrees with `check_document`: when `check_document` decodes the bytes as
/// this kind (`pick` returns it) without an error, the loader returns the same value with the
/// same warnings.
pub fn assert_agrees_with_check<T: PartialEq + Debug>(
    bytes: &[u8],
    result: &Result<Loaded<T>, ContractErrors>,
    pick: impl FnOnce(ContractDocument) -> Option<T>,
) {
    let (document, diagnostics) = check_document(SOURCE, bytes);
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return;
    }
    let Some(value) = document.and_then(pick) else { return };
    match result {
        Ok(loaded) => {
            assert_eq!(loaded.value, value, "the loader and check_document decode the same bytes differently");
            assert_eq!(loaded.warnings, diagnostics, "the loader and check_document warn differently");
        }
        Err(errors) => panic!("check_document accepts this document but its loader refuses it: {errors}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_yaml_line_breaks() {
        assert_eq!(lines(""), [""]);
        assert_eq!(lines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d", ""]);
    }

    #[test]
    fn a_position_may_point_one_past_a_line() {
        let within = |text, line, column| Extent::of(text).contains(Pos { line, column });
        assert!(within("ab\nc", 1, 3));
        assert!(within("ab\nc", 2, 2));
        assert!(within("", 1, 1));
        assert!(within("é", 1, 2));
        assert!(!within("ab\nc", 1, 4));
        assert!(!within("ab\nc", 3, 1));
        assert!(!within("ab", 0, 1));
        assert!(!within("ab", 1, 0));
    }
}
