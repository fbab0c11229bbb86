//! `validate`: lint contracts and exit 1 when any has an error (under `--strict`, any warning).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use onex_core::contract::Severity;

use crate::contracts::load_contracts;
use crate::registry::Registry;

pub(super) fn run(paths: &[PathBuf], strict: bool) -> ExitCode {
    let registry = Registry::with_builtin_catalogue();
    let mut report = load_contracts(paths, &registry);
    if strict {
        for d in &mut report.diagnostics {
            d.severity = Severity::Error;
        }
    }
    let mut out = std::io::stdout().lock();
    for d in &report.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    let (errors, warnings) = (report.count(Severity::Error), report.count(Severity::Warning));
    let _ = writeln!(out, "validated {} contract files: {errors} errors, {warnings} warnings", report.files.len());
    if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
