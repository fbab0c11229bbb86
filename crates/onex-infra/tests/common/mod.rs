//! Helpers shared by the integration tests: where the external services (PostgreSQL, …) are.

use std::path::PathBuf;

/// The file `cargo xtask services up` writes, with one `KEY=value` line per service.
pub fn services_env_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/onex-services.env")
}

/// The value of `key`: from the environment, else from `target/onex-services.env`, else
/// `default`.
pub fn service_url(key: &str, default: &str) -> String {
    if let Ok(value) = std::env::var(key) {
        return value;
    }
    let text = std::fs::read_to_string(services_env_file()).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map_or_else(|| default.to_owned(), |(_, v)| v.trim().to_owned())
}
