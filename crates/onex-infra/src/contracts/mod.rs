//! Loading contract files from disk into a validated [`ContractSet`], collecting every
//! diagnostic of every file (not only the first).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use onex_core::contract::{ContractDocument, ContractSet, Diagnostic, IncludeSource, Severity, check_document_with};
use onex_core::yaml::Pos;
use onex_spi::HandlerRegistry;

use crate::error::codes;
use crate::registry::Catalogue;

mod includes;

use includes::{BundledIncludes, FileIncludes};

/// The outcome of loading a set of contract paths.
#[derive(Debug)]
pub struct ContractReport {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Every error and warning, by file then position.
    pub diagnostics: Vec<Diagnostic>,
    /// The validated set, when there were no errors.
    pub set: Option<ContractSet>,
}

impl ContractReport {
    /// Number of diagnostics of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == severity).count()
    }
}

fn is_contract_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn io_diagnostic(path: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: codes::IO,
        source: path.display().to_string(),
        pos: Pos::new(1, 1),
        field: String::new(),
        message: format!("cannot read: {error}"),
    }
}

/// Collects contract files under `paths` (directories recursively, sorted for stable output).
fn collect(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => match std::fs::read_dir(&path) {
                Ok(entries) => {
                    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    children.retain(|c| c.is_dir() || is_contract_file(c));
                    pending.extend(children.into_iter().rev());
                }
                Err(e) => diagnostics.push(io_diagnostic(&path, &e)),
            },
            Ok(_) => files.push(path),
            Err(e) => diagnostics.push(io_diagnostic(&path, &e)),
        }
    }
    files
}

/// Loads and validates every contract under `paths` against the operations `registry` provides.
pub fn load_contracts(paths: &[PathBuf], registry: &dyn HandlerRegistry) -> ContractReport {
    let mut diagnostics = Vec::new();
    let files = collect(paths, &mut diagnostics);
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        match std::fs::read(file) {
            Ok(bytes) => sources.push((file.display().to_string(), bytes)),
            Err(e) => diagnostics.push(io_diagnostic(file, &e)),
        }
    }
    let includes = FileIncludes::default();
    let checked = check_each(&sources, &includes, &|| includes.included());
    finish(files, checked, diagnostics, registry)
}

/// The contracts built into the binary (the repository's `contracts/` at build time).
pub mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_contracts.rs"));
}

/// Loads and validates the bundled contracts; sources are named `<bundled>/<path>`.
pub fn load_bundled_contracts(registry: &dyn HandlerRegistry) -> ContractReport {
    let sources: Vec<(String, Vec<u8>)> =
        bundled::BUNDLED.iter().map(|(name, bytes)| (format!("<bundled>/{name}"), bytes.to_vec())).collect();
    let files = sources.iter().map(|(name, _)| PathBuf::from(name)).collect();
    let includes = BundledIncludes::new(&sources);
    let checked = check_each(&sources, &includes, &|| includes.included());
    finish(files, checked, Vec::new(), registry)
}

/// One source checked: its name, its document as far as it decoded, its diagnostics.
type Checked = (String, Option<ContractDocument>, Vec<Diagnostic>);

/// Checks every source, resolving `!include` through `includes`; a file some other file
/// includes is a fragment of that file, not a document of its own, and is left out.
fn check_each(
    sources: &[(String, Vec<u8>)],
    includes: &dyn IncludeSource,
    included: &dyn Fn() -> BTreeSet<String>,
) -> Vec<Checked> {
    let checked: Vec<Checked> = sources
        .iter()
        .map(|(source, bytes)| {
            let (document, found) = check_document_with(source, bytes, includes);
            (source.clone(), document, found)
        })
        .collect();
    let fragments = included();
    checked.into_iter().filter(|(source, _, _)| !fragments.contains(source)).collect()
}

fn finish(
    files: Vec<PathBuf>,
    checked: Vec<Checked>,
    mut diagnostics: Vec<Diagnostic>,
    registry: &dyn HandlerRegistry,
) -> ContractReport {
    let mut documents = Vec::new();
    for (source, document, found) in checked {
        // Documents with errors still join the set, so cross-file checks report on them too.
        diagnostics.extend(found);
        documents.extend(document.map(|d| (source, d)));
    }
    let set = match ContractSet::build(documents, &Catalogue::new(registry)) {
        Ok(loaded) => {
            diagnostics.extend(loaded.warnings);
            Some(loaded.value)
        }
        Err(errors) => {
            diagnostics.extend(errors.diagnostics);
            None
        }
    };
    diagnostics.sort_by(|a, b| (&a.source, a.pos).cmp(&(&b.source, b.pos)));
    let set = set.filter(|_| !diagnostics.iter().any(|d| d.severity == Severity::Error));
    ContractReport { files, diagnostics, set }
}
