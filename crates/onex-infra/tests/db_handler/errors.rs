//! Failures a caller relies on: their codes and categories, one statement per request,
//! injection through parameters doing nothing.

use onex_core::envelope::Envelope;
use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use onex_infra::handlers::DbHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_spi::Handler;
use serde_json::json;

use super::{TempDir, call, drop_table, lite, ok, pg, unique};

/// Both databases, each with a fresh table `(id PRIMARY KEY, name TEXT NOT NULL)`.
async fn both_with_table(dir: &TempDir) -> Vec<(&'static str, DbHandler, String)> {
    let mut out = Vec::new();
    for (name, db) in [("postgres", pg(json!({})).await), ("sqlite", lite(dir, json!({})).await)] {
        let table = unique("errs");
        ok(&db, "db.execute", &format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"), json!([]))
            .await;
        out.push((name, db, table));
    }
    out
}

#[tokio::test]
async fn a_unique_violation_is_a_conflict() {
    let dir = TempDir::new("unique");
    for (name, db, table) in both_with_table(&dir).await {
        let insert = format!("INSERT INTO {table} (id, name) VALUES ($1, $2)");
        ok(&db, "db.execute", &insert, json!([1, "a"])).await;
        let e = call(&db, "db.execute", json!({"sql": insert, "params": [1, "b"]})).await.unwrap_err();
        assert_eq!(e.code(), codes::DB_CONFLICT.as_str(), "{name}: {e}");
        assert_eq!(e.category(), ErrorCategory::Conflict, "{name}");
        assert!(!e.retryable(), "{name}");
        assert!(e.message().contains("db.execute"), "{name}: {e}");
        drop_table(&db, &table).await;
    }
}

#[tokio::test]
async fn syntax_errors_undefined_tables_and_other_constraints_are_validation() {
    let dir = TempDir::new("syntax");
    for (name, db, table) in both_with_table(&dir).await {
        for sql in [
            "SELEC 1".to_owned(),
            format!("SELECT * FROM {table}_missing"),
            format!("INSERT INTO {table} (id, name) VALUES (1, NULL)"),
        ] {
            let e = call(&db, "db.query", json!({"sql": sql})).await.unwrap_err();
            assert_eq!(e.code(), codes::DB_REFUSED.as_str(), "{name} `{sql}`: {e}");
            assert_eq!(e.category(), ErrorCategory::Validation, "{name} `{sql}`");
        }
        drop_table(&db, &table).await;
    }
}

#[tokio::test]
async fn two_statements_are_refused_naming_the_envelope_and_field() {
    let dir = TempDir::new("two");
    for (name, db, table) in both_with_table(&dir).await {
        let request = Envelope::request(
            new_uuid_v7(),
            "db.execute",
            json!({"sql": format!("DELETE FROM {table}; DROP TABLE {table}")}),
            now_utc(),
        );
        let e = db.execute(&request).await.unwrap_err();
        assert_eq!(e.code(), codes::DB_NOT_ONE_STATEMENT.as_str(), "{name}: {e}");
        assert_eq!(e.category(), ErrorCategory::Validation);
        let message = e.message();
        assert!(message.contains(&request.envelope_id.to_string()), "{message}");
        assert!(message.contains("db.execute") && message.contains("`sql`"), "{message}");
        let e = call(
            &db,
            "db.transaction",
            json!({"statements": [{"sql": "SELECT 1"}, {"sql": format!("SELECT 1; DROP TABLE {table}")}]}),
        )
        .await
        .unwrap_err();
        assert!(e.message().contains("`statements[1].sql`"), "{e}");
        // Nothing ran: the table is still there.
        ok(&db, "db.query", &format!("SELECT count(*) AS n FROM {table}"), json!([])).await;
        // One statement with a trailing `;` and comment is fine.
        ok(&db, "db.query", &format!("SELECT count(*) AS n FROM {table}; -- counted"), json!([])).await;
        drop_table(&db, &table).await;
    }
}

#[tokio::test]
async fn sql_injection_through_parameters_is_inert() {
    let dir = TempDir::new("inject");
    for (name, db, table) in both_with_table(&dir).await {
        let evil = format!("'); DROP TABLE {table}; --");
        ok(&db, "db.execute", &format!("INSERT INTO {table} (id, name) VALUES ($1, $2)"), json!([1, evil])).await;
        let found = ok(&db, "db.query", &format!("SELECT name FROM {table} WHERE name = $1"), json!([evil])).await;
        assert_eq!(found["rows"], json!([{"name": evil}]), "{name}: stored as text");
        let count = ok(&db, "db.query", &format!("SELECT count(*) AS n FROM {table}"), json!([])).await;
        assert_eq!(count["rows"][0]["n"], 1, "{name}: the table still exists with its row");
        drop_table(&db, &table).await;
    }
}

#[tokio::test]
async fn bad_payloads_and_unknown_operations_are_named() {
    let db = pg(json!({})).await;
    let request = Envelope::request(new_uuid_v7(), "db.query", json!({"params": [1]}), now_utc());
    let e = db.execute(&request).await.unwrap_err();
    assert_eq!(e.code(), codes::BAD_PAYLOAD.as_str());
    assert!(e.message().contains(&request.envelope_id.to_string()) && e.message().contains("`sql`"), "{e}");
    let e = call(&db, "db.query", json!({"sql": "  -- nothing"})).await.unwrap_err();
    assert_eq!(e.code(), codes::DB_NOT_ONE_STATEMENT.as_str(), "{e}");
    let e = call(&db, "db.transaction", json!({"statements": []})).await.unwrap_err();
    assert!(e.message().contains("`statements` is empty"), "{e}");
    let e = call(&db, "db.query", json!({"sql": "SELECT $1::int8", "params": [u64::MAX]})).await.unwrap_err();
    assert!(e.message().contains("params[0]"), "{e}");
    let e = call(&db, "db.truncate", json!({})).await.unwrap_err();
    assert_eq!(e.code(), onex_core::error::codes::OPERATION_NOT_FOUND.as_str());
}
