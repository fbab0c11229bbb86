//! `StampStore` behaviour, one suite run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use onex_core::error::ErrorCategory;
use onex_infra::stores::{PostgresStampStore, SqliteStampStore};
use onex_spi::{SaveOutcome, StampRecord, StampStore};
use serde_json::json;

/// A name no other run of these tests uses: process id and wall-clock nanoseconds.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn hash(label: &str, i: usize) -> String {
    blake3::hash(format!("{label}/{i}").as_bytes()).to_hex().to_string()
}

fn record(file_hash: &str, namespace: &str, i: usize) -> StampRecord {
    StampRecord {
        file_hash: file_hash.to_owned(),
        file_path: (!i.is_multiple_of(3)).then(|| format!("docs/file-{i}.md")),
        file_size: 1_000 + i as u64,
        content_type: "text/markdown".to_owned(),
        stamp: json!({
            "version": 1,
            "created_by": "stamp_store test",
            "index": i,
            "ratio": 0.25,
            "tags": ["a", "b"],
            "nested": {"ok": true, "none": null},
        }),
        namespace: namespace.to_owned(),
    }
}

/// The behaviour every `StampStore` must have; `namespace` is unused by anything else.
/// Prints how long the 1,000-record batch took (`-- --nocapture` shows it).
#[allow(clippy::print_stderr)]
async fn stamp_store_suite(store: &dyn StampStore, namespace: &str, backend: &str) {
    let other_namespace = format!("{namespace}-other");
    let first = record(&hash("single", 0), namespace, 1);

    assert_eq!(store.save(&first).await.unwrap(), SaveOutcome::Inserted);

    let mut changed = record(&first.file_hash, namespace, 2);
    changed.stamp = json!({"different": true});
    assert_eq!(store.save(&changed).await.unwrap(), SaveOutcome::AlreadyExists);
    assert_eq!(store.find_by_hash(&first.file_hash, namespace).await.unwrap(), Some(first.clone()));

    let elsewhere = record(&first.file_hash, &other_namespace, 3);
    assert_eq!(store.save(&elsewhere).await.unwrap(), SaveOutcome::Inserted);
    assert_eq!(store.find_by_hash(&first.file_hash, &other_namespace).await.unwrap(), Some(elsewhere));
    assert_eq!(store.find_by_hash(&first.file_hash, namespace).await.unwrap(), Some(first.clone()));

    // JSON that a text or JSONB column might mangle comes back equal, by either save.
    let mut awkward = record(&hash("awkward", 0), namespace, 4);
    awkward.stamp = json!({
        "text": "héllo ✓ \"quoted\" \\ back\nslash / tab\t",
        "u64_max": u64::MAX,
        "i64_min": i64::MIN,
        "tenth": 0.1,
        "huge": 1.5e300,
        "empty": {},
        "list": [[], {}, null, false],
    });
    let mut awkward_batched = awkward.clone();
    awkward_batched.file_hash = hash("awkward", 1);
    awkward_batched.stamp = json!("a bare string");
    assert_eq!(store.save(&awkward).await.unwrap(), SaveOutcome::Inserted);
    assert_eq!(store.save_batch(std::slice::from_ref(&awkward_batched)).await.unwrap(), [SaveOutcome::Inserted]);
    assert_eq!(store.find_by_hash(&awkward.file_hash, namespace).await.unwrap(), Some(awkward));
    assert_eq!(store.find_by_hash(&awkward_batched.file_hash, namespace).await.unwrap(), Some(awkward_batched));

    assert_eq!(store.find_by_hash(&hash("never saved", 0), namespace).await.unwrap(), None);
    assert_eq!(store.save_batch(&[]).await.unwrap(), []);

    // 1,000 records; every 10th repeats the hash of the record nine places before it.
    let batch: Vec<StampRecord> = (0..1_000)
        .map(|i| {
            let h = if i % 10 == 9 { hash("batch", i - 9) } else { hash("batch", i) };
            record(&h, namespace, i)
        })
        .collect();
    let started = Instant::now();
    let outcomes = store.save_batch(&batch).await.unwrap();
    eprintln!("{backend}: save_batch of {} records took {:?}", batch.len(), started.elapsed());
    let expected: Vec<SaveOutcome> =
        (0..1_000).map(|i| if i % 10 == 9 { SaveOutcome::AlreadyExists } else { SaveOutcome::Inserted }).collect();
    assert_eq!(outcomes, expected);
    for (i, r) in batch.iter().enumerate().filter(|(i, _)| i % 10 != 9) {
        assert_eq!(store.find_by_hash(&r.file_hash, namespace).await.unwrap().as_ref(), Some(r), "record {i}");
    }

    // Saving the batch again changes nothing.
    let again = store.save_batch(&batch[..20]).await.unwrap();
    assert!(again.iter().all(|o| *o == SaveOutcome::AlreadyExists), "{again:?}");
}

/// A fresh database path under the temp dir, in a directory that does not exist yet.
fn temp_db() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(unique("onex-stamp-store"));
    (dir.join("nested/stamps.db"), dir)
}

#[tokio::test]
async fn sqlite_stamp_store_behaves() {
    let (path, dir) = temp_db();
    let store = SqliteStampStore::open(&path).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    stamp_store_suite(&store, &unique("ns"), "sqlite").await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_stamps_survive_reopening() {
    let (path, dir) = temp_db();
    let saved = record(&hash("durable", 0), "ns", 7);
    {
        let store = SqliteStampStore::open(&path).await.unwrap();
        assert_eq!(store.save(&saved).await.unwrap(), SaveOutcome::Inserted);
        store.pool().close().await;
    }
    let store = SqliteStampStore::open(&path).await.unwrap();
    assert_eq!(store.find_by_hash(&saved.file_hash, "ns").await.unwrap(), Some(saved.clone()));
    assert_eq!(store.save(&saved).await.unwrap(), SaveOutcome::AlreadyExists);
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The test server's store; fails (never skips) if PostgreSQL is not running.
async fn postgres_store() -> PostgresStampStore {
    let url = common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    match PostgresStampStore::connect(&url, 4).await {
        Ok(store) => store,
        Err(e) => panic!(
            "PostgreSQL is needed for this test and did not answer ({e}); \
             run `cargo xtask services up` (or set ONEX_POSTGRES_URL)"
        ),
    }
}

#[tokio::test]
async fn postgres_stamp_store_behaves() {
    let store = postgres_store().await;
    let namespace = unique("stamp-store-test");
    stamp_store_suite(&store, &namespace, "postgres").await;
    sqlx::query("DELETE FROM metadata_stamps WHERE namespace = $1 OR namespace = $2")
        .bind(&namespace)
        .bind(format!("{namespace}-other"))
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_connect_to_a_closed_port_is_unavailable_and_hides_the_password() {
    let started = Instant::now();
    let error = PostgresStampStore::connect("postgres://u:s3cret@127.0.0.1:1/db", 2).await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Unavailable, "{error}");
    assert!(error.retryable());
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    assert!(started.elapsed().as_secs() < 5, "a refused connection must fail fast");
}
