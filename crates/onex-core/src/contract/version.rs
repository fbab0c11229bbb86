//! Versions as contracts write them: a string (`1.0.0`) or upstream's `ModelSemVer` mapping
//! (`{major, minor, patch[, prerelease, build]}`), both read into one string.

use super::decode::{Cx, Decode, wrong_type};
use super::fields::Fields;
use crate::yaml::{Node, Value};

/// A version, as text (`1.2.0`, `1.2.0-rc.1+build.5`, or whatever string was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionText(pub String);

impl Decode for VersionText {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        match &node.value {
            Value::Map(_) => {
                let mut f = Fields::new(cx, node, path)?;
                let major: Option<u64> = f.req(cx, "major");
                let minor: u64 = f.or(cx, "minor", 0);
                let patch: u64 = f.or(cx, "patch", 0);
                let prerelease: Option<String> = f.opt(cx, "prerelease");
                let build: Option<String> = f.opt(cx, "build");
                f.finish(cx);
                let mut text = format!("{}.{minor}.{patch}", major?);
                if let Some(pre) = prerelease {
                    text.push('-');
                    text.push_str(&pre);
                }
                if let Some(build) = build {
                    text.push('+');
                    text.push_str(&build);
                }
                Some(Self(text))
            }
            Value::Scalar { .. } => String::decode(cx, node, path).map(Self),
            Value::Seq(_) | Value::Include(_) => {
                wrong_type(cx, node, path, "a version string or a {major, minor, patch} mapping");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    fn read(text: &str) -> Result<String, String> {
        let mut cx = Cx::new("v.yaml");
        let node = yaml::parse(text).unwrap();
        let v = VersionText::decode(&mut cx, &node, "contract_version");
        cx.finish(v).map(|l| l.value.0).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_and_semver_mappings_read_alike() {
        assert_eq!(read("'1.0.0'").unwrap(), "1.0.0");
        assert_eq!(read("{major: 1, minor: 2, patch: 3}").unwrap(), "1.2.3");
        assert_eq!(read("{major: 2, minor: 1, patch: 0, prerelease: rc.1, build: null}").unwrap(), "2.1.0-rc.1");
        let e = read("{minor: 2}").unwrap_err();
        assert!(e.contains("contract_version.major") && e.contains("missing"), "{e}");
        assert!(read("[1, 0]").unwrap_err().contains("{major, minor, patch}"));
    }
}
