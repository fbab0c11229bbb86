//! The `db` handler: `db.query` (one statement, rows as JSON objects), `db.execute` (one
//! statement, rows affected) and `db.transaction` (a list of statements, all or nothing) on
//! PostgreSQL or, for the embedded default, SQLite. Parameters only: SQL holding more than one
//! statement is refused.
//!
//! Payloads: `{"sql": "SELECT … WHERE id = $1", "params": [1]}`, and for a transaction
//! `{"statements": [{"sql": …, "params": […]}, …]}`. Parameters are bound by JSON type: null,
//! bool, integer (int8), other numbers (float8), string (text: cast it in the SQL for other
//! types, `$1::numeric`, `$1::uuid`, `$1::timestamptz`), object/array (jsonb). Replies:
//! `{"rows": [{…}], "row_count": n}`, `{"rows_affected": n}`, and for a transaction
//! `{"results": [{"rows": […], "rows_affected": n}, …]}`.

mod config;
mod errors;
mod pg_json;
mod postgres;
mod request;
mod sqlite;

use std::sync::Arc;

use onex_core::contract::SecretRef;
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SecretStore, SpiError, SpiResult, async_trait,
};
use serde_json::{Value as Json, json};

use self::config::{DbSettings, Target};
use self::postgres::PgBackend;
use self::request::{Cx, Dialect};
use self::sqlite::SqliteBackend;
use crate::error::codes;

/// What one statement of a transaction gave.
pub(crate) struct Outcome {
    rows: Vec<Json>,
    rows_affected: u64,
}

/// The open database.
enum Backend {
    Postgres(PgBackend),
    Sqlite(SqliteBackend),
}

/// Runs parameterised SQL on one database (PostgreSQL or SQLite), through a pool opened at
/// `initialize`.
pub struct DbHandler {
    settings: DbSettings,
    secrets: Arc<dyn SecretStore>,
    backend: tokio::sync::OnceCell<Backend>,
    /// The database without credentials, once known (for Debug and messages).
    target: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for DbHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match self.target.get() {
            Some(target) => target.clone(),
            // A `${env:…}` reference names where the URL is, not the URL.
            None => self.settings.url.expose().to_owned(),
        };
        f.debug_struct("DbHandler")
            .field("url", &url)
            .field("settings", &self.settings.describe())
            .field("open", &self.backend.initialized())
            .finish()
    }
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("db")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "db".into(), operations: Vec::new() })
}

impl DbHandler {
    /// A handler for the `config` section of the runtime config (`url`, `max_connections`,
    /// `min_connections`, `acquire_timeout_ms`, `statement_timeout_ms`, `ssl_mode`); relative
    /// SQLite paths are resolved against `data_dir`. The URL may be a `${env:…}`/`${vault:…}`
    /// reference, resolved through `secrets` at `initialize`.
    pub fn new(config: &Json, secrets: Arc<dyn SecretStore>, data_dir: &std::path::Path) -> SpiResult<Self> {
        let settings = DbSettings::from_config(config, data_dir)?;
        let target = std::sync::OnceLock::new();
        if SecretRef::parse(settings.url.expose()).is_none() {
            let _ = target.set(settings.target(settings.url.expose())?.redacted());
        }
        Ok(Self { settings, secrets, backend: tokio::sync::OnceCell::new(), target })
    }

    /// The PostgreSQL pool the handler runs on, once initialised (for baselines that must use
    /// the very same connections, as the db benchmark does); `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        match self.backend.get() {
            Some(Backend::Postgres(pg)) => Some(pg.pool().clone()),
            _ => None,
        }
    }

    fn backend(&self, envelope: &Envelope) -> SpiResult<&Backend> {
        self.backend.get().ok_or_else(|| {
            SpiError::new(
                codes::DB_UNAVAILABLE,
                format!("envelope {}: {}: the db handler is not initialised", envelope.envelope_id, envelope.operation),
            )
        })
    }

    async fn open(&self) -> SpiResult<Backend> {
        let url = match SecretRef::parse(self.settings.url.expose()) {
            Some(reference) => self.secrets.resolve(&reference).await?,
            None => self.settings.url.clone(),
        };
        let target = self.settings.target(url.expose())?;
        let redacted = target.redacted();
        let _ = self.target.set(redacted.clone());
        Ok(match target {
            Target::Postgres(options) => {
                Backend::Postgres(PgBackend::connect(*options, &self.settings.pool, &redacted).await?)
            }
            Target::Sqlite(path) => Backend::Sqlite(SqliteBackend::open(&path, &self.settings.pool).await?),
        })
    }
}

#[async_trait]
impl Handler for DbHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        self.backend.get_or_try_init(|| self.open()).await.map(|_| ())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let backend = self.backend(request)?;
        let dialect = match backend {
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Sqlite(_) => Dialect::Sqlite,
        };
        let cx = Cx { envelope: request, index: None };
        match request.operation.as_str() {
            "db.query" => {
                let statement = request::statement(cx, dialect)?;
                let rows = match backend {
                    Backend::Postgres(pg) => pg.query(cx, &statement).await?,
                    Backend::Sqlite(lite) => lite.query(cx, &statement).await?,
                };
                Ok(json!({"row_count": rows.len(), "rows": rows}))
            }
            "db.execute" => {
                let statement = request::statement(cx, dialect)?;
                let rows_affected = match backend {
                    Backend::Postgres(pg) => pg.execute(cx, &statement).await?,
                    Backend::Sqlite(lite) => lite.execute(cx, &statement).await?,
                };
                Ok(json!({ "rows_affected": rows_affected }))
            }
            "db.transaction" => {
                let statements = request::transaction(cx, dialect)?;
                let outcomes = match backend {
                    Backend::Postgres(pg) => pg.transaction(cx, &statements).await?,
                    Backend::Sqlite(lite) => lite.transaction(cx, &statements).await?,
                };
                let results: Vec<Json> =
                    outcomes.into_iter().map(|o| json!({"rows": o.rows, "rows_affected": o.rows_affected})).collect();
                Ok(json!({ "results": results }))
            }
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the db handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn health(&self) -> Health {
        let result = match self.backend.get() {
            None => return Health::Unhealthy("the db handler is not initialised".to_owned()),
            Some(Backend::Postgres(pg)) => pg.ping().await,
            Some(Backend::Sqlite(lite)) => lite.ping().await,
        };
        match result {
            Ok(()) => Health::Healthy,
            Err(e) => Health::Unhealthy(e.to_string()),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        match self.backend.get() {
            Some(Backend::Postgres(pg)) => pg.close().await,
            Some(Backend::Sqlite(lite)) => lite.close().await,
            None => {}
        }
        Ok(())
    }
}

/// Builds db handlers from the runtime config's `handlers.db.config`:
/// `{"url": "sqlite://onex-data.db" | "postgres://…" | "${env:ONEX_DB_URL}", "max_connections": 8,
/// "min_connections": 0, "acquire_timeout_ms": 10000, "statement_timeout_ms": 30000,
/// "ssl_mode": "prefer"}` (all but `url` optional; `statement_timeout_ms: 0` disables it).
#[derive(Debug)]
pub struct DbHandlerFactory;

impl HandlerFactory for DbHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(DbHandler::new(&init.config, init.secrets, &init.data_dir)?))
    }
}
