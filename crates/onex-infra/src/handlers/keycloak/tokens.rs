//! OAuth 2.0 grants at the realm's token endpoint (through `oauth2`): client credentials,
//! cached per scope set until `token_refresh_before` ahead of expiry (one request at a time
//! per handler, so a burst of calls makes one grant); the resource-owner password grant and
//! refresh, never cached (the tokens are the caller's); and RFC 7662 introspection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse, BasicTokenType};
use oauth2::{
    AccessToken, Client, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields, IntrospectionUrl,
    RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername, Scope, StandardRevocableToken,
    StandardTokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use onex_core::secret::Secret;
use onex_spi::{SpiError, SpiResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use super::provider::{Provider, oauth_error};
use crate::error::codes;

/// Introspection answers keep every claim the provider adds (Keycloak's roles among them).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Json>,
}
impl ExtraTokenFields for OtherClaims {}

type Introspection = StandardTokenIntrospectionResponse<OtherClaims, BasicTokenType>;
type OauthClient<HasIntrospection, HasToken> = Client<
    BasicErrorResponse,
    BasicTokenResponse,
    Introspection,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    HasIntrospection,
    EndpointNotSet,
    HasToken,
>;

/// The client the handler acts as.
#[derive(Debug)]
pub(crate) struct Credentials {
    pub client_id: String,
    pub client_secret: Option<Secret>,
}

/// An access token the handler holds for itself.
#[derive(Debug, Clone)]
pub(crate) struct ServiceToken {
    pub access_token: Secret,
    pub scope: Option<String>,
    expires_at: Option<Instant>,
    renew_at: Option<Instant>,
}

/// Grants and the cache of the handler's own tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    credentials: Credentials,
    refresh_before: Duration,
    cache: tokio::sync::Mutex<HashMap<String, ServiceToken>>,
    granted: AtomicU64,
}

impl Tokens {
    pub fn new(credentials: Credentials, refresh_before: Duration) -> Self {
        Self { credentials, refresh_before, cache: tokio::sync::Mutex::new(HashMap::new()), granted: AtomicU64::new(0) }
    }

