//! The realm's OpenID Connect endpoints: the discovery document, the (empty) key set, the token
//! endpoint's `client_credentials` grant with Keycloak's client authentication and refusals, and
//! the bearer check the admin API runs on every request.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use tokio::time::{Duration, Instant};

use super::Shared;
use super::http::{Params, Refusal, decode_component, error, json, new_token, oauth_error};

/// `GET /realms/{realm}/.well-known/openid-configuration`.
pub fn discovery(shared: &Shared) -> Response {
    let issuer = shared.issuer();
    let oidc = format!("{issuer}/protocol/openid-connect");
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{oidc}/auth"),
        "token_endpoint": format!("{oidc}/token"),
        "introspection_endpoint": format!("{oidc}/token/introspect"),
        "userinfo_endpoint": format!("{oidc}/userinfo"),
        "end_session_endpoint": format!("{oidc}/logout"),
        "revocation_endpoint": format!("{oidc}/revoke"),
        "jwks_uri": format!("{oidc}/certs"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "roles", "web-origins", "acr", "basic"],
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "require_pushed_authorization_requests": false,
        "code_challenge_methods_supported": ["plain", "S256"],
        "tls_client_certificate_bound_access_tokens": true,
        "authorization_response_iss_parameter_supported": true,
    });
    json(StatusCode::OK, &body)
}

/// `GET /realms/{realm}/protocol/openid-connect/certs`: the fixture signs nothing.
pub fn certs() -> Response {
    json(StatusCode::OK, &json!({ "keys": [] }))
}

/// `POST /realms/{realm}/protocol/openid-connect/token` with a form body. Keycloak's order:
/// `grant_type` first (missing, then unsupported), then the client.
pub fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = Params::parse(&String::from_utf8_lossy(body));
    let Some(grant_type) = form.get("grant_type") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing form parameter: grant_type");
    };
    if grant_type != "client_credentials" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant_type");
    }
    if let Err(refusal) = authenticate_client(shared, headers, &form) {
        return *refusal;
    }
    let ttl = shared.options.token_ttl_secs;
    let access_token = new_token();
    shared.lock().tokens.insert(access_token.clone(), Instant::now() + Duration::from_secs(ttl));
    shared.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let body = json!({
        "access_token": access_token,
        "expires_in": ttl,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": "profile email",
    });
    let mut response = json(StatusCode::OK, &body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Keycloak's `client-secret` authenticator: `Authorization: Basic` (RFC 6749: both halves
/// form-urlencoded before base64) or `client_id`/`client_secret` form fields, the form winning.
fn authenticate_client(shared: &Shared, headers: &HeaderMap, form: &Params) -> Result<(), Refusal> {
    let mut client_id = None;
    let mut secret = None;
    if let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        match parse_basic(authorization) {
            Some((id, s)) => (client_id, secret) = (Some(id), Some(s)),
            None if !form.has("client_id") => {
                // Another scheme and no client_id to fall back on: a bare Basic challenge.
                let mut challenge = StatusCode::UNAUTHORIZED.into_response();
                let realm = format!("Basic realm=\"{}\"", shared.options.realm);
                if let Ok(value) = HeaderValue::from_str(&realm) {
                    challenge.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
                return Err(Box::new(challenge));
            }
            None => {}
        }
    }
    if let Some(id) = form.get("client_id") {
        client_id = Some(id.to_owned());
    }
    if let Some(s) = form.get("client_secret") {
        secret = Some(s.to_owned());
    }
    let invalid = "Invalid client or Invalid client credentials";
    let Some(client_id) = client_id else {
        return Err(Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "Missing client_id parameter")));
    };
    if client_id != shared.options.client_id {
        return Err(Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", invalid)));
    }
    if secret.as_deref() != Some(shared.options.client_secret.as_str()) {
        return Err(Box::new(oauth_error(StatusCode::UNAUTHORIZED, "unauthorized_client", invalid)));
    }
    Ok(())
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as Keycloak's `BasicAuthHelper.RFC6749`.
fn parse_basic(header_value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header_value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode_component(id), decode_component(secret)))
}

/// Whether `headers` carry `Authorization: Bearer <token>` naming an issued, unexpired,
/// unrevoked token (the admin API's only check: every such token administers the realm).
pub fn bearer_is_valid(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, token)) = value.trim().split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let now = Instant::now();
    let mut state = shared.lock();
    state.tokens.retain(|_, expires| *expires > now);
    state.tokens.contains_key(token.trim())
}

/// The admin API's refusal of a missing, unknown, expired or revoked token.
pub fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "HTTP 401 Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header_value = format!("Basic {}", BASE64.encode("my%20client:s%3Acret+x"));
        assert_eq!(parse_basic(&header_value), Some(("my client".to_owned(), "s:cret x".to_owned())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
