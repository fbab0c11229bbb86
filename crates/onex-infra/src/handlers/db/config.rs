//! The db handler's runtime-config section: the database URL (kept secret: it may hold a
//! password), pool sizes, timeouts and the PostgreSQL TLS mode.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use onex_core::contract::SecretRef;
use onex_core::secret::Secret;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::error::codes;
use crate::handlers::payload::decode;

/// Pool size when the config names none.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// How long a request waits for a free connection when the config names no `acquire_timeout_ms`.
const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 10_000;
/// The per-statement timeout when the config names no `statement_timeout_ms`.
const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    max_connections: Option<u32>,
    min_connections: Option<u32>,
    acquire_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
    ssl_mode: Option<String>,
}

/// Pool and timeout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// Longest wait for a free connection (then `unavailable`).
    pub acquire_timeout: Duration,
    /// Longest run of one statement (then `timeout`); `None` when the config sets 0.
    pub statement_timeout: Option<Duration>,
}

/// The handler's settings, from `handlers.db.config`.
#[derive(Clone)]
pub(crate) struct DbSettings {
    /// The URL, or a `${env:…}`/`${vault:…}` reference to it.
    pub url: Secret,
    /// Pool and timeouts.
    pub pool: PoolSettings,
    /// The TLS mode for PostgreSQL, overriding the URL's `sslmode`.
    pub ssl_mode: Option<PgSslMode>,
    /// Where relative SQLite paths are resolved.
    pub data_dir: PathBuf,
}

