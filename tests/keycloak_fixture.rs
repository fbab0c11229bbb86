//! A Keycloak-compatible HTTP server for tests. Keycloak cannot run here (no registry serves its
//! distribution), so the keycloak handler is tested against this fixture, which follows
//! Keycloak 26's Admin REST API and OpenID Connect token endpoint for the subset below: same
//! paths, representations, status codes and error bodies. The shapes come from Keycloak's
//! sources (`UsersResource`, `UserResource`, `RoleMapperResource`, `RoleContainerResource`,
//! `ClientIdAndSecretAuthenticator`, `ErrorResponse`, `KeycloakErrorHandler`; their javadocs are
//! keycloak.org/docs-api/26.x) and, where the sources leave a detail open (order of checks,
//! defaults, exact bodies), from published measurements of a live 26.7.1. It serves one realm
//! ([`Options::realm`]) with one confidential client ([`Options::client_id`]).
//!
//! Error bodies come in Keycloak's four shapes: `{"error": "<prose>"}` (401, 404, 405),
//! `{"errorMessage": "..."}` (conflicts, validation), RFC 6749 `{"error", "error_description"}`
//! (token endpoint, unreadable admin bodies) and the user-profile `{"field", "errorMessage",
//! "params"}` (or `{"errors": [...]}` for several). Keys are serialised in serde_json's order,
//! not Keycloak's.
//!
//! Implemented:
//! - **Discovery** `GET /realms/{realm}/.well-known/openid-configuration`: `issuer`
//!   (`{base}/realms/{realm}`), `token_endpoint`, `jwks_uri` (`.../protocol/openid-connect/certs`),
//!   `introspection_endpoint` (`.../token/introspect`), `userinfo_endpoint`,
//!   `authorization_endpoint`, `end_session_endpoint`, `revocation_endpoint`,
//!   `grant_types_supported` (`["client_credentials"]`: only what the fixture serves),
//!   `token_endpoint_auth_methods_supported` (`client_secret_basic`, `client_secret_post`) and
//!   Keycloak's other static keys. Another method: `404 {"error":"HTTP 404 Not Found"}`.
//!   `GET .../protocol/openid-connect/certs`: `{"keys": []}` (nothing is signed). Another method
//!   on `certs` or `token`: `405 {"error":"HTTP 405 Method Not Allowed"}`.
//! - **Token** `POST /realms/{realm}/protocol/openid-connect/token`, form-encoded, checked in
//!   Keycloak's order: no `grant_type` → `400 invalid_request` "Missing form parameter:
//!   grant_type"; anything but `client_credentials` → `400 unsupported_grant_type`
//!   "Unsupported grant_type"; then the client, by `Authorization: Basic` (both halves
//!   form-urlencoded, RFC 6749) or `client_id`/`client_secret` fields (the form wins): no client
//!   id → `400 invalid_client` "Missing client_id parameter"; another scheme and no form
//!   `client_id` → bare `401` with `WWW-Authenticate: Basic realm="{realm}"`; unknown client →
//!   `401 invalid_client`, missing or wrong secret → `401 unauthorized_client`, both "Invalid
//!   client or Invalid client credentials". Success: `200 {"access_token": <opaque random>,
//!   "expires_in": ttl, "refresh_expires_in": 0, "token_type": "Bearer", "not-before-policy": 0,
//!   "scope": "profile email"}` with `Cache-Control: no-store`, `Pragma: no-cache`. Tokens
//!   expire after [`Options::token_ttl_secs`] on tokio's clock (paused time works) and all die
//!   at [`KeycloakFixture::revoke_tokens`].
//! - **Admin API** under `/admin/realms/{realm}`, checked in this order: `Authorization: Bearer
//!   <valid token>` (else `401 {"error":"HTTP 401 Unauthorized"}`, the same for a missing,
//!   unknown, expired or revoked token), the realm (`404 {"error":"Realm not found."}`), the
//!   path, the method (`405 {"error":"HTTP 405 Method Not Allowed"}`). Every valid token is a
//!   full administrator (no 403s). Reads answer `application/json;charset=UTF-8` with
//!   `Cache-Control: no-cache`. An unreadable body: `400 {"error":"invalid_request",
//!   "error_description":"Cannot parse the JSON"}`; JSON of the wrong shape (an array for an
//!   object, a string for a boolean): `400 {"error":"unknown_error", ...same description}`; an
//!   empty or `null` body where a representation is required: `500 {"error":"unknown_error",
//!   "error_description":"For more on this error consult the server log."}`, as Keycloak.
//!   - `POST /users`: `username` (blank → `400 {"errorMessage":"User name is missing"}`; trimmed
//!     and lowercased), `email` (lowercased), `firstName`, `lastName`, `enabled` (default
//!     false), `emailVerified` (default false), `attributes` (`{"k": ["v", ...]}`, kept: the
//!     realm behaves as with unmanaged attributes enabled), `requiredActions`, `credentials`
//!     (`[{"type": "password", "value", "temporary"}]`: kept, never returned; `temporary: true`
//!     adds `UPDATE_PASSWORD`). Taken username → `409 {"errorMessage":"User exists with same
//!     username"}`, taken email → `409 ... "User exists with same email"`; then the default user
//!     profile: username of 3 to 255 characters (`400 {"field":"username","errorMessage":
//!     "error-invalid-length","params":["username",3,255]}`), well-formed email (`400 {"field":
//!     "email","errorMessage":"error-invalid-email","params":["email",<value>]}`). Success:
//!     `201`, empty body, `Content-Length: 0`, `Location: {base}/admin/realms/{realm}/users/{id}`
//!     (a UUID); the user is mapped to `default-roles-{realm}`.
//!   - `GET /users/{id}`: `{id, username, firstName?, lastName?, email?, emailVerified,
//!     attributes? (only when non-empty), enabled, createdTimestamp (ms), totp: false,
//!     disableableCredentialTypes: [], requiredActions, notBefore: 0, access:
//!     {manageGroupMembership, resetPassword, view, mapRoles, impersonate, manage} (all true)}`.
//!     Unknown id (on every `/users/{id}/...` path, before the method is looked at): `404
//!     {"error":"User not found"}`.
//!   - `GET /users`: sorted by username, `access` is `{"manage": true}`;
//!     `briefRepresentation=true` drops `totp`, `disableableCredentialTypes`, `requiredActions`,
//!     `notBefore`. `search`: whitespace-separated terms, each a case-insensitive prefix of
//!     username, email, first or last name (or a whole-value pattern with `*` wildcards), all
//!     terms must match; `"quoted"` is case-insensitive equality. Without `search`: `username`,
//!     `email`, `firstName`, `lastName` are case-insensitive substrings, equality with
//!     `exact=true`; `q=key:value ...` matches attributes exactly. `enabled`, `emailVerified`
//!     filter both ways. `first` (default 0), `max` (default 100). Nothing found: `200 []`.
//!     `GET /users/count`: the same filters, a bare number.
//!   - `PUT /users/{id}`: merges the fields given (`attributes`, when given, replace them all;
//!     `requiredActions` likewise; credentials as on create) → `204`. A different username is
//!     ignored (usernames are not editable) unless another user holds it (`409`); an email
//!     another user holds → `409`; `""` clears email, first or last name.
//!   - `DELETE /users/{id}` → `204` with `Cache-Control: no-cache`.
//!   - `GET /roles`: RoleRepresentations `{id, name, description? (absent when unset),
//!     composite, clientRole: false, containerId: <realm UUID>}`, in creation order:
//!     `offline_access`, `uma_authorization`, `default-roles-{realm}` (composite of those two),
//!     then [`Options::roles`]. `briefRepresentation=false` adds `attributes`; `search` is a
//!     case-insensitive substring of name or description; `first`/`max` page when searching or
//!     when both are given. `GET /roles/{name}`: the full representation (with `attributes`);
//!     unknown → `404 {"error":"Could not find role"}`. `POST /roles` `{name, description?,
//!     attributes?}` → `201` with `Location: .../roles/{name}`; no name → `400 {"error":"role
//!     has no name"}`; taken → `409 {"errorMessage":"Role with name {name} already exists"}`.
//!   - `GET /users/{id}/role-mappings` → `{"realmMappings": [...]}`, or `{}` when the user has
//!     none (`clientMappings` is never present: there are no clients). `GET
//!     .../role-mappings/realm`: the direct mappings; `.../realm/composite`: the effective
//!     roles, composites expanded transitively (`default-roles-{realm}` brings
//!     `offline_access` and `uma_authorization`; `briefRepresentation=false` adds
//!     `attributes`); `.../realm/available`: the realm roles not mapped directly.
//!   - `POST` / `DELETE /users/{id}/role-mappings/realm` with a JSON array of
//!     RoleRepresentations → `204`. Each entry is looked up by `name` and its `id` must be that
//!     role's (as Keycloak 26: a name without the id, or a mismatched id, is not found) →
//!     `404 {"error":"Role not found"}`; every entry is checked before any is applied, so a
//!     refused request changes nothing. Granting a held role or removing an unheld one is a
//!     no-op. `DELETE` without a body removes every realm mapping.
//! - Any other path: `404 {"error":"Unable to find matching target resource method"}`
//!   (RESTEasy Reactive's answer; also for Keycloak endpoints the fixture does not implement).
//!   Another realm on a protocol path: `404 {"error":"Realm does not exist"}`.
//!
//! Not implemented (deliberately): JWT access tokens and a JWKS (tokens are opaque; the admin
//! API only checks that it issued them), grants other than `client_credentials`, refresh
//! tokens, introspection, userinfo, clients and client roles, groups, `PUT`/`DELETE` of roles
//! and role composites management, fine-grained admin permissions (403s), the person-name and
//! other user-profile validators beyond username length and email format, unknown-field
//! rejection (unknown fields are ignored), `registrationEmailAsUsername` and duplicate emails.

