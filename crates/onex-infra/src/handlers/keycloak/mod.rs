//! The `keycloak` handler (the seed's `node_keycloak_adapter_effect`): OpenID Connect against a
//! realm found by discovery, and Keycloak's Admin REST API.
//!
//! - `keycloak.token`: client credentials (the handler's own token, cached until shortly
//!   before expiry), the password grant (only with `allow_password_grant`), refresh.
//! - `keycloak.verify`: a JWT checked against the realm's JWKS ([`JwtVerifier`]); answers its
//!   claims, realm and client roles and scopes.
//! - `keycloak.introspect` (RFC 7662) and `keycloak.userinfo`.
//! - `keycloak.create_user`, `get_user`, `assign_realm_role`, `remove_realm_role`,
//!   `list_user_roles` through the Admin REST API with the handler's own token.
//!
//! Client secrets are [`Secret`]s resolved at start; tokens and passwords travel only in the
//! payloads and replies that carry them, never in logs, errors or `Debug` output.

mod admin_api;
pub mod config;
mod jwks;
mod provider;
mod tokens;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use hyper::Method;
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_core::secret::Secret;
use onex_spi::{Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SecretStore, SpiError, SpiResult};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

pub use config::KeycloakConfig;
pub use verify::{JwtVerifier, VerifiedToken};

use self::admin_api::AdminApi;
use self::provider::{Provider, json_body, status_error};
use self::tokens::{Credentials, Tokens, scopes_of, service_token_reply};
use super::payload::decode;
use crate::error::codes;

/// Tokens, users and roles of one Keycloak (or any OpenID Connect) realm.
pub struct KeycloakHandler {
    config: KeycloakConfig,
    secrets: Arc<dyn SecretStore>,
    provider: Arc<Provider>,
    verifier: JwtVerifier,
    tokens: tokio::sync::OnceCell<Tokens>,
}

impl std::fmt::Debug for KeycloakHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycloakHandler")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("initialized", &self.tokens.initialized())
            .finish_non_exhaustive()
    }
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("keycloak")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "keycloak".into(), operations: Vec::new() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, Vec<String>>,
    /// Read separately as a secret; declared so the field is known.
    #[serde(default, rename = "password")]
    _password: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    temporary_password: bool,
}

const fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRef {
    id: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRoles {
    user_id: String,
    #[serde(default)]
    effective: bool,
}

/// A string field that may hold a credential: read without serde, so no error quotes it.
fn secret_field(payload: &Json, field: &str, ctx: &str) -> SpiResult<Option<Secret>> {
    match payload.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) if !text.is_empty() => Ok(Some(Secret::new(text.clone()))),
        Some(_) => Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `{field}` must be a non-empty string"))),
    }
}

fn required(value: Option<Secret>, field: &str, ctx: &str) -> SpiResult<Secret> {
    value.ok_or_else(|| SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `{field}` is required")))
}

/// The payload as a map, refusing keys other than `known` (by name only).
fn fields<'a>(payload: &'a Json, known: &[&str], ctx: &str) -> SpiResult<&'a Map<String, Json>> {
    let Json::Object(map) = payload else {
        return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: the payload must be an object")));
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(SpiError::new(
            codes::BAD_PAYLOAD,
            format!("{ctx}: unknown field `{unknown}`, expected one of {}", known.join(", ")),
        ));
    }
    Ok(map)
}

impl KeycloakHandler {
    /// A handler for `config` (`handlers.keycloak.config`); its `client_secret` is resolved
    /// through `secrets` in `initialize`.
    pub fn new(config: &Json, data_dir: &Path, secrets: Arc<dyn SecretStore>) -> SpiResult<Self> {
        let config = KeycloakConfig::parse(config, data_dir)?;
        let provider = Arc::new(Provider::new(&config, data_dir)?);
        let verifier = JwtVerifier::new(&config, Arc::clone(&provider));
        Ok(Self { config, secrets, provider, verifier, tokens: tokio::sync::OnceCell::new() })
    }

    /// The verifier `keycloak.verify` uses.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// How many tokens the provider has granted this handler (its cache's misses).
    pub fn tokens_granted(&self) -> u64 {
        self.tokens.get().map_or(0, Tokens::granted)
    }

    fn tokens(&self, ctx: &str) -> SpiResult<&Tokens> {
        self.tokens.get().ok_or_else(|| {
            SpiError::new(
                codes::KEYCLOAK_REJECTED,
                format!("{ctx}: the keycloak handler has no `client_id` configured (or is not initialised)"),
            )
        })
    }

