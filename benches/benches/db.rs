//! `db.query` of a one-row select (`SELECT id, name FROM t WHERE id = $1`) through
//! `DbHandler::execute` (payload decoding, the one-statement check, binding, rows to JSON), next
//! to the same query through bare sqlx on the handler's own `PgPool` (the baseline: same
//! connections, same server processes), on the PostgreSQL of `cargo xtask services up`; skips
//! with a message when it is unreachable.
//!
//! Criterion measures one function after the other, and on a shared machine the later one runs
//! in a different moment (the same baseline measured twice in a row came out 18% apart). So
//! afterwards single calls of both are timed alternately, and their percentiles and the ratio
//! of record (handler throughput / bare sqlx throughput) printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use onex_core::envelope::Envelope;
use onex_infra::handlers::DbHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::Handler;
use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool, Row};
use tokio::runtime::Runtime;

/// Calls of each kind in the alternating comparison after criterion.
const PAIRS: usize = 10_000;

/// `ONEX_POSTGRES_URL` from the environment or `target/onex-services.env`.
fn postgres_url() -> String {
    if let Ok(url) = std::env::var("ONEX_POSTGRES_URL") {
        return url;
    }
    let file = format!("{}/../target/onex-services.env", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().split_once('='))
        .find(|(k, _)| k.trim() == "ONEX_POSTGRES_URL")
        .map_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned(), |(_, v)| v.trim().to_owned())
}

struct Fixture {
    handler: DbHandler,
    pool: PgPool,
    table: String,
}

async fn fixture(url: &str) -> Result<Fixture, String> {
    // Plain text on loopback (the server may offer TLS; its cost would be the same on both sides
    // and only hide the handler's own); the statement timeout on, as configured in production.
    let config = json!({
        "url": url, "max_connections": 8, "statement_timeout_ms": 5000, "acquire_timeout_ms": 3000, "ssl_mode": "disable"
    });
    let handler =
        DbHandler::new(&config, Arc::new(EnvSecretStore), std::path::Path::new(".")).map_err(|e| e.to_string())?;
    handler.initialize().await.map_err(|e| e.to_string())?;
    // The baseline runs on the handler's own pool: the same connections, so the same server
    // processes, answer both.
    let pool = handler.postgres_pool().ok_or("not a PostgreSQL handler")?;
    let table = format!("bench_db_{}", std::process::id());
    for sql in [
        format!("DROP TABLE IF EXISTS {table}"),
        format!("CREATE TABLE {table} (id int4 PRIMARY KEY, name text NOT NULL)"),
        format!("INSERT INTO {table} SELECT i, 'name-' || i FROM generate_series(1, 1000) AS i"),
    ] {
        sqlx::query(AssertSqlSafe(sql)).execute(&pool).await.map_err(|e| e.to_string())?;
    }
    Ok(Fixture { handler, pool, table })
}

fn through_handler(runtime: &Runtime, handler: &DbHandler, envelope: &Envelope) {
    let reply = runtime.block_on(handler.execute(envelope)).unwrap();
    black_box(&reply["rows"][0]["name"]);
}

fn through_sqlx(runtime: &Runtime, pool: &PgPool, sql: &str) {
    let row = runtime.block_on(sqlx::query(AssertSqlSafe(sql)).bind(42i32).fetch_one(pool)).unwrap();
    black_box((row.get::<i32, _>(0), row.get::<String, _>(1)));
}

/// The time `iters` calls of `timed` take, each after an untimed call of `other`.
fn timed_after(iters: u64, other: &dyn Fn(), timed: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        other();
        let started = Instant::now();
        timed();
        total += started.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = postgres_url();
    let Fixture { handler, pool, table } = match runtime.block_on(fixture(&url)) {
        Ok(fixture) => fixture,
        Err(e) => {
            eprintln!("db bench skipped: PostgreSQL is unreachable ({e}); run `cargo xtask services up`");
            return;
        }
    };
    let sql = format!("SELECT id, name FROM {table} WHERE id = $1");
    let envelope = Envelope::request(new_uuid_v7(), "db.query", json!({"sql": sql, "params": [42]}), now_utc());
    let mut group = c.benchmark_group("db_query_one_row");
    // Each timed call follows an untimed call of the other kind: sqlx returns a connection to the
    // pool in a spawned task (with a ping), so what ran just before shapes the pool a call finds;
    // this way both kinds find it alike.
    let bare = || through_sqlx(&runtime, &pool, &sql);
    let via = || through_handler(&runtime, &handler, &envelope);
    group.bench_function("baseline_bare_sqlx", |b| b.iter_custom(|iters| timed_after(iters, &via, &bare)));
    group.bench_function("db_handler", |b| b.iter_custom(|iters| timed_after(iters, &bare, &via)));
    group.finish();

    // Alternating single calls, each timed: load on the machine hits both alike, and the
    // medians ignore the calls a busy scheduler stretched.
    let (mut bare, mut via) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    for _ in 0..PAIRS {
        let started = Instant::now();
        through_sqlx(&runtime, &pool, &sql);
        bare.push(started.elapsed());
        let started = Instant::now();
        through_handler(&runtime, &handler, &envelope);
        via.push(started.elapsed());
    }
    bare.sort_unstable();
    via.sort_unstable();
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let mean = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
    for (name, v) in [("bare sqlx", &bare), ("db handler", &via)] {
        eprintln!(
            "db_query_one_row, {PAIRS} alternating calls, {name}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, mean {:.1} µs",
            at(v, 0.5),
            at(v, 0.9),
            at(v, 0.99),
            mean(v)
        );
    }
    eprintln!(
        "db_query_one_row: handler/bare throughput ratio {:.3} (medians), {:.3} (means)",
        at(&bare, 0.5) / at(&via, 0.5),
        mean(&bare) / mean(&via)
    );
    runtime.block_on(async {
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pool).await.unwrap();
        handler.shutdown().await.unwrap();
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