mod http;
mod oidc;
mod roles;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use http::{MAX_BODY_BYTES, Params, error, method_not_allowed, unmatched};

/// What the fixture serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The one realm (`/realms/{realm}`, `/admin/realms/{realm}`).
    pub realm: String,
    /// The confidential client that may obtain tokens (`client_credentials`).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Lifetime of an issued access token (`expires_in`).
    pub token_ttl_secs: u64,
    /// Realm roles seeded after Keycloak's own three.
    pub roles: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            realm: "onex".to_owned(),
            client_id: "onex-admin-cli".to_owned(),
            client_secret: "onex-admin-secret".to_owned(),
            token_ttl_secs: 300,
            roles: vec!["onex-operator".to_owned(), "onex-viewer".to_owned()],
        }
    }
}

/// A running fixture server; dropping it stops the server.
#[derive(Debug)]
pub struct KeycloakFixture {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

/// State shared by the request handlers.
#[derive(Debug)]
struct Shared {
    options: Options,
    /// `http://127.0.0.1:<port>`.
    base_url: String,
    state: Mutex<State>,
    tokens_issued: AtomicUsize,
    admin_requests: AtomicUsize,
}

/// Everything the realm stores, behind one lock (each request is atomic, as Keycloak's
/// transaction is).
#[derive(Debug)]
struct State {
    /// The realm's UUID (every role's `containerId`).
    realm_id: String,
    /// Issued access tokens and when each expires.
    tokens: HashMap<String, Instant>,
    /// Users by id.
    users: BTreeMap<String, users::User>,
    /// Realm roles in creation order.
    roles: Vec<roles::Role>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `{base}/realms/{realm}`.
    fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base_url, self.options.realm)
    }

    /// `{base}/admin/realms/{realm}` (the prefix of every `Location`).
    fn admin_base(&self) -> String {
        format!("{}/admin/realms/{}", self.base_url, self.options.realm)
    }
}