/// The database a resolved URL names.
#[derive(Clone)]
pub(crate) enum Target {
    /// A PostgreSQL server.
    Postgres(Box<PgConnectOptions>),
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Target {
    /// The target without credentials: `postgres://host:port/db` or `sqlite://path`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Postgres(o) => {
                format!("postgres://{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or_default())
            }
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

fn config_error(message: impl std::fmt::Display) -> SpiError {
    SpiError::new(codes::DB_CONFIG, format!("db config: {message}"))
}

impl DbSettings {
    /// Reads `config` (the runtime config's `handlers.db.config`); `data_dir` anchors relative
    /// SQLite paths. A literal URL is checked here; a secret reference when it is resolved.
    pub fn from_config(config: &Json, data_dir: &Path) -> SpiResult<Self> {
        if config.is_null() {
            return Err(config_error("`url` is required (e.g. `sqlite://onex-data.db` or `postgres://…`)"));
        }
        let raw: RawConfig =
            decode("db config", config).map_err(|e| SpiError::new(codes::DB_CONFIG, e.message().to_owned()))?;
        let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let min_connections = raw.min_connections.unwrap_or(0);
        if max_connections == 0 {
            return Err(config_error("`max_connections` must be at least 1"));
        }
        if min_connections > max_connections {
            return Err(config_error(format!(
                "`min_connections` ({min_connections}) exceeds `max_connections` ({max_connections})"
            )));
        }
        let ssl_mode = raw
            .ssl_mode
            .as_deref()
            .map(|mode| {
                PgSslMode::from_str(mode).map_err(|_| {
                    config_error(format!(
                        "`ssl_mode` `{mode}` is not disable, allow, prefer, require, verify-ca or verify-full"
                    ))
                })
            })
            .transpose()?;
        let statement_timeout_ms = raw.statement_timeout_ms.unwrap_or(DEFAULT_STATEMENT_TIMEOUT_MS);
        let settings = Self {
            url: Secret::new(raw.url),
            pool: PoolSettings {
                max_connections,
                min_connections,
                acquire_timeout: Duration::from_millis(raw.acquire_timeout_ms.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT_MS)),
                statement_timeout: (statement_timeout_ms > 0).then(|| Duration::from_millis(statement_timeout_ms)),
            },
            ssl_mode,
            data_dir: data_dir.to_path_buf(),
        };
        if SecretRef::parse(settings.url.expose()).is_none() {
            settings.target(settings.url.expose())?;
        }
        Ok(settings)
    }

    /// The database `url` (resolved, never quoted in errors) names, with the TLS mode applied.
    pub fn target(&self, url: &str) -> SpiResult<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(url).map_err(|_| {
                config_error("`url` is not a valid PostgreSQL URL (its text is not shown: it may hold a password)")
            })?;
            if let Some(mode) = self.ssl_mode {
                options = options.ssl_mode(mode);
            }
            Ok(Target::Postgres(Box::new(options)))
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            if self.ssl_mode.is_some() {
                return Err(config_error("`ssl_mode` applies to PostgreSQL URLs only, and `url` names a SQLite file"));
            }
            Ok(Target::Sqlite(self.sqlite_path(rest)?))
        } else {
            Err(config_error("`url` must start with postgres://, postgresql:// or sqlite://"))
        }
    }

    /// The file of `sqlite:<rest>`: `sqlite://data.db` and `sqlite:data.db` are relative to the
    /// data directory, `sqlite:///var/db/data.db` is absolute.
    fn sqlite_path(&self, rest: &str) -> SpiResult<PathBuf> {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.contains('?') {
            return Err(config_error("SQLite URLs take no `?` options: give `sqlite://<path>`"));
        }
        if path.is_empty() || path.starts_with(':') {
            return Err(config_error(
                "`url` must name a SQLite file (in-memory databases are not supported: every pooled \
                 connection would see its own empty database)",
            ));
        }
        Ok(self.data_dir.join(path))
    }

    /// The settings without the URL, for Debug output.
    pub fn describe(&self) -> Json {
        json!({
            "max_connections": self.pool.max_connections,
            "min_connections": self.pool.min_connections,
            "acquire_timeout_ms": self.pool.acquire_timeout.as_millis() as u64,
            "statement_timeout_ms": self.pool.statement_timeout.map_or(0, |t| t.as_millis() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(config: Json) -> SpiResult<DbSettings> {
        DbSettings::from_config(&config, Path::new("/data"))
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_data_dir_unless_absolute() {
        let s = settings(json!({"url": "sqlite://onex-data.db"})).unwrap();
        assert!(
            matches!(s.target("sqlite://onex-data.db").unwrap(), Target::Sqlite(p) if p == Path::new("/data/onex-data.db"))
        );
        assert!(matches!(s.target("sqlite:///var/x.db").unwrap(), Target::Sqlite(p) if p == Path::new("/var/x.db")));
        assert_eq!(s.target("sqlite::memory:").unwrap_err().code(), codes::DB_CONFIG.as_str());
    }

    #[test]
    fn defaults_and_pool_checks() {
        let s = settings(json!({"url": "postgres://u@h/db", "statement_timeout_ms": 0})).unwrap();
        assert_eq!(s.pool.max_connections, 8);
        assert_eq!(s.pool.statement_timeout, None);
        assert!(settings(json!({"url": "sqlite://a.db", "max_connections": 0})).is_err());
        assert!(settings(json!({"url": "sqlite://a.db", "min_connections": 9})).is_err());
        assert!(settings(json!({"url": "mysql://h/db"})).is_err());
        assert!(settings(json!({"url": "sqlite://a.db", "pool": 3})).is_err());
    }

    #[test]
    fn tls_modes_are_read_from_the_config_over_the_url() {
        for (mode, want) in
            [("disable", PgSslMode::Disable), ("prefer", PgSslMode::Prefer), ("verify-full", PgSslMode::VerifyFull)]
        {
            let s = settings(json!({"url": "postgres://u@h/db?sslmode=require", "ssl_mode": mode})).unwrap();
            let Target::Postgres(options) = s.target(s.url.expose()).unwrap() else { panic!("not postgres") };
            // PgSslMode has no PartialEq; its Debug names the variant.
            assert_eq!(format!("{:?}", options.get_ssl_mode()), format!("{want:?}"), "{mode}");
        }
        assert!(settings(json!({"url": "postgres://u@h/db", "ssl_mode": "sometimes"})).is_err());
        assert!(settings(json!({"url": "sqlite://a.db", "ssl_mode": "disable"})).is_err());
    }

    #[test]
    fn bad_urls_are_not_quoted() {
        let e = settings(json!({"url": "postgres://u:s3cret@h:notaport/db"})).err().unwrap();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = settings(json!({"url": "ftp://u:s3cret@h/db"})).err().unwrap();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
