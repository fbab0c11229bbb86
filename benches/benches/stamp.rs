//! Stamping and validation next to raw `blake3::hash` of the same bytes, in one group each:
//! the ratio is the cost of normalising, parsing and placing the stamp. The `_two_cores` rows
//! are the path the stamp handler takes: large content normalised and hashed in two halves, one
//! per core (smaller content normalised on one core while the other hashes).
//!
//! After the criterion groups, the targets are judged as `check` lines (`onex_benches::check`):
//! 1 MiB stamped and validated at >= 90 % of raw single-core BLAKE3 with two cores and >= 60 %
//! on one, 1 KiB stamped in <= 1.5x raw. With `ONEX_BENCH_QUICK=1` only the checks run.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use chrono::DateTime;
use criterion::{Criterion, Throughput};
use onex_benches::check::{Check, seconds_per_call};
use onex_benches::source_text;
use onex_core::stamp::{StampFormat, StampRequest, detect, judge, stamp, stamp_with, validate};
use onex_infra::stamp::normalized_hash_parallel;
use uuid::Uuid;

fn request(content: &[u8]) -> StampRequest<'static> {
    StampRequest {
        format: StampFormat::Lightweight,
        uid: Uuid::from_u128(7),
        timestamp: DateTime::from_timestamp(1_763_683_200, 0).unwrap(),
        author: None,
        version: None,
        file_path: Some("handler.py"),
        content_type: detect(Some("handler.py"), content),
    }
}

fn bench_size(c: &mut Criterion, name: &str, len: usize) {
    let content = source_text(len);
    let req = request(&content);
    let stamped = stamp(&content, &req).unwrap().to_vec();
    // The handler holds content it stamps as shared bytes, so the second core can read it.
    let (shared, shared_stamped) = (Bytes::from(content.clone()), Bytes::from(stamped.clone()));
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("baseline_raw_blake3", |b| b.iter(|| black_box(blake3::hash(black_box(&content)))));
    group.bench_function("stamp_lightweight", |b| b.iter(|| black_box(stamp(black_box(&content), &req).unwrap())));
    group.bench_function("validate", |b| b.iter(|| black_box(validate(black_box(&stamped)))));
    // What the stamp handler and the CLI run: hashing moves to a second core past one block.
    group.bench_function("stamp_lightweight_two_cores", |b| {
        b.iter(|| black_box(stamp_with(black_box(&content), normalized_hash_parallel(&shared), &req).unwrap()))
    });
    group.bench_function("validate_two_cores", |b| {
        b.iter(|| black_box(judge(&normalized_hash_parallel(black_box(&shared_stamped)), &stamped)))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_size(c, "stamp_1kib", 1024);
    bench_size(c, "stamp_1mib", 1 << 20);
}

/// The targets: each path's throughput as a share of raw BLAKE3's on the same bytes.
fn checks() -> Vec<Check> {
    const BATCHES: usize = 9;
    let mut checks = Vec::new();
    let mib = source_text(1 << 20);
    let req = request(&mib);
    let stamped = stamp(&mib, &req).unwrap().to_vec();
    let (shared, shared_stamped) = (Bytes::from(mib.clone()), Bytes::from(stamped.clone()));
    let raw = seconds_per_call(BATCHES, || {
        black_box(blake3::hash(black_box(&mib)));
    });
    let paths: [(&str, &dyn Fn(), f64); 4] = [
        ("1 MiB stamp, two cores", &|| drop(black_box(stamp_with(&mib, normalized_hash_parallel(&shared), &req))), 0.9),
        (
            "1 MiB validate, two cores",
            &|| drop(black_box(judge(&normalized_hash_parallel(&shared_stamped), &stamped))),
            0.9,
        ),
        ("1 MiB stamp, one core", &|| drop(black_box(stamp(black_box(&mib), &req))), 0.6),
        ("1 MiB validate, one core", &|| drop(black_box(validate(black_box(&stamped)))), 0.6),
    ];
    println!("raw BLAKE3, one core, 1 MiB: {:.0} µs ({:.2} GB/s)", raw * 1e6, (1 << 20) as f64 / raw / 1e9);
    for (name, path, bound) in paths {
        let took = seconds_per_call(BATCHES, path);
        println!("{name}: {:.0} µs", took * 1e6);
        checks.push(Check::at_least(&format!("{name} / raw BLAKE3 one core (throughput)"), raw / took, bound));
    }
    let kib = source_text(1024);
    let req = request(&kib);
    let raw = seconds_per_call(BATCHES, || {
        black_box(blake3::hash(black_box(&kib)));
    });
    let took = seconds_per_call(BATCHES, || drop(black_box(stamp(black_box(&kib), &req))));
    println!("1 KiB: raw BLAKE3 {:.2} µs, stamp {:.2} µs", raw * 1e6, took * 1e6);
    checks.push(Check::at_most("1 KiB stamp / raw BLAKE3 (time)", took / raw, 1.5));
    checks
}

fn main() {
    if !onex_benches::check::quick_run() {
        let mut criterion = Criterion::default().configure_from_args();
        bench(&mut criterion);
        criterion.final_summary();
    }
    for check in checks() {
        println!("{check}");
    }
}
