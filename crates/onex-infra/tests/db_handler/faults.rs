//! Timeouts, load, killed connections and credentials: what the pool does when things go wrong.

use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use onex_infra::handlers::DbHandler;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::Handler;
use serde_json::json;
use sqlx::Connection;

use super::{TempDir, call, lite, ok, pg, pg_url, unique, with_param};

#[tokio::test]
async fn a_statement_past_its_timeout_is_cancelled_and_the_connection_reused() {
    // One connection: the query after the timeout runs on the same one, so it answers only if
    // the server really stopped the sleep.
    let db = pg(json!({"statement_timeout_ms": 200, "max_connections": 1})).await;
    let started = Instant::now();
    let e = call(&db, "db.query", json!({"sql": "SELECT pg_sleep(5)"})).await.unwrap_err();
    assert_eq!(e.code(), codes::DB_TIMEOUT.as_str(), "{e}");
    assert_eq!(e.category(), ErrorCategory::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2), "cancelled after {:?}", started.elapsed());
    let started = Instant::now();
    let reply = ok(&db, "db.query", "SELECT 1 AS ok", json!([])).await;
    assert_eq!(reply["rows"][0]["ok"], 1);
    assert!(started.elapsed() < Duration::from_secs(1), "the connection was free at once: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_sqlite_statement_past_its_timeout_is_interrupted() {
    let dir = TempDir::new("timeout");
    let db = lite(&dir, json!({"statement_timeout_ms": 200, "max_connections": 1})).await;
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c";
    let started = Instant::now();
    let e = call(&db, "db.query", json!({"sql": endless})).await.unwrap_err();
    assert_eq!(e.code(), codes::DB_TIMEOUT.as_str(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "interrupted after {:?}", started.elapsed());
    // The deadline is disarmed: a later transaction on the same connection is not interrupted.
    ok(&db, "db.execute", "CREATE TABLE t (x INTEGER)", json!([])).await;
    call(&db, "db.transaction", json!({"statements": [{"sql": "INSERT INTO t VALUES (1)"}]})).await.unwrap();
    assert_eq!(ok(&db, "db.query", "SELECT count(*) AS n FROM t", json!([])).await["rows"][0]["n"], 1);
}

#[tokio::test]
async fn two_hundred_concurrent_queries_share_eight_connections() {
    let app = unique("onex_db_load");
    let db = Arc::new(pg(json!({"url": with_param(&pg_url(), "application_name", &app), "max_connections": 8})).await);
    let tasks: Vec<_> = (0..200i64)
        .map(|i| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                let reply = call(
                    &db,
                    "db.query",
                    json!({"sql": "SELECT $1::int8 AS n, pg_sleep(0.005)::text AS s", "params": [i]}),
                )
                .await
                .unwrap_or_else(|e| panic!("query {i}: {e}"));
                assert_eq!(reply["rows"][0]["n"], i);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(&app)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!((1..=8).contains(&open), "{open} connections open");
}

#[tokio::test]
async fn the_pool_recovers_when_its_connections_are_terminated() {
    let app = unique("onex_db_kill");
    let db = Arc::new(pg(json!({"url": with_param(&pg_url(), "application_name", &app), "max_connections": 4})).await);
    // Open several connections.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let db = Arc::clone(&db);
            tokio::spawn(async move { call(&db, "db.query", json!({"sql": "SELECT pg_sleep(0.05)::text AS s"})).await })
        })
        .collect();
    for task in warm {
        task.await.unwrap().unwrap();
    }
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1, "no connection of the pool was found to terminate");
    let query = json!({"sql": "SELECT 1 AS ok"});
    let reply = match call(&db, "db.query", query.clone()).await {
        Ok(reply) => reply,
        Err(e) => {
            // What the resilience layer would do: the failure is retryable, and one retry works.
            assert_eq!(e.category(), ErrorCategory::Unavailable, "{e}");
            assert!(e.retryable());
            call(&db, "db.query", query).await.unwrap()
        }
    };
    assert_eq!(reply["rows"][0]["ok"], 1);
    assert_eq!(db.health().await, onex_spi::Health::Healthy);
}

