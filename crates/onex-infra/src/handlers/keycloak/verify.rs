//! Verifying a JWT against the realm: the header's `alg` must be on the allow-list (`none` and
//! HMAC never are, so a token "signed" with the public key as an HMAC secret is refused before
//! any key is touched), its `kid` must name a key of the issuer's JWKS of the same family, the
//! signature must verify, and `iss`, `aud`, `exp` and `nbf` must hold (with the leeway). Each
//! refusal has its own code; no message quotes the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::config::KeycloakConfig;
use super::jwks::Jwks;
use super::provider::Provider;
use crate::error::codes;

/// A token that verified, with the parts authorisation looks at.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Every claim.
    pub claims: Map<String, Json>,
    /// Keycloak's realm roles (`realm_access.roles`).
    pub realm_roles: Vec<String>,
    /// Keycloak's client roles by client (`resource_access.<client>.roles`).
    pub client_roles: BTreeMap<String, Vec<String>>,
    /// OAuth scopes (`scope`, space-separated, or `scp`).
    pub scopes: Vec<String>,
}

impl VerifiedToken {
    /// Whether the token holds `name` as a realm role, a client role of any client, or a scope.
    pub fn grants(&self, name: &str) -> bool {
        self.realm_roles.iter().any(|r| r == name)
            || self.scopes.iter().any(|s| s == name)
            || self.client_roles.values().flatten().any(|r| r == name)
    }
}

/// Verifies tokens of one issuer.
#[derive(Debug)]
pub struct JwtVerifier {
    provider: Arc<Provider>,
    jwks: Jwks,
    /// The allowed algorithms.
    algorithms: Vec<Algorithm>,
    /// One validation per key family (the JWT crate wants every algorithm a validation allows
    /// to be of the key's family), each allowing that family's allowed algorithms.
    validations: Vec<(AlgorithmFamily, Validation)>,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
}

fn refused(code: onex_core::error::ErrorCode, message: impl Into<String>) -> SpiError {
    SpiError::new(code, message)
}

impl JwtVerifier {
    /// A verifier for `config`'s issuer, audience, algorithms and leeway, fetching keys through
    /// `provider`.
    pub(crate) fn new(config: &KeycloakConfig, provider: Arc<Provider>) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[provider.issuer()]);
        let mut required = vec!["exp", "iss"];
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let families = [AlgorithmFamily::Rsa, AlgorithmFamily::Ec, AlgorithmFamily::Ed];
        let validations = families
            .into_iter()
            .filter_map(|family| {
                let allowed: Vec<Algorithm> =
                    config.algorithms.iter().copied().filter(|a| family.algorithms().contains(a)).collect();
                (!allowed.is_empty()).then(|| (family, Validation { algorithms: allowed, ..validation.clone() }))
            })
            .collect();
        let jwks = Jwks::new(config.jwks_refresh_min_interval, config.jwks_max_age);
        Self { provider, jwks, algorithms: config.algorithms.clone(), validations }
    }

    /// A verifier with its own connection to `config`'s issuer (the admin API's bearer auth).
    pub fn from_config(config: &KeycloakConfig, data_dir: &std::path::Path) -> SpiResult<Self> {
        Ok(Self::new(config, Arc::new(Provider::new(config, data_dir)?)))
    }

    /// How many times the issuer's key set has been fetched.
    pub fn key_fetches(&self) -> u64 {
        self.jwks.fetches()
    }

    /// Verifies `token`; the error's code says why it was refused.
    pub async fn verify(&self, token: &str) -> SpiResult<VerifiedToken> {
        let token = token.trim();
        let (alg, kid) = self.header(token)?;
        let key = self.jwks.key(&self.provider, kid.as_deref()).await?;
        let validation = self.validations.iter().find(|(family, _)| *family == key.family).map(|(_, v)| v);
        let Some(validation) = validation.filter(|_| key.family.algorithms().contains(&alg)) else {
            let named = kid.as_deref().map_or_else(|| "the issuer's key".to_owned(), |k| format!("key {k}"));
            return Err(refused(
                codes::TOKEN_ALGORITHM_REFUSED,
                format!("the token claims {alg:?}, but {named} is a {:?} key", key.family),
            ));
        };
        let data = jsonwebtoken::decode::<Map<String, Json>>(token, &key.decoding, validation)
            .map_err(|e| classify(e.kind()))?;
        Ok(authorised_parts(data.claims))
    }

    /// The header's algorithm (allowed) and `kid`.
    fn header(&self, token: &str) -> SpiResult<(Algorithm, Option<String>)> {
        let malformed = |why: &str| refused(codes::TOKEN_MALFORMED, format!("not a JWS compact JWT: {why}"));
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected three `.`-separated parts"));
        };
        let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed("the header is not base64url"))?;
        let header: Header<'_> =
            serde_json::from_slice(&bytes).map_err(|_| malformed("the header is not a JSON object"))?;
        let Some(alg) = header.alg else { return Err(malformed("the header has no `alg`")) };
        if alg.eq_ignore_ascii_case("none") {
            return Err(refused(codes::TOKEN_ALGORITHM_REFUSED, "`alg: none` (an unsigned token) is never accepted"));
        }
        if alg.starts_with("HS") {
            return Err(refused(
                codes::TOKEN_ALGORITHM_REFUSED,
                format!("`alg: {alg}` is an HMAC algorithm; tokens are verified with the issuer's public keys only"),
            ));
        }
        let parsed: Algorithm = alg.parse().map_err(|_| {
            refused(codes::TOKEN_ALGORITHM_REFUSED, format!("`alg: {alg}` is not an algorithm the verifier knows"))
        })?;
        if !self.algorithms.contains(&parsed) {
            return Err(refused(
                codes::TOKEN_ALGORITHM_REFUSED,
                format!("`alg: {alg}` is not in the configured `algorithms`"),
            ));
        }
        Ok((parsed, header.kid.map(std::borrow::Cow::into_owned)))
    }
}

