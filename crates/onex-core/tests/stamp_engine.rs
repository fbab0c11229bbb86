//! Stamping and validation as a user meets them: round trips in every comment style, restamping,
//! and a clear answer for every kind of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use onex_core::stamp::{
    BINARY, StampFormat, StampRequest, Validation, detect, normalized_hash, stamp, strip_stamps, validate,
};
use uuid::Uuid;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn request(path: &str, content: &[u8], format: StampFormat, uid: u128) -> StampRequest<'static> {
    StampRequest {
        format,
        uid: Uuid::from_u128(uid),
        timestamp: at(1_763_683_200),
        author: Some("ci"),
        version: None,
        file_path: Some(Box::leak(path.to_owned().into_boxed_str())),
        content_type: detect(Some(path), content),
    }
}

fn stamped(path: &str, content: &[u8], format: StampFormat) -> Vec<u8> {
    stamp(content, &request(path, content, format, 1)).unwrap().to_vec()
}

#[test]
fn lightweight_and_rich_round_trip_in_every_comment_style() {
    let cases: [(&str, &str); 5] =
        [("a.py", "# "), ("a.rs", "// "), ("a.md", "<!-- "), ("a.sql", "-- "), ("a.yaml", "# ")];
    for (path, open) in cases {
        let content = b"first line\nsecond line\n";
        let out = stamped(path, content, StampFormat::Lightweight);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(&format!("{open}ONEX:uid=00000000-0000-0000-0000-000000000001,hash=")), "{text}");
        assert!(text.ends_with("first line\nsecond line\n"), "{text}");
        assert!(validate(&out).is_valid(), "{path}: {:?}", validate(&out));
        let rich = stamped(path, content, StampFormat::Rich);
        assert!(validate(&rich).is_valid(), "{path}: {:?}", validate(&rich));
        assert!(String::from_utf8(rich).unwrap().contains("integrity_algorithm: blake3"));
    }
}

#[test]
fn the_stamp_hash_is_blake3_of_the_normalised_content() {
    let content = b"\r\nhello\r\n\r\n\r\n\r\nworld  \n";
    let s = stamp(content, &request("x.txt", content, StampFormat::Lightweight, 1)).unwrap();
    assert_eq!(s.fields.hash, blake3::hash(b"hello\n\nworld").to_hex().to_string());
    assert_eq!(s.hashed_len, 12);
}

#[test]
fn restamping_keeps_one_stamp_and_the_same_hash() {
    let content = b"#!/usr/bin/env python3\nprint('hi')\n";
    let first = stamped("run.py", content, StampFormat::Lightweight);
    let again = stamp(&first, &request("run.py", &first, StampFormat::Lightweight, 2)).unwrap();
    let second = again.to_vec();
    assert_eq!(normalized_hash(&second).stamp_count, 1);
    assert_eq!(normalized_hash(&second).hash, normalized_hash(&first).hash);
    // Same uid and time: byte-identical output.
    assert_eq!(stamped("run.py", &first, StampFormat::Lightweight), first);
    // The stamp goes after the shebang.
    let text = String::from_utf8(second).unwrap();
    assert!(text.starts_with("#!/usr/bin/env python3\n# ONEX:uid=00000000-0000-0000-0000-000000000002"), "{text}");
    assert!(validate(text.as_bytes()).is_valid());
    // Switching format replaces the old stamp too.
    let rich = stamped("run.py", text.as_bytes(), StampFormat::Rich);
    assert_eq!(normalized_hash(&rich).stamp_count, 1);
    assert!(validate(&rich).is_valid());
}

#[test]
fn an_unchanged_file_is_not_copied() {
    let content = b"body\n";
    let s = stamp(content, &request("a.py", content, StampFormat::Lightweight, 1)).unwrap();
    assert!(std::ptr::eq(s.pieces()[2].as_ptr(), content.as_ptr()), "content is borrowed, not copied");
}

#[test]
fn crlf_files_keep_crlf_and_verify() {
    let content = b"one\r\ntwo\r\n";
    let out = stamped("a.py", content, StampFormat::Lightweight);
    let line_end = out.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(out[line_end - 1], b'\r', "the stamp line ends like the file's lines");
    assert!(validate(&out).is_valid());
    // A CRLF file and its LF twin have the same hash.
    assert_eq!(normalized_hash(content).hash, normalized_hash(b"one\ntwo\n").hash);
}

