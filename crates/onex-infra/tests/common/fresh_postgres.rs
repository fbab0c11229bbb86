//! A PostgreSQL database of a test's own, for tests that reach every row of a table (claims,
//! take-overs, pruning) or stop the server.

/// A database of its own on the test server, dropped at the end.
pub struct FreshPostgres {
    admin: sqlx::PgPool,
    name: String,
    /// Its URL.
    pub url: String,
}

impl FreshPostgres {
    /// Creates `onex_<label>_<pid>_<nanos>`; panics when the server does not answer.
    pub async fn create(label: &str) -> Self {
        let base = crate::common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
        let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL is needed; run `cargo xtask services up`");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("onex_{}_{}_{nanos}", label.replace('-', "_"), std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let (prefix, _) = base.rsplit_once('/').expect("a database URL ends in /<database>");
        let url = format!("{prefix}/{name}");
        Self { admin, name, url }
    }

    /// Drops the database (and its connections).
    pub async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.name)))
            .execute(&self.admin)
            .await
            .unwrap();
        self.admin.close().await;
    }
}