/// A refusal of the JWT crate as this verifier's error.
fn classify(kind: &ErrorKind) -> SpiError {
    match kind {
        ErrorKind::ExpiredSignature => refused(codes::TOKEN_EXPIRED, "the token has expired (`exp`)"),
        ErrorKind::ImmatureSignature => refused(codes::TOKEN_NOT_YET_VALID, "the token is not valid yet (`nbf`)"),
        ErrorKind::InvalidIssuer => {
            refused(codes::TOKEN_WRONG_ISSUER, "the token's `iss` is not the configured issuer")
        }
        ErrorKind::InvalidAudience => {
            refused(codes::TOKEN_WRONG_AUDIENCE, "the token's `aud` names none of the configured audiences")
        }
        ErrorKind::InvalidSignature => refused(codes::TOKEN_BAD_SIGNATURE, "the token's signature does not verify"),
        ErrorKind::MissingRequiredClaim(claim) => {
            refused(codes::TOKEN_MISSING_CLAIM, format!("the token has no `{claim}` claim, which is required"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            refused(codes::TOKEN_ALGORITHM_REFUSED, "the token's algorithm does not fit its key")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            refused(codes::TOKEN_MALFORMED, format!("the token's `{claim}` claim has the wrong type"))
        }
        _ => refused(codes::TOKEN_MALFORMED, "not a JWS compact JWT: its parts do not decode"),
    }
}

/// The claims with Keycloak's roles and the OAuth scopes picked out.
fn authorised_parts(claims: Map<String, Json>) -> VerifiedToken {
    let strings = |value: Option<&Json>| -> Vec<String> {
        value
            .and_then(Json::as_array)
            .map_or_else(Vec::new, |items| items.iter().filter_map(Json::as_str).map(str::to_owned).collect())
    };
    let realm_roles = strings(claims.get("realm_access").and_then(|r| r.get("roles")));
    let client_roles = claims
        .get("resource_access")
        .and_then(Json::as_object)
        .map(|clients| clients.iter().map(|(client, access)| (client.clone(), strings(access.get("roles")))).collect())
        .unwrap_or_default();
    let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Json::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        other => strings(other),
    };
    VerifiedToken { claims, realm_roles, client_roles, scopes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_and_scopes_are_read_from_keycloak_and_oauth_claims() {
        let claims = json!({
            "realm_access": { "roles": ["onex-operator"] },
            "resource_access": { "onex-admin": { "roles": ["metrics-reader"] } },
            "scope": "openid onex:read",
        });
        let Json::Object(claims) = claims else { unreachable!() };
        let token = authorised_parts(claims);
        assert!(token.grants("onex-operator") && token.grants("metrics-reader") && token.grants("onex:read"));
        assert!(!token.grants("onex:ingress"));
        let Json::Object(scp) = json!({ "scp": ["a", "b"] }) else { unreachable!() };
        assert_eq!(authorised_parts(scp).scopes, ["a", "b"]);
    }
}
