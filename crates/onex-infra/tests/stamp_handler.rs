//! The `stamp` handler through its spi `Handler` interface, persisting into a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine;
use onex_core::envelope::Envelope;
use onex_infra::handlers::StampHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::stores::SqliteStampStore;
use onex_spi::{Handler, SpiError};
use serde_json::{Value, json};

async fn handler(name: &str) -> StampHandler {
    let path = std::env::temp_dir().join(format!("onex-stamp-handler-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    StampHandler::new(Arc::new(SqliteStampStore::open(&path).await.unwrap()))
}

async fn call(h: &StampHandler, op: &str, payload: Value) -> Result<Value, SpiError> {
    h.execute(&Envelope::request(new_uuid_v7(), op, payload, now_utc())).await
}

#[tokio::test]
async fn create_validate_lookup_round_trip() {
    let h = handler("roundtrip").await;
    let created = call(&h, "stamp.create", json!({"content": "print('hi')\n", "file_path": "hi.py"})).await.unwrap();
    assert_eq!(created["format"], "lightweight");
    assert_eq!(created["stored"], "inserted");
    let stamped = created["stamped_content"].as_str().unwrap();
    assert!(stamped.starts_with("# ONEX:uid=") && stamped.ends_with("print('hi')\n"), "{stamped}");
    let hash = created["hash"].as_str().unwrap();

    let valid = call(&h, "stamp.validate", json!({"content": stamped})).await.unwrap();
    assert_eq!((valid["status"].as_str(), valid["hash"].as_str()), (Some("valid"), Some(hash)));
    let edited = format!("{stamped}print('more')\n");
    let modified = call(&h, "stamp.validate", json!({"content": edited})).await.unwrap();
    assert_eq!(modified["status"], "modified");
    assert_eq!(modified["expected"], hash);

    let found = call(&h, "stamp.lookup", json!({"hash": hash})).await.unwrap();
    assert_eq!(found["file_path"], "hi.py");
    assert_eq!(found["stamp"]["uid"], created["uid"]);
    let again = call(&h, "stamp.create", json!({"content": "print('hi')\n", "file_path": "hi.py"})).await.unwrap();
    assert_eq!(again["stored"], "already_exists", "unique on hash + namespace");
    let other_ns = call(&h, "stamp.create", json!({"content": "print('hi')\n", "namespace": "team-b"})).await.unwrap();
    assert_eq!(other_ns["stored"], "inserted");
}

#[tokio::test]
async fn binary_content_is_hash_only_and_validates_from_the_store() {
    let h = handler("binary").await;
    let bytes = b"\x89PNG\0\0\x01\x02";
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let created = call(&h, "stamp.create", json!({"content_base64": b64, "file_path": "logo.png"})).await.unwrap();
    assert_eq!(created["format"], "hash_only");
    assert!(created.get("stamped_content").is_none() && created.get("stamped_content_base64").is_none());
    assert_eq!(created["hash"], blake3::hash(bytes).to_hex().to_string());
    let v = call(&h, "stamp.validate", json!({"content_base64": b64, "file_path": "logo.png"})).await.unwrap();
    assert_eq!((v["status"].as_str(), v["source"].as_str()), (Some("valid"), Some("store")));
    let raw = call(&h, "stamp.hash", json!({"content_base64": b64})).await.unwrap();
    assert_eq!(raw["normalized"], false);
}

#[tokio::test]
async fn batch_keeps_order_and_one_failure_does_not_fail_the_others() {
    let h = handler("batch").await;
    let items: Vec<Value> = (0..6)
        .map(|i| match i {
            2 => json!({"content": "x", "colour": "red"}),
            4 => json!({"content": "y", "content_base64": "eQ=="}),
            _ => json!({"content": format!("item {i}\n"), "file_path": format!("f{i}.yaml")}),
        })
        .collect();
    let out = call(&h, "stamp.batch", json!({"items": items, "namespace": "batch"})).await.unwrap();
    assert_eq!((out["succeeded"].as_u64(), out["failed"].as_u64()), (Some(4), Some(2)));
    let results = out["results"].as_array().unwrap();
    for (i, r) in results.iter().enumerate() {
        let ok = r["ok"].as_bool().unwrap();
        assert_eq!(ok, i != 2 && i != 4, "item {i}: {r}");
        if ok {
            assert_eq!(r["stored"], "inserted");
            let content = r["stamped_content"].as_str().unwrap();
            assert!(content.ends_with(&format!("item {i}\n")), "order kept: {content}");
        }
    }
    assert!(results[2]["error"]["message"].as_str().unwrap().contains("unknown field `colour`"));
    assert_eq!(results[2]["error"]["category"], "validation");
    assert!(results[4]["error"]["message"].as_str().unwrap().contains("not both"));
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let h = handler("bad").await;
    let e = call(&h, "stamp.create", json!({"file_path": "a.py"})).await.unwrap_err();
    assert!(e.message().contains("`content` or `content_base64` is required"), "{e}");
    let e = call(&h, "stamp.create", json!({"content": "x", "format": "fancy"})).await.unwrap_err();
    assert!(e.message().contains("format `fancy`"), "{e}");
    let e = call(&h, "stamp.create", json!({"content": "x", "author": "a,b"})).await.unwrap_err();
    assert!(e.message().contains("may not contain"), "{e}");
    let e = call(&h, "stamp.lookup", json!({"hash": "00"})).await.unwrap_err();
    assert_eq!(e.code(), "ONEX_INFRA_021_NOT_FOUND");
    let envelope = Envelope::request(new_uuid_v7(), "stamp.frobnicate", json!({}), now_utc());
    let e = h.execute(&envelope).await.unwrap_err();
    assert!(e.message().contains(&envelope.envelope_id.to_string()) && e.message().contains("stamp.frobnicate"), "{e}");
}