    /// How many tokens the provider has granted the handler (cache misses).
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    fn client(&self) -> OauthClient<EndpointNotSet, EndpointNotSet> {
        let client = Client::new(ClientId::new(self.credentials.client_id.clone()));
        match &self.credentials.client_secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose().to_owned())),
            None => client,
        }
    }

    async fn token_client(
        &self,
        provider: &Provider,
        ctx: &str,
    ) -> SpiResult<OauthClient<EndpointNotSet, EndpointSet>> {
        let metadata = provider.metadata().await?;
        let endpoint = metadata.token_endpoint.clone().ok_or_else(|| {
            SpiError::new(
                codes::KEYCLOAK_UNEXPECTED,
                format!("{ctx}: the provider's discovery document has no token_endpoint"),
            )
        })?;
        let url = TokenUrl::new(endpoint).map_err(|e| {
            SpiError::new(codes::KEYCLOAK_UNEXPECTED, format!("{ctx}: token_endpoint is not a URL: {e}"))
        })?;
        Ok(self.client().set_token_uri(url))
    }

    /// A client-credentials token for `scopes`: the cached one while it has more than
    /// `token_refresh_before` to live, else a new one (`cached` says which).
    pub async fn service_token(
        &self,
        provider: &Provider,
        scopes: &[String],
        ctx: &str,
    ) -> SpiResult<(ServiceToken, bool)> {
        let key = scope_key(scopes);
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.get(&key).filter(|t| t.renew_at.is_none_or(|at| Instant::now() < at)) {
            return Ok((token.clone(), true));
        }
        let client = self.token_client(provider, ctx).await?;
        let mut request = client.exchange_client_credentials();
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let response = request.request_async(&provider.oauth(ctx)).await.map_err(|e| oauth_error(ctx, e))?;
        self.granted.fetch_add(1, Ordering::Relaxed);
        let (now, expires_in) = (Instant::now(), response.expires_in());
        let token = ServiceToken {
            access_token: Secret::new(response.access_token().secret().clone()),
            scope: scopes_text(&response),
            expires_at: expires_in.map(|d| now + d),
            renew_at: expires_in.map(|d| now + d.saturating_sub(self.refresh_before)),
        };
        cache.insert(key, token.clone());
        Ok((token, false))
    }

    /// Forgets the cached token for `scopes` (the provider no longer takes it).
    pub async fn forget(&self, scopes: &[String]) {
        self.cache.lock().await.remove(&scope_key(scopes));
    }

    /// The resource-owner password grant, for a user's tokens (not cached).
    pub async fn password(
        &self,
        provider: &Provider,
        username: &str,
        password: &Secret,
        scopes: &[String],
        ctx: &str,
    ) -> SpiResult<Json> {
        let client = self.token_client(provider, ctx).await?;
        let username = ResourceOwnerUsername::new(username.to_owned());
        let password = ResourceOwnerPassword::new(password.expose().to_owned());
        let mut request = client.exchange_password(&username, &password);
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let response = request.request_async(&provider.oauth(ctx)).await.map_err(|e| oauth_error(ctx, e))?;
        Ok(token_reply(&response, false))
    }

    /// A new token set for a refresh token (not cached).
    pub async fn refresh(
        &self,
        provider: &Provider,
        refresh_token: &Secret,
        scopes: &[String],
        ctx: &str,
    ) -> SpiResult<Json> {
        let client = self.token_client(provider, ctx).await?;
        let refresh = RefreshToken::new(refresh_token.expose().to_owned());
        let mut request = client.exchange_refresh_token(&refresh);
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let response = request.request_async(&provider.oauth(ctx)).await.map_err(|e| oauth_error(ctx, e))?;
        Ok(token_reply(&response, false))
    }

    /// RFC 7662 introspection of `token`, authenticated as the handler's client.
    pub async fn introspect(
        &self,
        provider: &Provider,
        token: &Secret,
        hint: Option<&str>,
        ctx: &str,
    ) -> SpiResult<Json> {
        let metadata = provider.metadata().await?;
        let endpoint = metadata.introspection_endpoint.clone().ok_or_else(|| {
            SpiError::new(
                codes::KEYCLOAK_REJECTED,
                format!("{ctx}: the provider's discovery document has no introspection_endpoint"),
            )
        })?;
        let url = IntrospectionUrl::new(endpoint).map_err(|e| {
            SpiError::new(codes::KEYCLOAK_UNEXPECTED, format!("{ctx}: introspection_endpoint is not a URL: {e}"))
        })?;
        let client = self.client().set_introspection_url(url);
        let access = AccessToken::new(token.expose().to_owned());
        let mut request = client.introspect(&access);
        if let Some(hint) = hint {
            request = request.set_token_type_hint(hint.to_owned());
        }
        let response = request.request_async(&provider.oauth(ctx)).await.map_err(|e| oauth_error(ctx, e))?;
        serde_json::to_value(&response)
            .map_err(|e| SpiError::new(codes::KEYCLOAK_UNEXPECTED, format!("{ctx}: introspection answer: {e}")))
    }
}

/// The cache key of a scope set (order and repeats do not matter).
fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

fn scopes_text(response: &BasicTokenResponse) -> Option<String> {
    response.scopes().map(|scopes| scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
}

/// A token response as the operation's reply.
pub(crate) fn token_reply(response: &BasicTokenResponse, cached: bool) -> Json {
    let mut reply = json!({
        "access_token": response.access_token().secret(),
        "token_type": "Bearer",
        "cached": cached,
    });
    if let Some(expires_in) = response.expires_in() {
        reply["expires_in"] = json!(expires_in.as_secs());
    }
    if let Some(refresh) = response.refresh_token() {
        reply["refresh_token"] = json!(refresh.secret());
    }
    if let Some(scope) = scopes_text(response) {
        reply["scope"] = json!(scope);
    }
    reply
}

/// The handler's own token as the operation's reply; `expires_in` is what is left of it.
pub(crate) fn service_token_reply(token: &ServiceToken, cached: bool) -> Json {
    let mut reply = json!({ "access_token": token.access_token.expose(), "token_type": "Bearer", "cached": cached });
    if let Some(expires_at) = token.expires_at {
        reply["expires_in"] = json!(expires_at.saturating_duration_since(Instant::now()).as_secs());
    }
    if let Some(scope) = &token.scope {
        reply["scope"] = json!(scope);
    }
    reply
}

/// Scopes as written in a payload: a space-separated string or a list.
pub(crate) fn scopes_of(value: Option<&Json>, ctx: &str) -> SpiResult<Vec<String>> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::String(text)) => Ok(text.split_whitespace().map(str::to_owned).collect()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `scope` must be a string or a list of strings"))
                })
            })
            .collect(),
        Some(_) => {
            Err(SpiError::new(codes::BAD_PAYLOAD, format!("{ctx}: `scope` must be a string or a list of strings")))
        }
    }
}
