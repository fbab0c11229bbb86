//! A 2 GiB sparse file is hashed and "stamped" by streaming: memory stays far below its size.
//! (Its own test binary, so the peak memory read from /proc is this test's alone.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::DateTime;
use onex_core::stamp::{StampFormat, StampRequest, UNKNOWN_TEXT, Validation};
use onex_infra::stamp::{Output, stamp_file, verify_file};
use uuid::Uuid;

const SIZE: u64 = 2 << 30;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_2_gib_sparse_file_streams_in_bounded_memory() {
    let path = std::env::temp_dir().join(format!("onex-sparse-{}.bin", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    drop(file);
    let req = StampRequest {
        format: StampFormat::Lightweight,
        uid: Uuid::from_u128(1),
        timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        author: None,
        version: None,
        file_path: None,
        content_type: UNKNOWN_TEXT,
    };
    let stamped = stamp_file(&path, &req, Output::InPlace).unwrap();
    assert_eq!(stamped.format, StampFormat::HashOnly, "zeros are binary: hash-only");
    assert_eq!(stamped.hashed_len, SIZE);
    let mut expected = blake3::Hasher::new();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(SIZE >> 20) {
        expected.update(&zeros);
    }
    assert_eq!(stamped.fields.hash, expected.finalize().to_hex().to_string());
    assert!(matches!(verify_file(&path).unwrap().0, Validation::Missing { .. }));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE, "unchanged");
    std::fs::remove_file(&path).unwrap();
    let peak = peak_rss_kib();
    assert!(peak > 0 && peak < 128 * 1024, "peak RSS {peak} KiB for a {SIZE}-byte file");
}
