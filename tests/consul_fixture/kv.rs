//! The fixture's KV store: `GET/PUT/DELETE /v1/kv/<key>` with Consul's parameters, answers and
//! index rules (a key's `ModifyIndex`; a prefix's highest `ModifyIndex` or tombstone; else the
//! table index, never 0).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value as Json, json};

use super::query::Query;
use super::{FixtureState, Refusal, Shared, add_index_headers, blocking, json, refuse};

/// Consul refuses values larger than 512 KiB.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The keys, their deletions (tombstones) and the table index.
#[derive(Debug, Default)]
pub struct KvStore {
    entries: BTreeMap<String, Entry>,
    /// Deleted keys and the index of their deletion (so a prefix's index never goes back).
    tombstones: BTreeMap<String, u64>,
    /// Index of the last KV write.
    table_index: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

impl KvStore {
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.entries.range(prefix.to_owned()..).take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// The table index as a read reports it: never 0 ("index 1 is impossible anyway").
    fn table_index(&self) -> u64 {
        self.table_index.max(1)
    }

    /// Index of a prefix listing: its highest entry or tombstone, else the table index.
    fn prefix_index(&self, prefix: &str) -> u64 {
        if prefix.is_empty() {
            return self.table_index();
        }
        let entries = self.under(prefix).map(|(_, e)| e.modify_index).max().unwrap_or(0);
        let tombstones = self
            .tombstones
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0);
        match entries.max(tombstones) {
            0 => self.table_index(),
            index => index,
        }
    }

    fn read(&self, key: &str, recurse: bool) -> (u64, Vec<(String, Entry)>) {
        if recurse {
            let found = self.under(key).map(|(k, e)| (k.clone(), e.clone())).collect();
            return (self.prefix_index(key), found);
        }
        match self.entries.get(key) {
            Some(entry) => (entry.modify_index, vec![(key.to_owned(), entry.clone())]),
            None => (self.table_index(), Vec::new()),
        }
    }

    fn keys(&self, prefix: &str, separator: &str) -> (u64, Vec<String>) {
        let mut keys: Vec<String> = Vec::new();
        for (key, _) in self.under(prefix) {
            let after = &key[prefix.len()..];
            let listed = match after.find(separator).filter(|_| !separator.is_empty()) {
                Some(at) => format!("{prefix}{}", &after[..at + separator.len()]),
                None => key.clone(),
            };
            if keys.last() != Some(&listed) {
                keys.push(listed);
            }
        }
        (self.prefix_index(prefix), keys)
    }
}

fn entry_json(key: &str, entry: &Entry) -> Json {
    json!({
        "LockIndex": entry.lock_index,
        "Key": key,
        "Flags": entry.flags,
        "Value": if entry.value.is_empty() { Json::Null } else { Json::String(BASE64.encode(&entry.value)) },
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    })
}

/// `GET /v1/kv/<key>` (`recurse`, `keys`, `separator`, `raw`; blocking).
pub async fn get(shared: &Shared, key: &str, query: &Query) -> Response {
    if query.has("keys") {
        let separator = query.get("separator").unwrap_or("").to_owned();
        return match blocking(shared, query, |s: &FixtureState| s.kv.keys(key, &separator)).await {
            Err(refusal) => refuse(refusal),
            Ok((index, keys)) if keys.is_empty() => not_found(index),
            Ok((index, keys)) => json(StatusCode::OK, &json!(keys), Some(index)),
        };
    }
    let recurse = query.has("recurse");
    let (index, entries) = match blocking(shared, query, |s: &FixtureState| s.kv.read(key, recurse)).await {
        Ok(found) => found,
        Err(refusal) => return refuse(refusal),
    };
    let Some((_, first)) = entries.first() else { return not_found(index) };
    if query.has("raw") {
        let mut response = (StatusCode::OK, first.value.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        add_index_headers(headers, index);
        return response;
    }
    let body: Vec<Json> = entries.iter().map(|(k, e)| entry_json(k, e)).collect();
    json(StatusCode::OK, &Json::Array(body), Some(index))
}

fn not_found(index: u64) -> Response {
    let mut response = StatusCode::NOT_FOUND.into_response();
    add_index_headers(response.headers_mut(), index);
    response
}

/// Refusals shared by PUT and DELETE: no key name, bad numbers, sessions (none exist here).
fn write_params(key: &str, query: &Query, recurse: bool) -> Result<(Option<u64>, Option<u64>), Refusal> {
    if key.is_empty() && !recurse {
        return Err((StatusCode::BAD_REQUEST, "Missing key name".into()));
    }
    for op in ["acquire", "release"] {
        if let Some(session) = query.get(op) {
            return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("invalid session {session:?}")));
        }
    }
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    Ok((query.u64("cas").map_err(bad)?, query.u64("flags").map_err(bad)?))
}

/// `PUT /v1/kv/<key>` (`flags`, `cas`): `true` when written.
pub fn put(shared: &Shared, key: &str, query: &Query, value: Vec<u8>) -> Response {
    let (cas, flags) = match write_params(key, query, false) {
        Ok(params) => params,
        Err(refusal) => return refuse(refusal),
    };
    let mut state = shared.lock();
    let existing = state.kv.entries.get(key).map(|e| (e.create_index, e.modify_index, e.lock_index));
    let allowed = match (cas, existing) {
        (None, _) | (Some(0), None) => true,
        (Some(0), Some(_)) | (Some(_), None) => false,
        (Some(cas), Some((_, modify_index, _))) => cas == modify_index,
    };
    if !allowed {
        return json(StatusCode::OK, &Json::Bool(false), None);
    }
    let index = state.next_index();
    let (create_index, lock_index) = existing.map_or((index, 0), |(c, _, l)| (c, l));
    let entry = Entry { value, flags: flags.unwrap_or(0), create_index, modify_index: index, lock_index };
    state.kv.entries.insert(key.to_owned(), entry);
    state.kv.table_index = index;
    drop(state);
    shared.notify(index);
    json(StatusCode::OK, &Json::Bool(true), None)
}

/// `DELETE /v1/kv/<key>` (`recurse`, `cas`): `true` unless a check-and-set did not match.
pub fn delete(shared: &Shared, key: &str, query: &Query) -> Response {
    let recurse = query.has("recurse");
    let (cas, _) = match write_params(key, query, recurse) {
        Ok(params) => params,
        Err(refusal) => return refuse(refusal),
    };
    let mut state = shared.lock();
    let doomed: Vec<String> = if recurse {
        state.kv.under(key).map(|(k, _)| k.clone()).collect()
    } else {
        match (state.kv.entries.get(key), cas) {
            (None, _) => Vec::new(),
            (Some(entry), Some(cas)) if entry.modify_index != cas => {
                return json(StatusCode::OK, &Json::Bool(false), None);
            }
            (Some(_), _) => vec![key.to_owned()],
        }
    };
    let index = state.next_index();
    if !doomed.is_empty() {
        for gone in doomed {
            state.kv.entries.remove(&gone);
            state.kv.tombstones.insert(gone, index);
        }
        state.kv.table_index = index;
    }
    drop(state);
    shared.notify(index);
    json(StatusCode::OK, &Json::Bool(true), None)
}
