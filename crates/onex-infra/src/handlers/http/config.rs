//! The `http` handler's configuration and the client settings it shares with the `webhook`
//! handler: size caps, redirects, timeout, the header allow-lists and TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;

use crate::error::codes;

/// Header names that carry credentials: never allowed into logs or replies, whatever a
/// configuration asks.
pub const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-onex-signature"];

/// The `http` handler's `config` section; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest response body read (bytes); a longer one is refused while it streams.
    pub max_response_bytes: u64,
    /// Largest request body sent (bytes).
    pub max_request_bytes: u64,
    /// Redirects (301/302/303/307/308) followed before giving up.
    pub max_redirects: u32,
    /// Time for a whole exchange, redirects and body included (ms); a request's own
    /// `timeout_ms` may shorten it, never lengthen it.
    pub timeout_ms: u64,
    /// Header names (request and response) whose values may appear in logs; no other header
    /// is ever logged. Credential headers are refused here.
    pub log_headers: Vec<String>,
    /// Response header names copied into the reply.
    pub response_headers: Vec<String>,
    /// A PEM bundle of the CAs to trust instead of the public (webpki) roots; relative to the
    /// data directory.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only; logged as a warning at start).
    pub insecure_skip_verify: bool,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: 10 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            max_redirects: 5,
            timeout_ms: 30_000,
            log_headers: vec!["content-type".into(), "content-length".into()],
            response_headers: [
                "content-type",
                "content-length",
                "content-encoding",
                "etag",
                "last-modified",
                "location",
                "retry-after",
                "cache-control",
            ]
            .map(String::from)
            .to_vec(),
            ca_file: None,
            insecure_skip_verify: false,
            pool_max_idle_per_host: 32,
        }
    }
}

impl HttpConfig {
    /// The client settings this configuration describes (`data_dir` anchors `ca_file`).
    pub(crate) fn client_settings(&self, what: &str, data_dir: &Path) -> SpiResult<ClientSettings> {
        Ok(ClientSettings {
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes,
            max_redirects: self.max_redirects,
            timeout: positive_ms(what, "timeout_ms", self.timeout_ms)?,
            log_headers: AllowList::new(what, "log_headers", &self.log_headers)?,
            tls: TlsSettings {
                ca_file: self.ca_file.as_ref().map(|f| data_dir.join(f)),
                insecure_skip_verify: self.insecure_skip_verify,
            },
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
}

/// `ms` as a duration; zero is refused, naming `field`.
pub(crate) fn positive_ms(what: &str, field: &str, ms: u64) -> SpiResult<Duration> {
    if ms == 0 {
        return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{what}: `{field}` must be at least 1 ms")));
    }
    Ok(Duration::from_millis(ms))
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsSettings {
    /// Trusted CAs instead of the public roots (absolute path).
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
}

/// What the shared client needs to know.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
    pub max_redirects: u32,
    pub timeout: Duration,
    pub log_headers: AllowList,
    pub tls: TlsSettings,
    pub pool_max_idle_per_host: usize,
}

/// A set of header names (lower case), credential headers excluded.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList(Vec<HeaderName>);

impl AllowList {
    /// The names in `names`; a credential header or an invalid name is refused, naming `field`.
    pub fn new(what: &str, field: &str, names: &[String]) -> SpiResult<Self> {
        let mut allowed = Vec::with_capacity(names.len());
        for name in names {
            let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                SpiError::new(codes::BAD_PAYLOAD, format!("{what}: `{field}`: `{name}` is not a header name"))
            })?;
            if CREDENTIAL_HEADERS.contains(&header.as_str()) {
                return Err(SpiError::new(
                    codes::BAD_PAYLOAD,
                    format!("{what}: `{field}` may not name `{header}`: credential headers are never exposed"),
                ));
            }
            allowed.push(header);
        }
        Ok(Self(allowed))
    }

    /// The allowed headers of `headers` as `(name, value)` pairs (non-UTF-8 bytes replaced);
    /// repeated headers are joined with `, `.
    pub fn pick(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|name| {
                let values: Vec<String> =
                    headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
                (!values.is_empty()).then(|| (name.as_str().to_owned(), values.join(", ")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_cannot_be_allowed_and_names_are_checked() {
        let e = AllowList::new("http config", "log_headers", &["Authorization".into()]).unwrap_err();
        assert!(e.message().contains("log_headers") && e.message().contains("authorization"), "{e}");
        let e = AllowList::new("http config", "log_headers", &["bad name".into()]).unwrap_err();
        assert!(e.message().contains("`bad name` is not a header name"), "{e}");
        let list = AllowList::new("http config", "log_headers", &["X-Trace".into()]).unwrap();
        let mut headers = HeaderMap::new();
        headers.append("x-trace", "a".parse().unwrap());
        headers.append("x-trace", "b".parse().unwrap());
        headers.append("x-other", "c".parse().unwrap());
        assert_eq!(list.pick(&headers), [("x-trace".to_owned(), "a, b".to_owned())]);
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let config = HttpConfig { timeout_ms: 0, ..HttpConfig::default() };
        let e = config.client_settings("http config", Path::new("/")).unwrap_err();
        assert!(e.message().contains("timeout_ms"), "{e}");
    }
}
