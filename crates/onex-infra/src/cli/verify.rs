//! `verify FILE…`: check stamps; exit 0 when every file is valid, 1 otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use onex_core::stamp::Validation;
use serde_json::{Value, json};

use super::progress::Progress;
use crate::stamp::verify_file;

/// One file's verdict as JSON (for `--json`) and as a line of text.
fn describe(path: &str, result: &Result<(Validation, &'static str), String>) -> (Value, String) {
    match result {
        Err(e) => (json!({"file": path, "status": "error", "error": e}), format!("error      {e}")),
        Ok((v, mime)) => {
            let mut j = json!({"file": path, "status": v.status(), "content_type": mime});
            let detail = match v {
                Validation::Valid { stamp } => {
                    j["hash"] = json!(stamp.hash);
                    j["uid"] = json!(stamp.uid.to_string());
                    j["timestamp"] = json!(stamp.timestamp.to_rfc3339());
                    format!("hash={}", stamp.hash)
                }
                Validation::Modified { expected, actual, .. } => {
                    j["expected"] = json!(expected);
                    j["actual"] = json!(actual);
                    format!("stamp says {expected}, content hashes to {actual}")
                }
                Validation::Missing { actual } => {
                    j["actual"] = json!(actual);
                    format!("no stamp (content hashes to {actual})")
                }
                Validation::Malformed { offset, reason } => {
                    j["offset"] = json!(offset);
                    j["reason"] = json!(reason);
                    format!("at byte {offset}: {reason}")
                }
                Validation::Conflicting { stamps } => {
                    let hashes: Vec<&str> = stamps.iter().map(|s| s.hash.as_str()).collect();
                    j["hashes"] = json!(hashes);
                    format!("{} stamps disagree: {}", stamps.len(), hashes.join(", "))
                }
            };
            (j, format!("{:<11}{path}: {detail}", v.status()))
        }
    }
}

pub(super) fn run(files: &[PathBuf], as_json: bool) -> ExitCode {
    let mut progress = Progress::new(files.len());
    let mut verdicts = Vec::new();
    let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
    let mut all_valid = true;
    let mut out = std::io::stdout().lock();
    for path in files {
        let name = path.display().to_string();
        progress.next(&name);
        let result = verify_file(path).map(|(v, ty)| (v, ty.mime)).map_err(|e| e.to_string());
        progress.clear();
        let status = result.as_ref().map_or("error", |(v, _)| v.status());
        all_valid &= status == "valid";
        *counts.entry(status).or_default() += 1;
        let (j, line) = describe(&name, &result);
        if as_json {
            verdicts.push(j);
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let noun = if files.len() == 1 { "file" } else { "files" };
    let summary = format!("{} {noun}: {}", files.len(), summary.join(", "));
    if as_json {
        let _ = writeln!(out, "{}", Value::Array(verdicts));
        let _ = writeln!(std::io::stderr(), "{summary}");
    } else {
        let _ = writeln!(out, "{summary}");
    }
    if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