    fn admin(&self, ctx: &str) -> SpiResult<AdminApi<'_>> {
        let base = self.config.admin_url.as_ref().ok_or_else(|| {
            SpiError::new(
                codes::KEYCLOAK_REJECTED,
                format!(
                    "{ctx}: no `admin_url` configured and the issuer is not a Keycloak realm URL (…/realms/<realm>)"
                ),
            )
        })?;
        Ok(AdminApi { base, provider: &self.provider, tokens: self.tokens(ctx)? })
    }

    async fn dispatch(&self, request: &Envelope) -> SpiResult<Json> {
        let op = request.operation.as_str();
        let ctx = format!("envelope {}: {op}", request.envelope_id);
        let ctx = ctx.as_str();
        let payload = &request.payload;
        match op {
            "keycloak.token" => self.token(payload, ctx).await,
            "keycloak.verify" => {
                fields(payload, &["token"], ctx)?;
                let token = required(secret_field(payload, "token", ctx)?, "token", ctx)?;
                let verified = self.verifier.verify(token.expose()).await.map_err(|e| prefixed(ctx, &e))?;
                Ok(verified_reply(verified))
            }
            "keycloak.introspect" => {
                let map = fields(payload, &["token", "token_type_hint"], ctx)?;
                let token = required(secret_field(payload, "token", ctx)?, "token", ctx)?;
                let hint = map.get("token_type_hint").and_then(Json::as_str);
                self.tokens(ctx)?.introspect(&self.provider, &token, hint, ctx).await
            }
            "keycloak.userinfo" => {
                fields(payload, &["access_token"], ctx)?;
                let token = required(secret_field(payload, "access_token", ctx)?, "access_token", ctx)?;
                self.userinfo(&token, ctx).await
            }
            "keycloak.create_user" => self.create_user(payload, ctx).await,
            "keycloak.get_user" => {
                let user: UserRef = decode(ctx, payload)?;
                let admin = self.admin(ctx)?;
                match (user.id, user.username) {
                    (Some(id), None) => admin.get_user(ctx, &id).await,
                    (None, Some(username)) => admin.find_user(ctx, &username).await,
                    _ => Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: give `id` or `username`, exactly one"))),
                }
            }
            "keycloak.assign_realm_role" | "keycloak.remove_realm_role" => {
                let change: RoleChange = decode(ctx, payload)?;
                let mut roles = change.roles;
                roles.extend(change.role);
                if roles.is_empty() {
                    return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `roles` (or `role`) is required")));
                }
                let admin = self.admin(ctx)?;
                admin.map_realm_roles(ctx, &change.user_id, &roles, op == "keycloak.assign_realm_role").await?;
                let now = admin.realm_roles(ctx, &change.user_id, false).await?;
                Ok(json!({ "user_id": change.user_id, "realm_roles": now }))
            }
            "keycloak.list_user_roles" => {
                let list: ListRoles = decode(ctx, payload)?;
                let roles = self.admin(ctx)?.realm_roles(ctx, &list.user_id, list.effective).await?;
                Ok(json!({ "user_id": list.user_id, "realm_roles": roles, "effective": list.effective }))
            }
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the keycloak handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn token(&self, payload: &Json, ctx: &str) -> SpiResult<Json> {
        let map = fields(payload, &["grant", "scope", "username", "password", "refresh_token"], ctx)?;
        let grant = match map.get("grant") {
            None => "client_credentials",
            Some(Json::String(grant)) => grant.as_str(),
            Some(_) => return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `grant` must be a string"))),
        };
        let scopes = scopes_of(map.get("scope"), ctx)?;
        let tokens = self.tokens(ctx)?;
        match grant {
            "client_credentials" => {
                let (token, cached) = tokens.service_token(&self.provider, &scopes, ctx).await?;
                Ok(service_token_reply(&token, cached))
            }
            "password" => {
                if !self.config.allow_password_grant {
                    return Err(SpiError::new(
                        codes::KEYCLOAK_REJECTED,
                        format!(
                            "{ctx}: the password grant is off for this handler (`allow_password_grant: true` turns it on)"
                        ),
                    ));
                }
                let Some(Json::String(username)) = map.get("username") else {
                    return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `username` (a string) is required")));
                };
                let password = required(secret_field(payload, "password", ctx)?, "password", ctx)?;
                tokens.password(&self.provider, username, &password, &scopes, ctx).await
            }
            "refresh_token" => {
                let refresh = required(secret_field(payload, "refresh_token", ctx)?, "refresh_token", ctx)?;
                tokens.refresh(&self.provider, &refresh, &scopes, ctx).await
            }
            other => Err(SpiError::new(
                codes::BAD_PAYLOAD,
                format!("{ctx}: `grant` `{other}` is not one of client_credentials, password, refresh_token"),
            )),
        }
    }

    async fn userinfo(&self, token: &Secret, ctx: &str) -> SpiResult<Json> {
        let metadata = self.provider.metadata().await?;
        let endpoint = metadata.userinfo_endpoint.clone().ok_or_else(|| {
            SpiError::new(
                codes::KEYCLOAK_REJECTED,
                format!("{ctx}: the provider's discovery document has no userinfo_endpoint"),
            )
        })?;
        let answer = self.provider.send(ctx, Method::GET, &endpoint, Some(token), None).await?;
        if !answer.status.is_success() {
            return Err(status_error(ctx, &answer));
        }
        json_body(ctx, &answer)
    }

    async fn create_user(&self, payload: &Json, ctx: &str) -> SpiResult<Json> {
        let user: CreateUser = decode(ctx, payload)?;
        let password = secret_field(payload, "password", ctx)?;
        let mut representation = json!({
            "username": user.username,
            "enabled": user.enabled,
            "emailVerified": user.email_verified,
        });
        for (key, value) in [("email", user.email), ("firstName", user.first_name), ("lastName", user.last_name)] {
            if let Some(value) = value {
                representation[key] = Json::String(value);
            }
        }
        if !user.attributes.is_empty() {
            representation["attributes"] = json!(user.attributes);
        }
        if let Some(password) = &password {
            representation["credentials"] =
                json!([{ "type": "password", "value": password.expose(), "temporary": user.temporary_password }]);
        }
        let id = self.admin(ctx)?.create_user(ctx, &representation).await?;
        Ok(json!({ "id": id, "username": user.username.to_lowercase() }))
    }
}

/// `e` with `ctx` (envelope and operation) before its message.
fn prefixed(ctx: &str, e: &SpiError) -> SpiError {
    SpiError::custom(e.code().to_owned(), e.category(), format!("{ctx}: {}", e.message()))
}

/// `keycloak.verify`'s reply.
fn verified_reply(token: VerifiedToken) -> Json {
    let pick = |name: &str| token.claims.get(name).cloned().unwrap_or(Json::Null);
    json!({
        "valid": true,
        "subject": pick("sub"),
        "issuer": pick("iss"),
        "audience": pick("aud"),
        "expires_at": pick("exp"),
        "realm_roles": token.realm_roles,
        "client_roles": token.client_roles,
        "scopes": token.scopes,
        "claims": token.claims,
    })
}

#[onex_spi::async_trait]
impl Handler for KeycloakHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    /// Resolves the client secret. The provider need not be reachable yet: discovery happens
    /// on first use, and calls fail as unavailable until it answers.
    async fn initialize(&self) -> SpiResult<()> {
        let Some(client_id) = &self.config.client_id else { return Ok(()) };
        self.tokens
            .get_or_try_init(|| async {
                let client_secret = match &self.config.client_secret {
                    Some(reference) => Some(self.secrets.resolve(reference).await.map_err(|e| {
                        SpiError::custom(
                            e.code().to_owned(),
                            e.category(),
                            format!("keycloak handler: `client_secret`: {}", e.message()),
                        )
                    })?),
                    None => None,
                };
                let credentials = Credentials { client_id: client_id.clone(), client_secret };
                Ok::<_, SpiError>(Tokens::new(credentials, self.config.token_refresh_before))
            })
            .await?;
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        self.dispatch(request).await
    }

    async fn health(&self) -> Health {
        let url = format!("{}/.well-known/openid-configuration", self.provider.issuer());
        match self.provider.get_json("keycloak health", &url, None).await {
            Ok(_) => Health::Healthy,
            Err(e) => Health::Unhealthy(e.message().to_owned()),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds [`KeycloakHandler`]s from `handlers.keycloak.config`.
#[derive(Debug, Default)]
pub struct KeycloakHandlerFactory;

impl HandlerFactory for KeycloakHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(KeycloakHandler::new(&init.config, &init.data_dir, init.secrets)?))
    }
}
