//! Where `!include` reads from: files on disk relative to the including file, or the bundled
//! contracts by their bundled name. Each source remembers what it was asked for, so a file only
//! ever included (a fragment) is not also loaded as a document of its own.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use onex_core::contract::IncludeSource;

/// The included paths, shared by the sources below.
#[derive(Debug, Default)]
struct Seen(Mutex<BTreeSet<String>>);

impl Seen {
    fn record(&self, name: &str) {
        if let Ok(mut seen) = self.0.lock() {
            seen.insert(name.to_owned());
        }
    }

    fn names(&self) -> BTreeSet<String> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// `path` joined to the directory of `from`, with `.` and `..` folded (no file system access).
fn beside(from: &str, path: &str) -> PathBuf {
    let joined = Path::new(from).parent().unwrap_or(Path::new("")).join(path);
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir if out.file_name().is_some_and(|n| n != "..") => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Includes read from disk.
#[derive(Debug, Default)]
pub struct FileIncludes {
    seen: Seen,
}

impl FileIncludes {
    /// Every file an `!include` read.
    pub fn included(&self) -> BTreeSet<String> {
        self.seen.names()
    }
}

impl IncludeSource for FileIncludes {
    fn read(&self, from: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        let file = beside(from, path);
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {name}: {e}"))?;
        self.seen.record(&name);
        Ok((name, bytes))
    }
}

/// Includes among the bundled contracts (`<bundled>/a/b.yaml`).
#[derive(Debug)]
pub struct BundledIncludes<'s> {
    sources: &'s [(String, Vec<u8>)],
    seen: Seen,
}

impl<'s> BundledIncludes<'s> {
    /// Includes resolved among `sources`.
    pub fn new(sources: &'s [(String, Vec<u8>)]) -> Self {
        Self { sources, seen: Seen::default() }
    }

    /// Every bundled file an `!include` read.
    pub fn included(&self) -> BTreeSet<String> {
        self.seen.names()
    }
}

impl IncludeSource for BundledIncludes<'_> {
    fn read(&self, from: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        let name = beside(from, path).display().to_string();
        let (_, bytes) = self
            .sources
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no bundled contract is named {name}"))?;
        self.seen.record(&name);
        Ok((name, bytes.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_including_file() {
        assert_eq!(beside("contracts/nodes/a.yaml", "parts/b.yaml"), Path::new("contracts/nodes/parts/b.yaml"));
        assert_eq!(beside("contracts/nodes/a.yaml", "../shared/c.yaml"), Path::new("contracts/shared/c.yaml"));
        assert_eq!(beside("a.yaml", "./b.yaml"), Path::new("b.yaml"));
        assert_eq!(beside("/abs/a.yaml", "/etc/x.yaml"), Path::new("/etc/x.yaml"));
    }
}
