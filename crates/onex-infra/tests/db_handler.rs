//! The `db` handler against the real PostgreSQL (`ONEX_POSTGRES_URL`, from `cargo xtask
//! services up`) and SQLite temp files: type round trips, error mapping, single statements,
//! transactions, timeouts, the pool under load and after its connections are killed, redaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "db_handler/errors.rs"]
mod errors;
#[path = "db_handler/faults.rs"]
mod faults;
#[path = "db_handler/transactions.rs"]
mod transactions;
#[path = "db_handler/types.rs"]
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use onex_core::envelope::Envelope;
use onex_infra::handlers::DbHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{Handler, SpiResult};
use serde_json::{Value as Json, json};

/// The test server's URL.
fn pg_url() -> String {
    common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// `url` with `key=value` added to its query string.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A name no other test (or run) uses: `<label>_<pid>_<nanos>`, valid as a SQL identifier.
fn unique(label: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}_{}_{nanos}", std::process::id())
}

/// An initialised handler for `config`; fails (never skips) when the database is unreachable.
async fn handler(config: Json, data_dir: &Path) -> DbHandler {
    let handler = DbHandler::new(&config, Arc::new(EnvSecretStore), data_dir).unwrap();
    if let Err(e) = handler.initialize().await {
        panic!(
            "the database is needed for this test and did not open ({e}); \
             run `cargo xtask services up` (or set ONEX_POSTGRES_URL)"
        );
    }
    handler
}

/// A handler on the test PostgreSQL server, with `extra` config merged in.
async fn pg(extra: Json) -> DbHandler {
    let mut config = json!({"url": pg_url(), "max_connections": 8, "statement_timeout_ms": 5000});
    config.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    handler(config, Path::new("/nonexistent")).await
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(&format!("onex-db-test-{label}")));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A handler on a SQLite file in `dir` (the embedded default's URL form), with `extra` config.
async fn lite(dir: &TempDir, extra: Json) -> DbHandler {
    let mut config = json!({"url": "sqlite://data/onex-data.db", "max_connections": 4, "statement_timeout_ms": 5000});
    config.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    handler(config, &dir.0).await
}

/// Runs `operation` with `payload`.
async fn call(handler: &DbHandler, operation: &str, payload: Json) -> SpiResult<Json> {
    handler.execute(&Envelope::request(new_uuid_v7(), operation, payload, now_utc())).await
}

/// Runs a statement that must succeed.
async fn ok(handler: &DbHandler, operation: &str, sql: &str, params: Json) -> Json {
    match call(handler, operation, json!({"sql": sql, "params": params})).await {
        Ok(reply) => reply,
        Err(e) => panic!("{operation} `{sql}` failed: {e}"),
    }
}

/// Drops `table` (tests call it last, so a failure leaves the table for inspection).
async fn drop_table(handler: &DbHandler, table: &str) {
    ok(handler, "db.execute", &format!("DROP TABLE {table}"), json!([])).await;
}

#[tokio::test]
async fn the_embedded_default_runs_the_bundled_health_check_queries() {
    // The runtime config and contracts the binary embeds, with the handlers it builds.
    let registry = onex_infra::registry::Registry::with_builtin_handlers().unwrap();
    let set = onex_infra::contracts::load_bundled_contracts(&registry).set.expect("the bundled contracts load");
    let runtime = &set.runtime.as_ref().expect("a bundled runtime config").1;
    let db = &runtime.handlers["db"];
    assert!(db.enabled, "the embedded default enables the db handler");
    let dir = TempDir::new("embedded");
    let factory = registry.factory("db").expect("db is a built-in handler");
    let init =
        onex_spi::HandlerInit { config: db.config.clone(), secrets: Arc::new(EnvSecretStore), data_dir: dir.0.clone() };
    let embedded = factory.create(init).unwrap();
    embedded.initialize().await.unwrap();
    assert!(dir.0.join("onex-data.db").exists(), "the SQLite file is created in the data directory");
    let postgres = pg(json!({})).await;
    let (_, health_check) = &set.nodes["infra_orchestrator_health_check"];
    let steps = &health_check.workflow_coordination.as_ref().unwrap().workflow_definition.steps;
    let queries: Vec<_> = steps.iter().filter(|s| s.operation == "db.query").collect();
    assert!(queries.len() >= 2, "{queries:?}");
    for step in queries {
        let envelope = Envelope::request(new_uuid_v7(), "db.query", step.payload.clone(), now_utc());
        for (name, handler) in [("sqlite", embedded.as_ref()), ("postgres", &postgres as &dyn Handler)] {
            let reply = handler.execute(&envelope).await.unwrap_or_else(|e| panic!("{} on {name}: {e}", step.name));
            assert_eq!(reply["row_count"], 1, "{} on {name}: {reply}", step.name);
            assert_eq!(reply["rows"][0]["ok"], 1, "{} on {name}: {reply}", step.name);
        }
    }
    embedded.shutdown().await.unwrap();
}
