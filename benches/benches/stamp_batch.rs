//! `stamp.batch` of 1,000 x 4 KiB items through the handler with the SQLite store, next to
//! raw BLAKE3 of the same 1,000 items (the baseline: what hashing alone costs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use onex_benches::source_text;
use onex_core::envelope::Envelope;
use onex_infra::handlers::StampHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::stores::SqliteStampStore;
use onex_spi::Handler;
use serde_json::json;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let path = std::env::temp_dir().join(format!("onex-bench-batch-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let handler = runtime.block_on(async { StampHandler::new(Arc::new(SqliteStampStore::open(&path).await.unwrap())) });
    let text = String::from_utf8(source_text(4096 * 1000)).unwrap();
    let items: Vec<String> = (0..1000).map(|i| text[i * 4096..(i + 1) * 4096].to_owned()).collect();
    let mut round = 0u64;
    let mut group = c.benchmark_group("stamp_batch_1000x4kib");
    group.sample_size(20);
    group.bench_function("baseline_raw_blake3", |b| {
        b.iter(|| {
            for item in &items {
                black_box(blake3::hash(item.as_bytes()));
            }
        })
    });
    group.bench_function("stamp_batch_sqlite", |b| {
        b.iter(|| {
            // A new namespace each round, so every round inserts 1,000 new rows.
            round += 1;
            let payload = json!({
                "namespace": format!("bench-{round}"),
                "items": items.iter().enumerate().map(|(i, c)| json!({"content": c, "file_path": format!("f{i}.py")})).collect::<Vec<_>>(),
            });
            let envelope = Envelope::request(new_uuid_v7(), "stamp.batch", payload, now_utc());
            let reply = runtime.block_on(handler.execute(&envelope)).unwrap();
            assert_eq!(reply["succeeded"], 1000);
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
