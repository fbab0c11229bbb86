//! Validation: does content carry a stamp, and does the stamp's hash match the content?

use super::filter::{MAX_FOUND, StampKind};
use super::format::{StampFields, parse_lightweight, parse_rich};
use super::hash::NormalizedHash;
use super::normalize::normalized_hash;
use super::stamper::lightweight_slot;

/// The answer of a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The stamp's hash matches the content.
    Valid {
        /// The stamp.
        stamp: StampFields,
    },
    /// The content changed since it was stamped.
    Modified {
        /// The stamp.
        stamp: StampFields,
        /// The hash the stamp records.
        expected: String,
        /// The hash of the content now.
        actual: String,
    },
    /// No stamp.
    Missing {
        /// The hash of the content.
        actual: String,
    },
    /// A stamp that cannot be read, or one in the wrong place.
    Malformed {
        /// Byte offset of the stamp's first line.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Several stamps that disagree.
    Conflicting {
        /// Every stamp found.
        stamps: Vec<StampFields>,
    },
}

impl Validation {
    /// `valid`, `modified`, `missing`, `malformed` or `conflicting`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Valid { .. } => "valid",
            Self::Modified { .. } => "modified",
            Self::Missing { .. } => "missing",
            Self::Malformed { .. } => "malformed",
            Self::Conflicting { .. } => "conflicting",
        }
    }

    /// Whether the content verifies.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

/// Validates content held in memory.
pub fn validate(content: &[u8]) -> Validation {
    judge(&normalized_hash(content), content)
}

/// Judges the result of normalising content (streamed or not). `head` is the content's first
/// bytes (at least its first line) to check where a lightweight stamp sits.
pub fn judge(normalized: &NormalizedHash, head: &[u8]) -> Validation {
    let actual = normalized.hash.to_hex().to_string();
    if normalized.stamps.is_empty() {
        return Validation::Missing { actual };
    }
    if normalized.stamp_count > MAX_FOUND {
        let offset = normalized.stamps[0].offset;
        return Validation::Malformed { offset, reason: format!("{} stamps in one file", normalized.stamp_count) };
    }
    let slot = lightweight_slot(head) as u64;
    let mut stamps = Vec::new();
    for found in &normalized.stamps {
        let malformed = |reason: String| Validation::Malformed { offset: found.offset, reason };
        if !found.complete {
            return malformed("stamp longer than any valid stamp".to_owned());
        }
        let parsed = match found.kind {
            StampKind::Lightweight if found.offset != slot => {
                return malformed(format!(
                    "lightweight stamp at byte {} is not on the file's first line{}",
                    found.offset,
                    if slot > 0 { " after the shebang/XML declaration" } else { "" }
                ));
            }
            StampKind::Lightweight => parse_lightweight(&found.text),
            StampKind::Rich if !found.terminated => {
                return malformed("rich stamp block has no end marker".to_owned());
            }
            StampKind::Rich => parse_rich(&found.text).map(|r| r.fields),
        };
        match parsed {
            Ok(fields) => stamps.push(fields),
            Err(reason) => return malformed(reason),
        }
    }
    if stamps.iter().any(|s| s.hash != stamps[0].hash) {
        return Validation::Conflicting { stamps };
    }
    let stamp = stamps.swap_remove(0);
    if stamp.hash == actual {
        Validation::Valid { stamp }
    } else {
        Validation::Modified { expected: stamp.hash.clone(), stamp, actual }
    }
}
