//! FIXTURE, NOT VAULT: RustyVault serves KV v1 only and has no `renew-self`, so the KV v2
//! request shapes and token renewal are tested against this small axum server, written from
//! Vault's documented HTTP API (api-docs/secret/kv/kv-v2: `/v1/<mount>/data/<path>` GET/POST
//! with the `{"data": …, "options": {"cas": n}}` body and `{data, metadata}` replies,
//! `/v1/<mount>/metadata/<path>` LIST/DELETE; api-docs/auth/token: `lookup-self`,
//! `renew-self`). It records every request so the tests can check what the handler sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use onex_spi::{Handler, Health};
use serde_json::{Value as Json, json};

use crate::support::{call, handler, unique};

/// One request the fixture received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Json,
}

struct Fixture {
    token: String,
    ttl_s: u64,
    /// `mount/path` → the data of each version (`None` once deleted).
    secrets: Mutex<BTreeMap<String, Vec<Json>>>,
    seen: Mutex<Vec<Seen>>,
    renewals: AtomicU32,
}

impl Fixture {
    fn seen(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.method == method && s.path == path).cloned().collect()
    }
}

/// Starts the fixture; returns its address.
async fn serve(token: &str, ttl_s: u64) -> (String, Arc<Fixture>) {
    let fixture = Arc::new(Fixture {
        token: token.to_owned(),
        ttl_s,
        secrets: Mutex::default(),
        seen: Mutex::default(),
        renewals: AtomicU32::new(0),
    });
    let app = axum::Router::new().fallback(handle).with_state(Arc::clone(&fixture));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fixture)
}

fn reply(status: u16, body: Json) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Vault's response envelope around `data` (and `auth`).
fn envelope(data: Json, auth: Json) -> Json {
    json!({"request_id": "fixture", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": auth})
}

fn metadata(version: usize) -> Json {
    json!({"created_time": "2024-01-01T00:00:00Z", "custom_metadata": null, "deletion_time": "",
        "destroyed": false, "version": version})
}

async fn handle(State(f): State<Arc<Fixture>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    f.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    if path == "/v1/sys/seal-status" {
        return reply(
            200,
            json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1, "progress": 0}),
        );
    }
    if headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some(f.token.as_str()) {
        return reply(403, json!({"errors": ["permission denied"]}));
    }
    let rest = path.trim_start_matches("/v1/");
    match (method.as_str(), rest) {
        ("GET", "auth/token/lookup-self") => reply(
            200,
            envelope(
                json!({"id": f.token, "accessor": "acc", "ttl": f.ttl_s, "creation_ttl": f.ttl_s,
                    "renewable": true, "policies": ["default"], "expire_time": "2030-01-01T00:00:00Z"}),
                Json::Null,
            ),
        ),
        ("POST", "auth/token/renew-self") => {
            f.renewals.fetch_add(1, Ordering::SeqCst);
            let lease = body["increment"].as_u64().unwrap_or(f.ttl_s);
            reply(
                200,
                envelope(
                    Json::Null,
                    json!({"client_token": f.token, "accessor": "acc", "policies": ["default"],
                        "token_policies": ["default"], "metadata": null, "lease_duration": lease,
                        "renewable": true, "entity_id": "", "token_type": "service", "orphan": false}),
                ),
            )
        }
        _ => kv2(&f, method.as_str(), rest, &query, body),
    }
}

fn kv2(f: &Fixture, method: &str, rest: &str, query: &str, body: Json) -> Response {
    let not_found = || reply(404, json!({"errors": []}));
    let unsupported = || reply(404, json!({"errors": ["1 error occurred:\n\t* unsupported path\n\n"]}));
    let Some((mount, rest)) = rest.split_once('/') else { return unsupported() };
    let Some((kind, path)) = rest.split_once('/') else { return unsupported() };
    let key = format!("{mount}/{path}");
    let mut secrets = f.secrets.lock().unwrap();
    match (method, kind) {
        ("GET", "data") => {
            let Some(versions) = secrets.get(&key) else { return not_found() };
            let wanted = query.strip_prefix("version=").and_then(|v| v.parse::<usize>().ok()).unwrap_or(versions.len());
            match versions.get(wanted.wrapping_sub(1)) {
                Some(data) => reply(200, envelope(json!({"data": data, "metadata": metadata(wanted)}), Json::Null)),
                None => not_found(),
            }
        }
        ("POST" | "PUT", "data") => {
            let fields: Vec<&String> = body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            if !body["data"].is_object() || fields.iter().any(|k| !matches!(k.as_str(), "data" | "options")) {
                return reply(400, json!({"errors": ["no data provided"]}));
            }
            let versions = secrets.entry(key).or_default();
            let cas = body["options"].get("cas");
            if cas.is_some_and(|cas| cas.as_u64() != Some(versions.len() as u64)) {
                return reply(400, json!({"errors": ["check-and-set parameter did not match the current version"]}));
            }
            versions.push(body["data"].clone());
            reply(200, envelope(metadata(versions.len()), Json::Null))
        }
        ("LIST", "metadata") | ("GET", "metadata") if method == "LIST" || query == "list=true" => {
            let prefix = if path.is_empty() { String::new() } else { format!("{}/", path.trim_end_matches('/')) };
            let mut keys: Vec<String> = secrets
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("{mount}/{prefix}")))
                .map(|sub| match sub.split_once('/') {
                    Some((folder, _)) => format!("{folder}/"),
                    None => sub.to_owned(),
                })
                .collect();
            keys.dedup();
            if keys.is_empty() { not_found() } else { reply(200, envelope(json!({"keys": keys}), Json::Null)) }
        }
        ("DELETE", "metadata") => {
            secrets.remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => unsupported(),
    }
}

