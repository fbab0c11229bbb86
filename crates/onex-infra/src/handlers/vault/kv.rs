//! KV secrets on v1 and v2 mounts: read, write, delete and list, with vaultrs's request
//! endpoints (`<mount>/<path>` on v1; `<mount>/data/<path>` and `<mount>/metadata/<path>` on
//! v2) and the replies reduced to what the operations return.

use onex_spi::{SpiError, SpiResult};
use serde_json::{Map, Value as Json, json};
use vaultrs::api::{kv1, kv2};

use super::client::{Call, VaultApi};
use super::config::KvVersion;
use crate::error::codes;

/// A secret's location, checked by [`Location::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The mount, without slashes around it.
    pub mount: String,
    /// The path inside the mount, without a leading slash (may be empty for a list).
    pub path: String,
    /// The mount's KV version.
    pub version: KvVersion,
}

/// Why `value` is not a usable mount or path segment list, if it is not.
fn bad_segments(value: &str, allow_empty: bool) -> Option<&'static str> {
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() {
        return (!allow_empty).then_some("is empty");
    }
    if value.chars().any(|c| c.is_control() || matches!(c, '?' | '#' | '%' | '\\')) {
        return Some("holds a control character or one of ? # % \\");
    }
    if trimmed.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Some("has an empty, `.` or `..` segment");
    }
    None
}

impl Location {
    /// Checks `mount` and `path`; `context` names the envelope and operation for errors.
    pub fn new(api: &VaultApi, mount: &str, path: &str, allow_empty_path: bool, context: &str) -> SpiResult<Self> {
        for (field, value, allow_empty) in [("mount", mount, false), ("path", path, allow_empty_path)] {
            if let Some(why) = bad_segments(value, allow_empty) {
                return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{context}: field `{field}` {why}")));
            }
        }
        let mount = mount.trim_matches('/').to_owned();
        let path = path.trim_start_matches('/').to_owned();
        Ok(Self { version: api.mounts.version(&mount), mount, path })
    }

    /// `mount/path`, for messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }
}

/// Reads a secret: `{data}` (v1) or `{data, metadata}` (v2; `version` picks an older one).
pub async fn read(api: &VaultApi, at: &Location, version: Option<u64>, context: &str) -> SpiResult<Json> {
    let call = Call { context, carries_secret: false };
    let (mount, path) = (at.mount.clone(), at.path.clone());
    let (data, metadata) = match at.version {
        KvVersion::V1 => {
            let reply = api.send(kv1::requests::GetSecretRequest { mount, path }, call).await?;
            (reply.get("data").cloned(), None)
        }
        KvVersion::V2 => {
            let reply = api.send(kv2::requests::ReadSecretRequest { mount, path, version }, call).await?;
            (reply["data"].get("data").cloned(), reply["data"].get("metadata").cloned())
        }
    };
    match data {
        Some(Json::Object(data)) => {
            let mut out = Map::from_iter([("data".to_owned(), Json::Object(data))]);
            if let Some(metadata) = metadata {
                out.insert("metadata".to_owned(), metadata);
            }
            Ok(Json::Object(out))
        }
        // KV v2 answers a deleted or destroyed version with `data: null` and its metadata.
        Some(Json::Null) | None if at.version == KvVersion::V2 => {
            Err(SpiError::new(codes::VAULT_NOT_FOUND, format!("{context}: the secret's version is deleted")))
        }
        _ => Err(SpiError::new(codes::VAULT_UNEXPECTED, format!("{context}: Vault's reply has no `data` object"))),
    }
}

/// Writes `data` (v1: replaces the secret; v2: a new version, `cas` to check-and-set).
pub async fn write(
    api: &VaultApi,
    at: &Location,
    data: Map<String, Json>,
    cas: Option<u32>,
    context: &str,
) -> SpiResult<Json> {
    let call = Call { context, carries_secret: true };
    let (mount, path) = (at.mount.clone(), at.path.clone());
    match at.version {
        KvVersion::V1 => {
            let data = serde_json::to_vec(&data).map_err(|_| {
                SpiError::new(codes::BAD_PAYLOAD, format!("{context}: field `data` cannot be encoded as JSON"))
            })?;
            api.send(kv1::requests::SetSecretRequest { mount, path, data }, call).await?;
            Ok(json!({"written": true}))
        }
        KvVersion::V2 => {
            let options = cas.map(|cas| kv2::requests::SetSecretRequestOptions { cas });
            let request = kv2::requests::SetSecretRequest { mount, path, data: Json::Object(data), options };
            let reply = api.send(request, call).await?;
            Ok(json!({"written": true, "metadata": reply.get("data").cloned().unwrap_or(Json::Null)}))
        }
    }
}

/// Deletes a secret (v2: every version and the metadata).
pub async fn delete(api: &VaultApi, at: &Location, context: &str) -> SpiResult<Json> {
    let call = Call { context, carries_secret: false };
    let (mount, path) = (at.mount.clone(), at.path.clone());
    match at.version {
        KvVersion::V1 => api.send(kv1::requests::DeleteSecretRequest { mount, path }, call).await?,
        KvVersion::V2 => api.send(kv2::requests::DeleteSecretMetadataRequest { mount, path }, call).await?,
    };
    Ok(json!({"deleted": true}))
}

/// The keys under a path (folders end with `/`); Vault answers 404 when there are none.
pub async fn list(api: &VaultApi, at: &Location, context: &str) -> SpiResult<Json> {
    let call = Call { context, carries_secret: false };
    let (mount, path) = (at.mount.clone(), at.path.clone());
    let reply = match at.version {
        KvVersion::V1 => api.send(kv1::requests::ListSecretRequest { mount, path }, call).await?,
        KvVersion::V2 => api.send(kv2::requests::ListSecretsRequest { mount, path }, call).await?,
    };
    match reply["data"].get("keys") {
        Some(Json::Array(keys)) if keys.iter().all(Json::is_string) => Ok(json!({"keys": keys})),
        _ => Err(SpiError::new(codes::VAULT_UNEXPECTED, format!("{context}: Vault's reply has no `data.keys` list"))),
    }
}

#[cfg(test)]
mod tests {
    use super::bad_segments;

    #[test]
    fn paths_that_would_change_the_url_are_refused() {
        assert_eq!(bad_segments("app/db", false), None);
        assert_eq!(bad_segments("/app/db/", false), None);
        assert_eq!(bad_segments("", true), None);
        assert!(bad_segments("", false).is_some());
        assert!(bad_segments("app/../sys", false).is_some());
        assert!(bad_segments("app//db", false).is_some());
        assert!(bad_segments("app?x=1", false).is_some());
        assert!(bad_segments("app#k", false).is_some());
        assert!(bad_segments("app\nx", false).is_some());
    }
}