#[tokio::test]
async fn a_password_in_the_url_never_shows() {
    // The URL's own password, or (the test server trusts loopback) one that is never checked.
    let url = pg_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').expect("ONEX_POSTGRES_URL names a user");
    let (url, secret) = match user.split_once(':') {
        Some((_, password)) => (url.clone(), password.to_owned()),
        None => (format!("{scheme}://{user}:pw-s3cr3t-Zq9@{host}"), "pw-s3cr3t-Zq9".to_owned()),
    };
    let secret = secret.as_str();
    let db = pg(json!({"url": url})).await;
    let debug = format!("{db:?}");
    assert!(!debug.contains(secret) && debug.contains("postgres://"), "{debug}");
    let e = call(&db, "db.query", json!({"sql": "SELEC"})).await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains(secret));
    // Nothing listens on port 1: the start fails, without the password.
    let closed = format!("postgres://postgres:{secret}@127.0.0.1:1/test");
    let db = DbHandler::new(
        &json!({"url": closed, "acquire_timeout_ms": 2000}),
        Arc::new(EnvSecretStore),
        std::path::Path::new("/"),
    )
    .unwrap();
    assert!(!format!("{db:?}").contains(secret));
    let e = db.initialize().await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Unavailable, "{e}");
    assert!(!format!("{e} {e:?}").contains(secret), "{e:?}");
    let e = call(&db, "db.query", json!({"sql": "SELECT 1"})).await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains(secret), "{e:?}");
    // A URL that does not parse is not quoted back either.
    let bad = format!("postgres://postgres:{secret}@127.0.0.1:notaport/test");
    let e = DbHandler::new(&json!({"url": bad}), Arc::new(EnvSecretStore), std::path::Path::new("/")).unwrap_err();
    assert_eq!(e.code(), codes::DB_CONFIG.as_str());
    assert!(!format!("{e} {e:?}").contains(secret), "{e:?}");
}

#[tokio::test]
async fn ssl_mode_is_honoured_and_never_downgraded() {
    let mut admin = sqlx::PgConnection::connect(&with_param(&pg_url(), "sslmode", "disable")).await.unwrap();
    let server_tls: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut admin).await.unwrap();
    let on_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let plain = pg(json!({"ssl_mode": "disable"})).await;
    assert_eq!(ok(&plain, "db.query", on_tls, json!([])).await["rows"][0]["ssl"], false);
    let required = DbHandler::new(
        &json!({"url": pg_url(), "ssl_mode": "require", "acquire_timeout_ms": 3000}),
        Arc::new(EnvSecretStore),
        std::path::Path::new("/"),
    )
    .unwrap();
    match (server_tls.as_str(), required.initialize().await) {
        ("on", Ok(())) => assert_eq!(ok(&required, "db.query", on_tls, json!([])).await["rows"][0]["ssl"], true),
        ("off", Err(e)) => {
            assert_eq!(e.category(), ErrorCategory::Unavailable, "{e}");
            assert!(e.message().contains("TLS"), "{e}");
        }
        (setting, result) => panic!("server ssl = {setting}, ssl_mode require gave {result:?}"),
    }
    // No certificate of a loopback test server chains to a public root: verify-full refuses it.
    let verified = DbHandler::new(
        &json!({"url": pg_url(), "ssl_mode": "verify-full", "acquire_timeout_ms": 3000}),
        Arc::new(EnvSecretStore),
        std::path::Path::new("/"),
    )
    .unwrap();
    let e = verified.initialize().await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Unavailable, "{e}");
    let why = if server_tls == "on" { "certificate" } else { "TLS" };
    assert!(e.message().contains(why), "{e}");
}
