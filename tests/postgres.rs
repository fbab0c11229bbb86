//! A PostgreSQL database of a test's own on the test server (`ONEX_POSTGRES_URL`, else the
//! local `test` database's server), created fresh and dropped when the test ends, reached with
//! the server's own `psql`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh database; dropped (with its connections) when this value is.
#[derive(Debug)]
pub struct Database {
    /// Its URL, for a host's `ONEX_STATE_STORE_URL`.
    pub url: String,
    admin_url: String,
    name: String,
}

impl Database {
    /// Creates `onex_<label>_<pid>_<nanos>`; panics when the server does not answer.
    pub fn create(label: &str) -> Self {
        let admin_url = crate::service_setting("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("onex_{}_{}_{nanos}", label.replace('-', "_"), std::process::id());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (server, _) = admin_url.rsplit_once('/').unwrap_or_else(|| panic!("no database in {admin_url}"));
        Self { url: format!("{server}/{name}"), admin_url, name }
    }

    /// Runs `sql` in this database; its output, unaligned and without headers.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// The first number `sql` returns.
    pub fn count(&self, sql: &str) -> u64 {
        let out = self.query(sql);
        out.trim().parse().unwrap_or_else(|e| panic!("`{sql}` did not return a number ({e}): {out:?}"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin_url, "-qtAc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (PostgreSQL's client): {e}"));
    assert!(out.status.success(), "psql `{sql}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
