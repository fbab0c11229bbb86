//! Who may call the admin API (`admin.auth` of the runtime config): anyone (`none`, allowed
//! only on a loopback address), holders of one static token, or holders of a bearer JWT that
//! the issuer's keys verify and that grants the role or scope the route needs. `/health/*` is
//! always open. A request without valid credentials is answered 401, one whose token lacks
//! the route's role 403, a well-formed token the unreachable issuer cannot check 503; each is
//! counted per route for `/metrics`. No token is ever logged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onex_core::contract::AdminAuth;
use onex_core::envelope::ReplyError;
use onex_core::secret::Secret;
use onex_spi::{SecretStore, SpiError, SpiResult};
use serde::Deserialize;

use crate::error::codes;
use crate::handlers::keycloak::{JwtVerifier, KeycloakConfig};

/// The protected route groups, each needing its own role or scope under bearer auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteClass {
    /// `POST /v1/envelopes`.
    Ingress,
    /// `GET /v1/state/…`.
    StateRead,
    /// `GET /v1/workflows/…`.
    WorkflowRead,
    /// `GET /metrics`.
    Metrics,
    /// `GET /ui`, the status page.
    StatusPage,
    /// `POST /v1/admin/reload`.
    Reload,
}

impl RouteClass {
    /// Every class, in `/metrics` order.
    pub const ALL: [Self; 6] =
        [Self::Ingress, Self::StateRead, Self::WorkflowRead, Self::Metrics, Self::StatusPage, Self::Reload];

    /// Its name in the config (`routes.<name>`) and in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::StateRead => "state_read",
            Self::WorkflowRead => "workflow_read",
            Self::Metrics => "metrics",
            Self::StatusPage => "status_page",
            Self::Reload => "reload",
        }
    }
}

/// The roles or scopes each route class accepts; a class with none listed accepts any token
/// the verifier accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Routes {
    #[serde(default)]
    ingress: Vec<String>,
    #[serde(default)]
    state_read: Vec<String>,
    #[serde(default)]
    workflow_read: Vec<String>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    status_page: Vec<String>,
    #[serde(default)]
    reload: Vec<String>,
}

impl Routes {
    fn of(&self, class: RouteClass) -> &[String] {
        match class {
            RouteClass::Ingress => &self.ingress,
            RouteClass::StateRead => &self.state_read,
            RouteClass::WorkflowRead => &self.workflow_read,
            RouteClass::Metrics => &self.metrics,
            RouteClass::StatusPage => &self.status_page,
            RouteClass::Reload => &self.reload,
        }
    }
}

/// How requests are authenticated.
#[derive(Debug)]
enum Mode {
    Open,
    StaticToken(Secret),
    Bearer { verifier: Box<JwtVerifier>, routes: Routes },
}

/// The admin API's access policy and its refusal counters.
#[derive(Debug)]
pub struct AdminAccess {
    mode: Mode,
    /// `(class, 401 | 403 | 503)` → refusals.
    refused: BTreeMap<(RouteClass, u16), AtomicU64>,
}

impl Default for AdminAccess {
    fn default() -> Self {
        Self::with_mode(Mode::Open)
    }
}

fn config_error(message: impl std::fmt::Display) -> SpiError {
    SpiError::new(codes::ADMIN_CONFIG, format!("admin.auth: {message}"))
}

impl AdminAccess {
    fn with_mode(mode: Mode) -> Self {
        let refused = RouteClass::ALL
            .iter()
            .flat_map(|c| [401, 403, 503].map(|status| ((*c, status), AtomicU64::new(0))))
            .collect();
        Self { mode, refused }
    }

    /// The policy `auth` describes: a static token is resolved through `secrets`; a bearer
    /// section is the keycloak handler's verifier settings plus `routes`. `admin_addr` is where
    /// the API listens: `none` is refused anywhere but on a loopback address.
    pub async fn from_config(
        auth: &AdminAuth,
        admin_addr: std::net::SocketAddr,
        data_dir: &std::path::Path,
        secrets: &dyn SecretStore,
    ) -> SpiResult<Self> {
        match auth {
            AdminAuth::None if admin_addr.ip().is_loopback() => Ok(Self::default()),
            AdminAuth::None => Err(config_error(format!(
                "`none` lets anyone who reaches {admin_addr} send envelopes and read state; it is allowed only on a \
                 loopback address. Set `admin.auth` to `bearer` or `static_token`, or listen on 127.0.0.1"
            ))),
            AdminAuth::StaticToken(reference) => {
                let token = secrets
                    .resolve(reference)
                    .await
                    .map_err(|e| config_error(format!("`static_token`: {}", e.message())))?;
                if token.expose().len() < 16 {
                    return Err(config_error(
                        "`static_token` resolves to fewer than 16 characters; use a long random token",
                    ));
                }
                Ok(Self::with_mode(Mode::StaticToken(token)))
            }
            AdminAuth::Bearer(section) => {
                let mut section = section.clone();
                for key in ["client_id", "client_secret", "admin_url", "allow_password_grant", "token_refresh_before_s"]
                {
                    if section.get(key).is_some() {
                        return Err(config_error(format!("bearer: `{key}` does not apply to verifying tokens")));
                    }
                }
                let routes = match section.as_object_mut().and_then(|s| s.remove("routes")) {
                    Some(routes) => {
                        Routes::deserialize(&routes).map_err(|e| config_error(format!("bearer.routes: {e}")))?
                    }
                    None => Routes::default(),
                };
                let config = KeycloakConfig::parse(&section, data_dir).map_err(|e| {
                    config_error(format!("bearer: {}", e.message().trim_start_matches("keycloak handler config: ")))
                })?;
                Ok(Self::with_mode(Mode::Bearer {
                    verifier: Box::new(JwtVerifier::from_config(&config, data_dir)?),
                    routes,
                }))
            }
        }
    }

