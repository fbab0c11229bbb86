//! `db.transaction`: per-statement results, and all or nothing.

use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use serde_json::json;

use super::{TempDir, call, drop_table, lite, ok, pg, unique};

#[tokio::test]
async fn a_transaction_returns_each_statements_rows_and_count() {
    let dir = TempDir::new("tx-ok");
    for (name, db) in [("postgres", pg(json!({})).await), ("sqlite", lite(&dir, json!({})).await)] {
        let table = unique("tx");
        ok(&db, "db.execute", &format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)"), json!([])).await;
        let reply = call(
            &db,
            "db.transaction",
            json!({"statements": [
                {"sql": format!("INSERT INTO {table} (id, name) VALUES ($1, $2), ($3, $4)"), "params": [1, "a", 2, "b"]},
                {"sql": format!("UPDATE {table} SET name = $1 WHERE id = $2"), "params": ["z", 2]},
                {"sql": format!("SELECT id, name FROM {table} ORDER BY id")},
            ]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let results = reply["results"].as_array().unwrap();
        assert_eq!(results.len(), 3, "{name}: {reply}");
        assert_eq!(results[0]["rows_affected"], 2, "{name}: {reply}");
        assert_eq!(results[1]["rows_affected"], 1, "{name}: {reply}");
        assert_eq!(results[2]["rows"], json!([{"id": 1, "name": "a"}, {"id": 2, "name": "z"}]), "{name}: {reply}");
        drop_table(&db, &table).await;
    }
}

#[tokio::test]
async fn a_failing_statement_rolls_back_the_ones_before_it() {
    let dir = TempDir::new("tx-fail");
    for (name, db) in [("postgres", pg(json!({})).await), ("sqlite", lite(&dir, json!({})).await)] {
        let table = unique("txfail");
        ok(&db, "db.execute", &format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)"), json!([])).await;
        ok(&db, "db.execute", &format!("INSERT INTO {table} (id, name) VALUES (1, 'kept')"), json!([])).await;
        let e = call(
            &db,
            "db.transaction",
            json!({"statements": [
                {"sql": format!("INSERT INTO {table} (id, name) VALUES ($1, $2)"), "params": [2, "rolled back"]},
                {"sql": format!("UPDATE {table} SET name = 'changed' WHERE id = 1")},
                {"sql": format!("INSERT INTO {table} (id, name) VALUES ($1, $2)"), "params": [1, "duplicate"]},
            ]}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), codes::DB_CONFLICT.as_str(), "{name}: {e}");
        assert_eq!(e.category(), ErrorCategory::Conflict);
        assert!(e.message().contains("statements[2]"), "{name}: the failing statement is named: {e}");
        let rows = ok(&db, "db.query", &format!("SELECT id, name FROM {table} ORDER BY id"), json!([])).await;
        assert_eq!(rows["rows"], json!([{"id": 1, "name": "kept"}]), "{name}: nothing of the transaction stayed");
        // The pool's connections are clean afterwards: a new transaction commits.
        call(&db, "db.transaction", json!({"statements": [{"sql": format!("DELETE FROM {table}")}]})).await.unwrap();
        let rows = ok(&db, "db.query", &format!("SELECT count(*) AS n FROM {table}"), json!([])).await;
        assert_eq!(rows["rows"][0]["n"], 0, "{name}");
        drop_table(&db, &table).await;
    }
}
