//! consulrs errors as coded `SpiError`s: 401/403 auth, 404 not found, 400 (and other 4xx)
//! validation, 429/5xx and connection failures unavailable, timeouts timeout. Messages name
//! the envelope and operation and never contain the token (it travels in a header only).

use consulrs::error::ClientError;
use onex_core::error::ErrorCode;
use onex_spi::SpiError;
use rustify::errors::ClientError as RestError;

use crate::error::codes;

/// Longest piece of a Consul error body quoted in a message.
const QUOTE_MAX: usize = 200;

/// Where an error happened: `envelope <id>: <operation>` (or the host registration).
#[derive(Debug, Clone)]
pub struct Context(pub String);

impl Context {
    /// An error with this context's prefix.
    pub fn error(&self, code: ErrorCode, message: impl std::fmt::Display) -> SpiError {
        SpiError::new(code, format!("{}: {message}", self.0))
    }
}

/// The code for an HTTP status Consul answered with.
pub fn status_code(status: u16) -> ErrorCode {
    match status {
        401 | 403 => codes::CONSUL_DENIED,
        404 => codes::CONSUL_NOT_FOUND,
        429 | 500..=599 => codes::CONSUL_UNAVAILABLE,
        400..=499 => codes::CONSUL_REJECTED,
        _ => codes::CONSUL_UNEXPECTED,
    }
}

fn quote(body: Option<&str>) -> String {
    match body.map(str::trim).filter(|b| !b.is_empty()) {
        None => String::new(),
        Some(b) if b.len() <= QUOTE_MAX => format!(": {b}"),
        Some(b) => {
            let cut = (0..=QUOTE_MAX).rev().find(|i| b.is_char_boundary(*i)).unwrap_or(0);
            format!(": {}…", &b[..cut])
        }
    }
}

/// Maps a consulrs failure; `what` says what was asked (`reading key `a/b``).
pub fn map(cx: &Context, what: &str, error: ClientError) -> SpiError {
    match error {
        ClientError::APIError { code, message } => {
            let reason = match code {
                401 | 403 => " (the ACL token was refused)".to_owned(),
                _ => quote(message.as_deref()),
            };
            cx.error(status_code(code), format!("{what}: Consul answered {code}{reason}"))
        }
        ClientError::RestClientError { source } => map_rest(cx, what, source),
        other => cx.error(codes::CONSUL_UNEXPECTED, format!("{what}: {other}")),
    }
}

fn map_rest(cx: &Context, what: &str, error: RestError) -> SpiError {
    match error {
        RestError::ServerResponseError { code, content } => {
            cx.error(status_code(code), format!("{what}: Consul answered {code}{}", quote(content.as_deref())))
        }
        RestError::RequestError { source, .. } | RestError::ResponseError { source } => {
            let timed_out = source
                .chain()
                .any(|e| e.downcast_ref::<consul_reqwest::Error>().is_some_and(consul_reqwest::Error::is_timeout));
            let cause = source.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
            if timed_out {
                cx.error(codes::CONSUL_TIMEOUT, format!("{what}: Consul did not answer in time ({cause})"))
            } else {
                cx.error(codes::CONSUL_UNAVAILABLE, format!("{what}: Consul cannot be reached ({cause})"))
            }
        }
        RestError::ResponseParseError { .. } | RestError::ResponseConversionError { .. } => {
            cx.error(codes::CONSUL_UNEXPECTED, format!("{what}: Consul's answer could not be read ({error})"))
        }
        RestError::UrlParseError { .. }
        | RestError::UrlBuildError { .. }
        | RestError::RequestBuildError { .. }
        | RestError::ReqwestBuildError { .. }
        | RestError::UrlQueryParseError { .. } => {
            cx.error(codes::CONSUL_REJECTED, format!("{what}: the request cannot be built ({error})"))
        }
        other => cx.error(codes::CONSUL_UNEXPECTED, format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onex_core::error::ErrorCategory;

    #[test]
    fn statuses_map_to_categories() {
        let cx = Context("envelope e1: consul.kv_get".into());
        for (status, category) in [
            (400, ErrorCategory::Validation),
            (401, ErrorCategory::Auth),
            (403, ErrorCategory::Auth),
            (404, ErrorCategory::NotFound),
            (413, ErrorCategory::Validation),
            (429, ErrorCategory::Unavailable),
            (500, ErrorCategory::Unavailable),
            (503, ErrorCategory::Unavailable),
        ] {
            let e = map(
                &cx,
                "reading key `a`",
                ClientError::APIError { code: status, message: Some("Permission denied".into()) },
            );
            assert_eq!(e.category(), category, "{status}");
            assert!(e.message().starts_with("envelope e1: consul.kv_get: reading key `a`"), "{e}");
        }
        let long = "x".repeat(1000);
        let e = map(&cx, "w", ClientError::APIError { code: 500, message: Some(long) });
        assert!(e.message().len() < 300, "{e}");
    }
}