#[tokio::test]
async fn kv_v2_requests_follow_vaults_documented_shapes() {
    let token = unique("fixture-token");
    let (addr, fixture) = serve(&token, 3600).await;
    // `kv` is not listed under `mounts`, so it is KV v2, Vault's default.
    let h = handler(&addr, &token, json!({})).await;
    let at = json!({"mount": "kv", "path": "app/db"});
    let write = |data: Json, cas: Option<u32>| {
        let mut payload = json!({"mount": "kv", "path": "app/db", "data": data});
        if let Some(cas) = cas {
            payload["cas"] = json!(cas);
        }
        call(&h, "vault.write_secret", payload)
    };

    let first = write(json!({"password": "p1"}), None).await.unwrap();
    assert_eq!(first["metadata"]["version"], json!(1), "{first}");
    let sent = fixture.seen("POST", "/v1/kv/data/app/db");
    assert_eq!(sent[0].body, json!({"data": {"password": "p1"}}), "the data is wrapped in `data`");
    let second = write(json!({"password": "p2", "n": 2}), Some(1)).await.unwrap();
    assert_eq!(second["metadata"]["version"], json!(2));
    assert_eq!(
        fixture.seen("POST", "/v1/kv/data/app/db")[1].body,
        json!({"data": {"password": "p2", "n": 2}, "options": {"cas": 1}})
    );
    let e = write(json!({"password": "p3"}), Some(1)).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::VAULT_CAS_CONFLICT.as_str(), ErrorCategory::Conflict), "{e}");
    assert!(!e.message().contains("p3"), "{e}");

    let latest = call(&h, "vault.read_secret", at.clone()).await.unwrap();
    assert_eq!(latest["data"], json!({"password": "p2", "n": 2}));
    assert_eq!(latest["metadata"]["version"], json!(2));
    let mut old = at.clone();
    old["version"] = json!(1);
    let v1 = call(&h, "vault.read_secret", old).await.unwrap();
    assert_eq!((&v1["data"], &v1["metadata"]["version"]), (&json!({"password": "p1"}), &json!(1)));
    assert_eq!(fixture.seen("GET", "/v1/kv/data/app/db").last().unwrap().query, "version=1");

    write(json!({"x": "y"}), None).await.unwrap();
    call(&h, "vault.write_secret", json!({"mount": "kv", "path": "app/cache/redis", "data": {"url": "u"}}))
        .await
        .unwrap();
    let listed = call(&h, "vault.list_secrets", json!({"mount": "kv", "path": "app"})).await.unwrap();
    assert_eq!(listed, json!({"keys": ["cache/", "db"]}));
    assert_eq!(fixture.seen("LIST", "/v1/kv/metadata/app").len(), 1, "listing uses LIST on metadata/");

    assert_eq!(call(&h, "vault.delete_secret", at.clone()).await.unwrap(), json!({"deleted": true}));
    assert_eq!(fixture.seen("DELETE", "/v1/kv/metadata/app/db").len(), 1, "delete removes every version");
    let e = call(&h, "vault.read_secret", at).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    assert_eq!(h.health().await, Health::Healthy);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn renew_token_renews_an_expiring_token_by_its_ttl_or_the_increment() {
    let token = unique("fixture-token");
    let (addr, fixture) = serve(&token, 3600).await;
    // A long `renew_before_ms` would not matter: the background task waits ~3540 s first.
    let h = handler(&addr, &token, json!({})).await;
    let reply = call(&h, "vault.renew_token", json!({})).await.unwrap();
    assert_eq!(reply, json!({"renewed": true, "expires": true, "ttl_s": 3600, "renewable": true}));
    let reply = call(&h, "vault.renew_token", json!({"increment_s": 60})).await.unwrap();
    assert_eq!(reply["ttl_s"], json!(60));
    let bodies: Vec<Json> = fixture.seen("POST", "/v1/auth/token/renew-self").into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, [json!({"increment": 3600}), json!({"increment": 60})]);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_background_task_renews_before_the_ttl_ends_and_stops_on_shutdown() {
    let token = unique("fixture-token");
    let (addr, fixture) = serve(&token, 2).await;
    // TTL 2 s, renewed 1.5 s before its end: every 0.5 s.
    let h = handler(&addr, &token, json!({"renew_before_ms": 1500})).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let renewed = fixture.renewals.load(Ordering::SeqCst);
    assert!(renewed >= 2, "renewed {renewed} times in 1.3 s");
    assert!(!fixture.seen("GET", "/v1/auth/token/lookup-self").is_empty(), "the TTL was looked up first");
    assert!(fixture.seen("POST", "/v1/auth/token/renew-self").iter().all(|s| s.body == json!({"increment": 2})));
    h.shutdown().await.unwrap();
    let stopped_at = fixture.renewals.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(fixture.renewals.load(Ordering::SeqCst), stopped_at, "no renewal after shutdown");
}
