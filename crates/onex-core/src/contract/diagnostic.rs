//! Contract diagnostics: what is wrong, where (file, line, column, field path) and how badly.

use std::fmt;

use crate::error::{Classified, ErrorCode, codes};
use crate::yaml::Pos;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Loads, but something deserves attention.
    Warning,
    /// The contract is refused.
    Error,
}

/// One finding about a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code naming the kind of problem.
    pub code: ErrorCode,
    /// The source name the caller gave (usually a path).
    pub source: String,
    /// Where in the source.
    pub pos: Pos,
    /// Field path such as `state_machine.transitions[2].to_state`; empty for the whole document.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {level}[{}]", self.source, self.pos.line, self.pos.column, self.code)?;
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        write!(f, " {}", self.message)
    }
}

/// A contract refused: every error found (not only the first), plus the warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContractErrors {
    /// All diagnostics, errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ContractErrors {
    /// The diagnostics of error severity.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for ContractErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.errors() {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Classified for ContractErrors {
    fn error_code(&self) -> ErrorCode {
        self.errors().next().map_or(codes::CONTRACT_SYNTAX, |d| d.code)
    }
}

/// A successfully loaded value and the warnings found while loading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The loaded value.
    pub value: T,
    /// Warnings (never errors).
    pub warnings: Vec<Diagnostic>,
}
