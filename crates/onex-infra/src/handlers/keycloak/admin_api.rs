//! Keycloak's Admin REST API (`<admin_url>` = `https://kc/admin/realms/<realm>`): users and
//! their realm-role mappings, called with the handler's own client-credentials token. A 401
//! means the realm no longer takes that token: it is forgotten and the call made once more
//! with a new one.

use hyper::Method;
use onex_spi::{SpiError, SpiResult};
use serde_json::{Value as Json, json};
use url::Url;

use super::provider::{Provider, json_body, status_error, unexpected};
use super::tokens::Tokens;
use crate::error::codes;
use crate::handlers::http::client::Answer;

/// The Admin API of one realm.
#[derive(Debug)]
pub(crate) struct AdminApi<'a> {
    pub base: &'a Url,
    pub provider: &'a Provider,
    pub tokens: &'a Tokens,
}

impl AdminApi<'_> {
    /// `method <admin_url>/<path>`, retried once with a new token after a 401.
    async fn call(&self, ctx: &str, method: Method, path: &str, body: Option<&Json>) -> SpiResult<Answer> {
        let url = format!("{}/{path}", self.base.as_str().trim_end_matches('/'));
        let mut retried = false;
        loop {
            let (token, _) = self.tokens.service_token(self.provider, &[], ctx).await?;
            let answer = self.provider.send(ctx, method.clone(), &url, Some(&token.access_token), body).await?;
            if answer.status.as_u16() == 401 && !retried {
                self.tokens.forget(&[]).await;
                retried = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// A call whose success answers JSON (or nothing).
    async fn call_json(&self, ctx: &str, method: Method, path: &str, body: Option<&Json>) -> SpiResult<Json> {
        let answer = self.call(ctx, method, path, body).await?;
        if !answer.status.is_success() {
            return Err(status_error(ctx, &answer));
        }
        json_body(ctx, &answer)
    }

    /// Creates a user; its id (from the `Location` Keycloak answers with).
    pub async fn create_user(&self, ctx: &str, representation: &Json) -> SpiResult<String> {
        let answer = self.call(ctx, Method::POST, "users", Some(representation)).await?;
        if !answer.status.is_success() {
            return Err(status_error(ctx, &answer));
        }
        let location = answer.headers.get(hyper::header::LOCATION).and_then(|l| l.to_str().ok());
        location
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| unexpected(format!("{ctx}: Keycloak created the user but answered no Location naming it")))
    }

    /// One user by id.
    pub async fn get_user(&self, ctx: &str, id: &str) -> SpiResult<Json> {
        self.call_json(ctx, Method::GET, &format!("users/{}", segment(id)), None).await
    }

    /// The user whose username is exactly `username`.
    pub async fn find_user(&self, ctx: &str, username: &str) -> SpiResult<Json> {
        let mut query = Url::parse("http://q/").map_err(|e| unexpected(e.to_string()))?;
        query.query_pairs_mut().append_pair("username", username).append_pair("exact", "true");
        let path = format!("users?{}", query.query().unwrap_or_default());
        let found = self.call_json(ctx, Method::GET, &path, None).await?;
        let lowered = username.to_lowercase();
        found
            .as_array()
            .and_then(|users| users.iter().find(|u| u["username"].as_str() == Some(lowered.as_str())))
            .cloned()
            .ok_or_else(|| {
                SpiError::new(codes::KEYCLOAK_NOT_FOUND, format!("{ctx}: no user with username `{username}`"))
            })
    }

    /// The realm roles named, as Keycloak's role representations (each must exist).
    async fn roles(&self, ctx: &str, names: &[String]) -> SpiResult<Vec<Json>> {
        let mut roles = Vec::with_capacity(names.len());
        for name in names {
            let role =
                self.call_json(ctx, Method::GET, &format!("roles/{}", segment(name)), None).await.map_err(|e| {
                    if e.code() == codes::KEYCLOAK_NOT_FOUND.as_str() {
                        SpiError::new(codes::KEYCLOAK_NOT_FOUND, format!("{ctx}: the realm has no role `{name}`"))
                    } else {
                        e
                    }
                })?;
            roles.push(json!({ "id": role["id"], "name": role["name"] }));
        }
        Ok(roles)
    }

    /// Adds (`assign`) or removes realm roles of a user.
    pub async fn map_realm_roles(&self, ctx: &str, user_id: &str, names: &[String], assign: bool) -> SpiResult<()> {
        let roles = Json::Array(self.roles(ctx, names).await?);
        let method = if assign { Method::POST } else { Method::DELETE };
        self.call_json(ctx, method, &format!("users/{}/role-mappings/realm", segment(user_id)), Some(&roles)).await?;
        Ok(())
    }

    /// The names of a user's realm roles: those mapped to it directly, or (`effective`) with
    /// composite roles expanded.
    pub async fn realm_roles(&self, ctx: &str, user_id: &str, effective: bool) -> SpiResult<Vec<String>> {
        let suffix = if effective { "/composite" } else { "" };
        let path = format!("users/{}/role-mappings/realm{suffix}", segment(user_id));
        let roles = self.call_json(ctx, Method::GET, &path, None).await?;
        let mut names: Vec<String> = roles
            .as_array()
            .map(|roles| roles.iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        names.sort_unstable();
        Ok(names)
    }
}

/// `text` as one percent-encoded path segment (an id or name cannot climb out of its place).
fn segment(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn ids_and_names_stay_one_path_segment() {
        assert_eq!(segment("onex-operator"), "onex-operator");
        assert_eq!(segment("../../users"), "..%2F..%2Fusers");
        assert_eq!(segment("a b"), "a%20b");
    }
}
