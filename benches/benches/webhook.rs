//! Webhook signing (HMAC-SHA256 over `"<timestamp>.<body>"`, hex-encoded as the header value)
//! of a 1 KiB body, next to a bare SHA-256 of the same bytes in the same group: the ratio is
//! the cost of HMAC's two extra compressions, the framing and the hex encoding.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onex_infra::handlers::webhook::{Signer, verify_signature};
use sha2::{Digest, Sha256};

const TIMESTAMP: u64 = 1_763_683_200;

fn body() -> Vec<u8> {
    let mut body = br#"{"event":"order.created","data":{"items":["#.to_vec();
    while body.len() < 1024 - 3 {
        body.extend_from_slice(b"\"x\",");
    }
    body.truncate(1024 - 3);
    body.extend_from_slice(b"]}}");
    body
}

fn bench(c: &mut Criterion) {
    let body = body();
    assert_eq!(body.len(), 1024);
    let secret = b"whsec-bench-0123456789abcdef";
    let signer = Signer::new(secret).unwrap();
    let signature = signer.sign(TIMESTAMP, &body);
    let mut group = c.benchmark_group("webhook_sign_1kib");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline_sha256", |b| b.iter(|| black_box(Sha256::digest(black_box(&body)))));
    group.bench_function("sign", |b| b.iter(|| black_box(signer.sign(TIMESTAMP, black_box(&body)))));
    group.bench_function("sign_with_key_setup", |b| {
        b.iter(|| black_box(Signer::new(black_box(secret)).unwrap().sign(TIMESTAMP, black_box(&body))))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify_signature(secret, "1763683200", black_box(&signature), black_box(&body), TIMESTAMP, 300).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
