//! Upstream's `ModelSemVer` (`{major, minor, patch, prerelease, build}`), the shape of
//! `envelope_version` and `onex_version`; also read from `"1.2.3-pre+build"` text.

use std::fmt;

use serde::de::{self, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A semantic version as upstream serialises it; `prerelease` and `build` are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SemVer {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Pre-release identifiers (upstream: a list of strings and numbers), or null.
    pub prerelease: Option<Value>,
    /// Build metadata identifiers, or null.
    pub build: Option<Value>,
}

impl SemVer {
    /// `major.minor.patch` with no pre-release or build.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { major, minor, patch, prerelease: None, build: None }
    }

    /// Parses `major.minor.patch[-prerelease][+build]`.
    pub fn parse(text: &str) -> Option<Self> {
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(identifiers(build)?)),
            None => (text, None),
        };
        let (core, prerelease) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(identifiers(pre)?)),
            None => (rest, None),
        };
        let mut numbers = core.split('.').map(|n| n.parse::<u64>().ok());
        let (major, minor, patch) = (numbers.next()??, numbers.next()??, numbers.next()??);
        if numbers.next().is_some() {
            return None;
        }
        Some(Self { major, minor, patch, prerelease, build })
    }
}

/// Dot-separated identifiers as a JSON list, numbers as numbers (upstream's tuple form).
fn identifiers(text: &str) -> Option<Value> {
    let parts = text.split('.').map(|part| match part.parse::<u64>() {
        _ if part.is_empty() => None,
        Ok(n) => Some(Value::from(n)),
        Err(_) => Some(Value::from(part)),
    });
    parts.collect::<Option<Vec<_>>>().map(Value::Array)
}

#[derive(Deserialize)]
struct Parts {
    major: u64,
    minor: u64,
    patch: u64,
    #[serde(default)]
    prerelease: Option<Value>,
    #[serde(default)]
    build: Option<Value>,
}

impl<'de> Deserialize<'de> for SemVer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SemVerVisitor)
    }
}

struct SemVerVisitor;

impl<'de> Visitor<'de> for SemVerVisitor {
    type Value = SemVer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a semantic version: {major, minor, patch, prerelease, build} or \"major.minor.patch\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<SemVer, E> {
        SemVer::parse(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SemVer, A::Error> {
        let p = Parts::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(SemVer { major: p.major, minor: p.minor, patch: p.patch, prerelease: p.prerelease, build: p.build })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_mapping_and_the_text_form_and_writes_the_mapping() {
        let v: SemVer = serde_json::from_value(json!({"major": 2, "minor": 1, "patch": 0})).unwrap();
        assert_eq!(v, SemVer::new(2, 1, 0));
        let expected = json!({"major": 2, "minor": 1, "patch": 0, "prerelease": null, "build": null});
        assert_eq!(serde_json::to_value(&v).unwrap(), expected);
        let v: SemVer = serde_json::from_value(json!("1.2.3-alpha.1+b7")).unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 3));
        assert_eq!(v.prerelease, Some(json!(["alpha", 1])));
        assert_eq!(v.build, Some(json!(["b7"])));
    }

    #[test]
    fn a_bad_version_names_what_is_expected() {
        for bad in [json!("1.2"), json!("1.2.3.4"), json!("1.x.3"), json!("1.2.3-"), json!(7)] {
            let err = serde_json::from_value::<SemVer>(bad.clone()).unwrap_err().to_string();
            assert!(err.contains("semantic version"), "{bad}: {err}");
        }
        let err = serde_json::from_value::<SemVer>(json!({"major": 1})).unwrap_err().to_string();
        assert!(err.contains("missing field `minor`"), "{err}");
    }
}
