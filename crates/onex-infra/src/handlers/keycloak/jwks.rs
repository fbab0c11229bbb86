//! The realm's signing keys (its JWKS), cached by `kid`: fetched on first use and again once
//! older than `jwks_max_age`, and refreshed at once when a token names an unknown `kid`, at
//! most once per `jwks_refresh_min_interval` (so a stream of tokens with made-up `kid`s cannot
//! make the host hammer the provider). One fetch at a time; the others wait for its result.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use onex_spi::{SpiError, SpiResult};
use serde_json::Value as Json;
use tokio::time::Instant;

use super::provider::Provider;
use crate::error::codes;

/// One verification key.
#[derive(Debug)]
pub(crate) struct Key {
    pub decoding: DecodingKey,
    pub family: AlgorithmFamily,
}

/// The keys of one fetch.
#[derive(Debug, Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid`: used for a token without one when there is exactly one.
    unnamed: Vec<Arc<Key>>,
    fetched_at: Option<Instant>,
}

/// The cache.
#[derive(Debug)]
pub(crate) struct Jwks {
    current: RwLock<Arc<KeySet>>,
    /// When the last fetch an unknown `kid` caused started; held while fetching.
    last_unknown_kid_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
    max_age: Duration,
    fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    pub fn new(min_interval: Duration, max_age: Duration) -> Self {
        Self {
            current: RwLock::new(Arc::new(KeySet::default())),
            last_unknown_kid_fetch: tokio::sync::Mutex::new(None),
            min_interval,
            max_age,
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key `kid` names (or the one unnamed key when `kid` is absent): from the cache when it
    /// is there and fresh; otherwise after one fetch, rate-limited for unknown `kid`s.
    pub async fn key(&self, provider: &Provider, kid: Option<&str>) -> SpiResult<Arc<Key>> {
        let set = self.snapshot();
        let fresh = set.fetched_at.is_some_and(|at| at.elapsed() < self.max_age);
        if fresh && let Some(key) = lookup(&set, kid) {
            return Ok(key);
        }
        let set = match self.refresh(provider, !fresh).await {
            Ok(set) => set,
            // The provider is down: a key already held still verifies (it may be stale, not wrong).
            Err(e) => match lookup(&set, kid) {
                Some(key) => {
                    tracing::warn!(error = %e, "cannot refresh the issuer's key set; verifying with the cached one");
                    return Ok(key);
                }
                None => return Err(e),
            },
        };
        lookup(&set, kid).ok_or_else(|| {
            let named = kid.map_or_else(|| "no `kid`".to_owned(), |kid| format!("`kid` {kid}"));
            SpiError::new(
                codes::TOKEN_KEY_UNKNOWN,
                format!(
                    "the token names {named}, which the issuer's key set ({} keys) does not hold",
                    set.by_kid.len()
                ),
            )
        })
    }

    /// Fetches the key set unless another caller just did (its result is used). A fetch for an
    /// unknown `kid` (`stale` false) is skipped when the last such fetch is more recent than
    /// `min_interval`; a fetch of a missing or stale set always happens.
    async fn refresh(&self, provider: &Provider, stale: bool) -> SpiResult<Arc<KeySet>> {
        let before = self.snapshot().fetched_at;
        let mut last_unknown = self.last_unknown_kid_fetch.lock().await;
        let current = self.snapshot();
        if current.fetched_at != before {
            return Ok(current); // fetched while this caller waited
        }
        if !stale {
            if last_unknown.is_some_and(|at| at.elapsed() < self.min_interval) {
                return Ok(current);
            }
            *last_unknown = Some(Instant::now());
        }
        let fetched = Arc::new(fetch(provider).await?);
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fetched);
        Ok(fetched)
    }
}

fn lookup(set: &KeySet, kid: Option<&str>) -> Option<Arc<Key>> {
    match kid {
        Some(kid) => set.by_kid.get(kid).cloned(),
        None if set.unnamed.len() == 1 && set.by_kid.is_empty() => set.unnamed.first().cloned(),
        None => None,
    }
}

/// Fetches and reads the key set. Keys meant for encryption (`use: enc`) and keys the verifier
/// cannot use are left out, not refused: a realm publishes both kinds.
async fn fetch(provider: &Provider) -> SpiResult<KeySet> {
    let metadata = provider.metadata().await?;
    let doc = provider.get_json("keycloak jwks", &metadata.jwks_uri, None).await?;
    let Some(keys) = doc.get("keys").and_then(Json::as_array) else {
        return Err(SpiError::new(
            codes::KEYCLOAK_UNEXPECTED,
            format!("keycloak jwks: {}: not a JWK set (no `keys` array)", metadata.jwks_uri),
        ));
    };
    let mut set = KeySet { fetched_at: Some(Instant::now()), ..KeySet::default() };
    for raw in keys {
        if raw.get("use").and_then(Json::as_str).is_some_and(|u| u != "sig") {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else { continue };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        let family = decoding.family();
        if family == AlgorithmFamily::Hmac {
            continue; // a symmetric key never verifies a token here
        }
        let key = Arc::new(Key { decoding, family });
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.unnamed.push(key),
        }
    }
    Ok(set)
}
