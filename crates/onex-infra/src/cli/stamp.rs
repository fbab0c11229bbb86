//! `stamp FILE…`: stamp files in place (or one file to stdout).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use onex_core::stamp::{StampFormat, StampRequest, UNKNOWN_TEXT};

use super::progress::Progress;
use crate::ids::{new_uuid_v7, now_utc};
use crate::stamp::{Output, stamp_file};

/// What `stamp` was asked to do.
#[derive(Debug)]
pub(super) struct StampArgs {
    pub files: Vec<PathBuf>,
    pub stdout: bool,
    pub format: StampFormat,
    pub author: Option<String>,
    pub label: Option<String>,
}

pub(super) fn run(args: StampArgs) -> ExitCode {
    if args.stdout && args.files.len() != 1 {
        let _ = writeln!(std::io::stderr(), "error: --stdout stamps exactly one file ({} given)", args.files.len());
        return ExitCode::from(2);
    }
    let mut progress = Progress::new(args.files.len());
    let (mut stamped, mut hash_only, mut failed) = (0usize, 0usize, 0usize);
    let mut out = std::io::stdout().lock();
    for path in &args.files {
        progress.next(&path.display().to_string());
        let display = path.display().to_string();
        let req = StampRequest {
            format: args.format,
            uid: new_uuid_v7(),
            timestamp: now_utc(),
            author: args.author.as_deref(),
            version: args.label.as_deref(),
            file_path: Some(&display),
            content_type: UNKNOWN_TEXT,
        };
        let output = if args.stdout { Output::Writer(&mut out) } else { Output::InPlace };
        let result = stamp_file(path, &req, output);
        progress.clear();
        match result {
            Ok(s) if args.stdout => {
                let _ = writeln!(std::io::stderr(), "{} {display} hash={}", s.format.as_str(), s.fields.hash);
                stamped += 1;
            }
            Ok(s) => {
                if s.format == StampFormat::HashOnly {
                    hash_only += 1;
                    let _ = writeln!(out, "hash-only {display} ({}) hash={}", s.content_type.mime, s.fields.hash);
                } else {
                    stamped += 1;
                    let _ = writeln!(out, "stamped   {display} ({}) hash={}", s.format.as_str(), s.fields.hash);
                }
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(std::io::stderr(), "error: {e}");
            }
        }
    }
    let summary = format!("{stamped} stamped, {hash_only} hash-only (content left unchanged), {failed} failed");
    if args.stdout {
        let _ = writeln!(std::io::stderr(), "{summary}");
    } else {
        let _ = writeln!(out, "{summary}");
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
