//! Stamping and validation next to raw `blake3::hash` of the same bytes, in one group each:
//! the ratio is the cost of normalising, parsing and placing the stamp. The `_two_cores` rows
//! are the path the handler and CLI take: normalisation on one core, hashing on another.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("baseline_raw_blake3", |b| b.iter(|| black_box(blake3::hash(black_box(&content)))));
    group.bench_function("stamp_lightweight", |b| b.iter(|| black_box(stamp(black_box(&content), &req).unwrap())));
    group.bench_function("validate", |b| b.iter(|| black_box(validate(black_box(&stamped)))));
    // What the stamp handler and the CLI run: hashing moves to a second core past one block.
    group.bench_function("stamp_lightweight_two_cores", |b| {
        b.iter(|| black_box(stamp_with(black_box(&content), normalized_hash_parallel(&content), &req).unwrap()))
    });
    group.bench_function("validate_two_cores", |b| {
        b.iter(|| black_box(judge(&normalized_hash_parallel(black_box(&stamped)), &stamped)))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_size(c, "stamp_1kib", 1024);
    bench_size(c, "stamp_1mib", 1 << 20);
}

criterion_group!(benches, bench);
criterion_main!(benches);