#[test]
fn binary_and_comment_less_content_get_hash_only() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let s = stamp(png, &request("logo.png", png, StampFormat::Lightweight, 1)).unwrap();
    assert_eq!(s.format, StampFormat::HashOnly);
    assert_eq!(s.content_type, BINARY);
    assert_eq!(s.fields.hash, blake3::hash(png).to_hex().to_string(), "binary content is hashed raw");
    assert_eq!(s.to_vec(), png, "hash-only leaves the content alone");
    let json = br#"{"a": 1}"#;
    assert_eq!(stamp(json, &request("a.json", json, StampFormat::Rich, 1)).unwrap().format, StampFormat::HashOnly);
    let latin1 = b"caf\xe9\n";
    assert_eq!(detect(Some("a.py"), latin1), BINARY, "non-UTF-8 is not text");
}

#[test]
fn every_bad_input_has_a_clear_answer() {
    let good = String::from_utf8(stamped("a.py", b"x = 1\n", StampFormat::Lightweight)).unwrap();
    let line = good.lines().next().unwrap();
    let hash = line.split("hash=").nth(1).unwrap().split(',').next().unwrap();

    // Empty file, and a file that is only a stamp.
    assert!(matches!(validate(b""), Validation::Missing { .. }));
    let only = stamped("a.py", b"", StampFormat::Lightweight);
    assert!(validate(&only).is_valid(), "{:?}", validate(&only));

    // A forged stamp: right shape, wrong hash.
    let forged = good.replace(hash, &"0".repeat(64));
    match validate(forged.as_bytes()) {
        Validation::Modified { expected, actual, .. } => {
            assert_eq!(expected, "0".repeat(64));
            assert_eq!(actual, hash);
        }
        other => panic!("{other:?}"),
    }

    // Content edited after stamping.
    assert!(matches!(validate(format!("{good}y = 2\n").as_bytes()), Validation::Modified { .. }));

    // Truncated hex.
    let truncated = good.replace(hash, &hash[..60]);
    assert_malformed(&truncated, "60 hex digits");

    // A bad uid, a bad time, an unknown field.
    assert_malformed(&good.replacen("uid=0", "uid=z", 1), "not a UUID");
    assert_malformed(&good.replacen(",ts=", ",ts=yesterday", 1), "RFC 3339");
    assert_malformed(&good.replacen(",author=", ",colour=", 1), "unknown field `colour`");

    // A stamp in the middle of the file.
    let middle = format!("x = 1\n{line}\ny = 2\n");
    assert_malformed(&middle, "not on the file's first line");

    // Two stamps that disagree (a rich block appended with another hash).
    let other = stamped("a.py", b"other\n", StampFormat::Rich);
    let other_block = String::from_utf8(other).unwrap();
    let block = &other_block[other_block.find("# <!--").unwrap()..];
    let two = format!("{good}\n{block}");
    match validate(two.as_bytes()) {
        Validation::Conflicting { stamps } => assert_eq!(stamps.len(), 2),
        v => panic!("{v:?}"),
    }

    // A rich block without its end marker.
    let open_block = format!("x = 1\n{}", &block[..block.find("# <!-- ONEX_METADATA_END").unwrap()]);
    assert_malformed(&open_block, "no end marker");

    // An author that would break the stamp line is refused before stamping.
    let mut req = request("a.py", b"x", StampFormat::Lightweight, 1);
    req.author = Some("a,b");
    assert!(stamp(b"x", &req).unwrap_err().to_string().contains("may not contain"));
}

fn assert_malformed(content: &str, fragment: &str) {
    match validate(content.as_bytes()) {
        Validation::Malformed { reason, .. } => assert!(reason.contains(fragment), "{reason}"),
        other => panic!("expected malformed ({fragment}), got {other:?} for {content:?}"),
    }
}

#[test]
fn stripping_leaves_everything_but_stamps() {
    let content = b"#!/bin/sh\n# ONEX:uid=1\necho hi\r\n\n\n\n";
    assert_eq!(strip_stamps(content), b"#!/bin/sh\necho hi\r\n\n\n\n");
}