    /// Whether anyone may call the API.
    pub fn is_open(&self) -> bool {
        matches!(self.mode, Mode::Open)
    }

    /// `onex_admin_auth_refused_total` lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut out = String::from(
            "# HELP onex_admin_auth_refused_total Admin API requests refused: 401 without valid credentials, 403 without the route's role.\n\
             # TYPE onex_admin_auth_refused_total counter\n",
        );
        for ((class, status), count) in &self.refused {
            let n = count.load(Ordering::Relaxed);
            out.push_str(&format!(
                "onex_admin_auth_refused_total{{route=\"{}\",status=\"{status}\"}} {n}\n",
                class.name()
            ));
        }
        out
    }

    /// Checks a request for `class`: `Ok` or the refusal to answer with.
    #[allow(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
    async fn check(&self, class: RouteClass, authorization: Option<&HeaderValue>) -> Result<(), Response> {
        let presented = authorization.and_then(|v| v.to_str().ok()).and_then(bearer_token);
        let outcome = match (&self.mode, presented) {
            (Mode::Open, _) => return Ok(()),
            (_, None) => Err((401, "send `Authorization: Bearer <token>`".to_owned())),
            (Mode::StaticToken(expected), Some(token)) => {
                if constant_time_eq(expected.expose().as_bytes(), token.as_bytes()) {
                    Ok(())
                } else {
                    Err((401, "the token is not the admin token".to_owned()))
                }
            }
            (Mode::Bearer { verifier, routes }, Some(token)) => match verifier.verify(token).await {
                // The issuer cannot be reached and no key is cached: the caller is not at fault.
                Err(e) if e.category() == onex_core::error::ErrorCategory::Unavailable => {
                    Err((503, format!("cannot check the token now: {} ({})", e.message(), e.code())))
                }
                Err(e) => Err((401, format!("{} ({})", e.message(), e.code()))),
                Ok(verified) => {
                    let needed = routes.of(class);
                    if needed.is_empty() || needed.iter().any(|name| verified.grants(name)) {
                        Ok(())
                    } else {
                        Err((
                            403,
                            format!("the token grants none of {} needed for {}", needed.join(", "), class.name()),
                        ))
                    }
                }
            },
        };
        outcome.map_err(|(status, why)| {
            if let Some(count) = self.refused.get(&(class, status)) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            if status == 503 {
                tracing::warn!(route = class.name(), reason = %why, "admin API request not checked: the issuer is unavailable");
            } else {
                tracing::info!(route = class.name(), status, reason = %why, "admin API request refused");
            }
            refusal(status, &why)
        })
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

fn refusal(status: u16, why: &str) -> Response {
    let (status, code) = match status {
        403 => (StatusCode::FORBIDDEN, codes::ADMIN_FORBIDDEN),
        503 => (StatusCode::SERVICE_UNAVAILABLE, codes::KEYCLOAK_UNAVAILABLE),
        _ => (StatusCode::UNAUTHORIZED, codes::ADMIN_UNAUTHENTICATED),
    };
    let body = serde_json::json!({ "is_response": true, "success": false, "error": ReplyError::new(code, why) });
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"onex-admin\""));
    }
    response
}

/// The middleware guarding one route class.
pub async fn require(
    State((access, class)): State<(Arc<AdminAccess>, RouteClass)>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(class, request.headers().get(header::AUTHORIZATION)).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused,
    }
}

/// The mode's name, for the start-up log.
pub fn describe(auth: &AdminAuth) -> &'static str {
    match auth {
        AdminAuth::None => "none",
        AdminAuth::StaticToken(_) => "static_token",
        AdminAuth::Bearer(_) => "bearer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_and_constant_time_comparison() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert!(constant_time_eq(b"same-token", b"same-token"));
        assert!(!constant_time_eq(b"same-token", b"same-tokeN"));
        assert!(!constant_time_eq(b"short", b"shorter"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[tokio::test]
    async fn none_is_refused_off_loopback_and_short_static_tokens_are_refused() {
        let secrets = crate::secrets::EnvSecretStore;
        let dir = std::path::Path::new("/");
        let open = AdminAccess::from_config(&AdminAuth::None, "127.0.0.1:1".parse().unwrap(), dir, &secrets).await;
        assert!(open.unwrap().is_open());
        let e =
            AdminAccess::from_config(&AdminAuth::None, "0.0.0.0:1".parse().unwrap(), dir, &secrets).await.unwrap_err();
        assert_eq!(e.code(), codes::ADMIN_CONFIG.as_str());
        assert!(e.message().contains("loopback"), "{e}");
        let reference = onex_core::contract::SecretRef::Env("PATH".into());
        let auth = AdminAuth::StaticToken(reference);
        let result = AdminAccess::from_config(&auth, "0.0.0.0:1".parse().unwrap(), dir, &secrets).await;
        // PATH is long on any machine: accepted, and never shown by Debug.
        let access = result.unwrap();
        assert!(!format!("{access:?}").contains(&std::env::var("PATH").unwrap()));
    }
}