impl KeycloakFixture {
    /// Starts a fixture on 127.0.0.1 with a free port, on the current tokio runtime.
    pub async fn start(options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("keycloak fixture: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("keycloak fixture: no local address: {e}"));
        let state = State {
            realm_id: http::new_uuid(),
            tokens: HashMap::new(),
            users: BTreeMap::new(),
            roles: roles::seed(&options.realm, &options.roles),
        };
        let shared = Arc::new(Shared {
            options,
            base_url: format!("http://{addr}"),
            state: Mutex::new(state),
            tokens_issued: AtomicUsize::new(0),
            admin_requests: AtomicUsize::new(0),
        });
        let router = Router::new().fallback(route).with_state(Arc::clone(&shared));
        let (shutdown, server) = crate::spawn_server(listener, router);
        Self { shared, addr, shutdown: Some(shutdown), server }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The realm's issuer, `{base}/realms/{realm}`.
    pub fn issuer(&self) -> String {
        self.shared.issuer()
    }

    /// The realm's Admin REST base, `{base}/admin/realms/{realm}`.
    pub fn admin_url(&self) -> String {
        self.shared.admin_base()
    }

    /// The options the fixture was started with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    /// How many requests reached `/admin/...`, whatever they were answered.
    pub fn admin_requests(&self) -> usize {
        self.shared.admin_requests.load(Ordering::SeqCst)
    }

    /// Invalidates every token issued so far: the admin API answers them `401` from now on.
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The password last given to `username` (create or update), which the API never returns.
    pub fn password_of(&self, username: &str) -> Option<String> {
        let username = username.to_lowercase();
        self.shared.lock().users.values().find(|u| u.username == username).and_then(|u| u.password.clone())
    }
}

impl Drop for KeycloakFixture {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.abort();
    }
}

/// Every request: the path decides between the protocol endpoints and the admin API.
async fn route(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let params = Params::parse(request.uri().query().unwrap_or(""));
    let segments: Vec<String> =
        request.uri().path().split('/').filter(|s| !s.is_empty()).map(http::percent_decode).collect();
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "HTTP 413 Request Entity Too Large"),
    };
    let path: Vec<&str> = segments.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["admin", rest @ ..] => {
            shared.admin_requests.fetch_add(1, Ordering::SeqCst);
            if !oidc::bearer_is_valid(&shared, &headers) {
                return oidc::unauthorized();
            }
            match rest {
                ["realms", realm, rest @ ..] if *realm == shared.options.realm => {
                    admin(&shared, &method, rest, &params, &body)
                }
                ["realms", _, ..] => error(StatusCode::NOT_FOUND, "Realm not found."),
                _ => unmatched(),
            }
        }
        ["realms", realm, rest @ ..] => {
            if *realm != shared.options.realm {
                return error(StatusCode::NOT_FOUND, "Realm does not exist");
            }
            match (rest, &method) {
                ([".well-known", "openid-configuration"], &Method::GET) => oidc::discovery(&shared),
                ([".well-known", "openid-configuration"], _) => error(StatusCode::NOT_FOUND, "HTTP 404 Not Found"),
                (["protocol", "openid-connect", "certs"], &Method::GET) => oidc::certs(),
                (["protocol", "openid-connect", "token"], &Method::POST) => oidc::token(&shared, &headers, &body),
                (["protocol", "openid-connect", "certs" | "token"], _) => method_not_allowed(),
                _ => unmatched(),
            }
        }
        _ => unmatched(),
    }
}

