//! Stamping and verifying files on disk: round trips, restamping, atomic replacement,
//! and clear errors for paths that cannot be read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use chrono::DateTime;
use onex_core::stamp::{StampFormat, StampRequest, UNKNOWN_TEXT, Validation, normalized_hash};
use onex_infra::stamp::{FileError, Output, stamp_file, verify_file};
use uuid::Uuid;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onex-stamp-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn request(format: StampFormat, uid: u128) -> StampRequest<'static> {
    StampRequest {
        format,
        uid: Uuid::from_u128(uid),
        timestamp: DateTime::from_timestamp(1_763_683_200, 0).unwrap(),
        author: None,
        version: None,
        file_path: None,
        content_type: UNKNOWN_TEXT,
    }
}

#[test]
fn stamp_then_verify_and_restamp_keeps_one_stamp() {
    let dir = scratch("roundtrip");
    let path = dir.join("job.py");
    std::fs::write(&path, "#!/usr/bin/env python3\r\nprint('x')\r\n\r\n\r\n\r\nprint('y')\r\n").unwrap();
    let first = stamp_file(&path, &request(StampFormat::Lightweight, 1), Output::InPlace).unwrap();
    assert_eq!(first.format, StampFormat::Lightweight);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("#!/usr/bin/env python3\r\n# ONEX:uid=00000000-0000-0000-0000-000000000001,"), "{text}");
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Valid { .. }));
    let second = stamp_file(&path, &request(StampFormat::Rich, 2), Output::InPlace).unwrap();
    assert_eq!(second.fields.hash, first.fields.hash, "restamping does not change the hash");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(normalized_hash(&bytes).stamp_count, 1, "one stamp after restamping");
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Valid { .. }));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}

#[test]
fn the_streamed_file_and_the_in_memory_content_agree() {
    let dir = scratch("agree");
    let path = dir.join("big.md");
    // Several read chunks, with stamps-looking lines and CRLF scattered across chunk borders.
    let unit = "line with words\r\n# ONEX:uid=not-really\n\n\n\ntext \u{a0}\n";
    std::fs::write(&path, unit.repeat(200_000)).unwrap();
    let content = std::fs::read(&path).unwrap();
    // Before stamping, the scattered stamp-like lines are a clear "malformed".
    match verify_file(&path).unwrap().0 {
        Validation::Malformed { reason, .. } => assert!(reason.contains("200000 stamps"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let stamped = stamp_file(&path, &request(StampFormat::Lightweight, 3), Output::InPlace).unwrap();
    assert_eq!(stamped.fields.hash, normalized_hash(&content).hash.to_hex().to_string());
    // Stamping replaced every old stamp with the one new stamp.
    assert_eq!(normalized_hash(&std::fs::read(&path).unwrap()).stamp_count, 1);
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Valid { .. }));
}

#[test]
fn stdout_output_leaves_the_file_alone() {
    let dir = scratch("stdout");
    let path = dir.join("a.rs");
    std::fs::write(&path, "fn main() {}\n").unwrap();
    let mut out = Vec::new();
    stamp_file(&path, &request(StampFormat::Lightweight, 4), Output::Writer(&mut out)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "fn main() {}\n");
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("// ONEX:uid=") && out.ends_with("fn main() {}\n"), "{out}");
}

#[test]
fn binary_and_non_utf8_files_get_hash_only_and_stay_unchanged() {
    let dir = scratch("binary");
    for (name, bytes) in [("img.png", &b"\x89PNG\0\0data"[..]), ("latin1.txt", &b"caf\xe9\n"[..])] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let s = stamp_file(&path, &request(StampFormat::Lightweight, 5), Output::InPlace).unwrap();
        assert_eq!(s.format, StampFormat::HashOnly, "{name}");
        assert_eq!(s.fields.hash, blake3::hash(bytes).to_hex().to_string(), "{name}: raw hash");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: unchanged");
        assert!(matches!(verify_file(&path).unwrap().0, Validation::Missing { .. }));
    }
}

#[test]
fn empty_files_and_files_that_are_only_a_stamp() {
    let dir = scratch("empty");
    let path = dir.join("empty.sh");
    std::fs::write(&path, "").unwrap();
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Missing { .. }));
    stamp_file(&path, &request(StampFormat::Lightweight, 6), Output::InPlace).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# ONEX:uid=") && text.lines().count() == 1, "{text}");
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Valid { .. }));
}

#[test]
fn unreadable_paths_are_named_in_the_error_and_nothing_is_created() {
    let dir = scratch("unreadable");
    let missing = dir.join("nope.py");
    let err = stamp_file(&missing, &request(StampFormat::Lightweight, 7), Output::InPlace).unwrap_err();
    assert!(matches!(err, FileError::Io { .. }));
    assert!(err.to_string().contains("nope.py") && err.to_string().contains("open"), "{err}");
    assert!(verify_file(&dir).unwrap_err().to_string().contains(&dir.display().to_string()));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file created");
}

#[cfg(unix)]
#[test]
fn in_place_stamping_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("perms");
    let path = dir.join("run.sh");
    std::fs::write(&path, "echo hi\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).unwrap();
    stamp_file(&path, &request(StampFormat::Lightweight, 8), Output::InPlace).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o750);
}

#[test]
fn a_bad_author_is_refused_before_the_file_is_touched() {
    let dir = scratch("author");
    let path = dir.join("a.py");
    std::fs::write(&path, "x = 1\n").unwrap();
    let mut req = request(StampFormat::Lightweight, 9);
    req.author = Some("evil,hash=0");
    let err = stamp_file(&path, &req, Output::InPlace).unwrap_err();
    assert!(err.to_string().contains("may not contain"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 1\n");
}