/// The admin API of the realm, once the caller is authenticated: `rest` follows
/// `/admin/realms/{realm}`.
fn admin(shared: &Shared, method: &Method, rest: &[&str], params: &Params, body: &[u8]) -> Response {
    match rest {
        ["users"] => match *method {
            Method::GET => users::list(shared, params),
            Method::POST => users::create(shared, body),
            _ => method_not_allowed(),
        },
        ["users", "count"] => match *method {
            Method::GET => users::count(shared, params),
            _ => method_not_allowed(),
        },
        ["users", id, tail @ ..] => {
            if !shared.lock().users.contains_key(*id) {
                return users::not_found();
            }
            user_resource(shared, method, id, tail, params, body)
        }
        ["roles"] => match *method {
            Method::GET => roles::list(shared, params),
            Method::POST => roles::create(shared, body),
            _ => method_not_allowed(),
        },
        ["roles", name] => match *method {
            Method::GET => roles::get(shared, name),
            _ => method_not_allowed(),
        },
        _ => unmatched(),
    }
}

/// `/users/{id}/...` for an existing user: `tail` follows the id.
fn user_resource(shared: &Shared, method: &Method, id: &str, tail: &[&str], params: &Params, body: &[u8]) -> Response {
    match tail {
        [] => match *method {
            Method::GET => users::get(shared, id),
            Method::PUT => users::update(shared, id, body),
            Method::DELETE => users::delete(shared, id),
            _ => method_not_allowed(),
        },
        ["role-mappings", mapping @ ..] => match (mapping, method) {
            (["realm"], &Method::POST) => roles::write_mappings(shared, id, true, body),
            (["realm"], &Method::DELETE) => roles::write_mappings(shared, id, false, body),
            (_, &Method::GET) => roles::read_mappings(shared, id, mapping, params).unwrap_or_else(unmatched),
            ([] | ["realm"] | ["realm", "composite" | "available"], _) => method_not_allowed(),
            _ => unmatched(),
        },
        _ => unmatched(),
    }
}
