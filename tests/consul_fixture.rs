//! A Consul-API-compatible HTTP server for tests. No Consul agent can be installed here, so the
//! consul handler is tested against this fixture, which follows Consul's documented HTTP API
//! (the api-docs pages `kv`, `features/blocking`, `agent/service`, `agent/check`, `health` and
//! `catalog`): same paths, parameters, JSON shapes, status codes and index semantics, for the
//! subset below. It is a test double of one dev-mode agent (node `onex-consul-fixture`,
//! datacenter `dc1`, address 127.0.0.1), not a cluster.
//!
//! Implemented:
//! - **KV** `GET/PUT/DELETE /v1/kv/<key>`. GET answers `[{"CreateIndex", "ModifyIndex",
//!   "LockIndex", "Key", "Flags", "Value" (base64, `null` when empty), "Session"?}]`, 404 on a
//!   missing key; `?recurse` (the key is a prefix), `?keys` (key names only, implies recurse;
//!   with `?separator`), `?raw` (the value's bytes as `text/plain`). PUT stores the body as
//!   is (at most 512 KiB, else 413), with `?flags` and `?cas=<index>` (0: only if the key does
//!   not exist; otherwise only if it equals the key's `ModifyIndex`) and answers `true`/`false`.
//!   DELETE takes `?recurse` and `?cas=<index>` (0 never deletes an existing key) and answers
//!   `true`/`false`. A missing key name on PUT/DELETE is a 400.
//! - **Blocking queries** on every read (KV, health, catalog): `?index=<n>&wait=<dur>` (Go
//!   durations, default 5m, capped at 10m, plus up to wait/16 of jitter) hang until the result's
//!   index exceeds `n` or the wait expires; `X-Consul-Index` is on every read, 404s included.
//!   Index rules follow Consul's KV endpoint: one key answers its `ModifyIndex`; a prefix the
//!   highest `ModifyIndex` or deletion (tombstone) under it; nothing found, the KV table index.
//! - **Agent services** `PUT /v1/agent/service/register`: `Name` (required), `ID` (defaults to
//!   `Name`), `Tags`, `Address`, `Port`, `Meta`, `Check`/`Checks` with `HTTP`, `Interval`
//!   (required), `Timeout` (default 10s), `DeregisterCriticalServiceAfter` (at least 1m; reaped
//!   every 30s), `Status` (initial status, default `critical`), `CheckID`, `Name`, `Notes`.
//!   Keys are matched case-insensitively and in snake_case, as the agent decodes them.
//!   Registering an existing ID replaces it. `PUT /v1/agent/service/deregister/<id>` removes the
//!   service and its checks (an unknown ID: no action, 200).
//! - **HTTP checks**, run by the fixture itself: first after a random stagger within the
//!   interval, then every interval; `GET` with the check's timeout; 2xx is `passing`, 429
//!   `warning`, anything else (or no answer in time) `critical`; `Output` says what happened.
//! - **Health** `GET /v1/health/service/<name>`: `[{"Node", "Service", "Checks"}]`, the node's
//!   `serfHealth` check included; `?passing` keeps only entries whose checks all pass; `?tag`
//!   (repeatable) keeps entries having every tag.
//! - **Catalog** `GET /v1/catalog/services` (`{"consul": [], "<name>": [tags…]}`) and
//!   `GET /v1/catalog/datacenters` (`["dc1"]`).
//! - **ACL**: [`ConsulFixture::start_with_acl_token`] makes every request need that token
//!   (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`): none is `403 Permission denied`,
//!   another is `403 ACL not found`.
//!
//! Not implemented: sessions (no session exists, so `?acquire`/`?release` fail as with an
//! unknown session), other datacenters, namespaces, `?filter`, consistency modes (accepted,
//! ignored), script/TCP/gRPC/TTL checks and `https://` check URLs (refused with a 400 naming the
//! fixture), `replace-existing-checks` (checks are always replaced), `SuccessBeforePassing` and
//! `FailuresBeforeCritical`.

mod agent;
mod health;
mod kv;
mod query;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use query::Query;
pub use query::{format_go_duration, parse_go_duration};

/// The fixture's node name (the `Node` of every health entry).
pub const NODE_NAME: &str = "onex-consul-fixture";
/// The fixture's node address; a service registered without `Address` is reached here.
pub const NODE_ADDRESS: &str = "127.0.0.1";
/// The fixture's datacenter.
pub const DATACENTER: &str = "dc1";
const NODE_ID: &str = "6f0c0a2e-6b1c-4c58-9f8e-0a1b2c3d4e5f";

/// A running fixture server; dropping it stops the server and every check it runs.
#[derive(Debug)]
pub struct ConsulFixture {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    reaper: JoinHandle<()>,
}

/// State shared by the server, the check runners and the reaper.
#[derive(Debug)]
struct Shared {
    state: Mutex<FixtureState>,
    /// The current raft index, sent after every write (wakes blocking queries).
    changes: watch::Sender<u64>,
    acl_token: Option<String>,
}

/// Everything the fixture stores, behind one lock (writes are atomic, as Consul's are).
#[derive(Debug)]
struct FixtureState {
    /// The raft index: bumped by every write.
    index: u64,
    kv: kv::KvStore,
    services: BTreeMap<String, agent::Service>,
    /// Index of the last change to services or checks (catalog and health reads).
    catalog_index: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FixtureState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells blocking queries that the state moved to `index`.
    fn notify(&self, index: u64) {
        self.changes.send_replace(index);
    }
}

impl FixtureState {
    /// The next raft index, for a write.
    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }
}

impl ConsulFixture {
    /// Starts a fixture on 127.0.0.1 with a free port; ACLs are off.
    pub async fn start() -> (SocketAddr, Self) {
        Self::start_inner(None).await
    }

    /// Starts a fixture whose every request must carry `token`.
    pub async fn start_with_acl_token(token: &str) -> (SocketAddr, Self) {
        Self::start_inner(Some(token.to_owned())).await
    }

    async fn start_inner(acl_token: Option<String>) -> (SocketAddr, Self) {
        // The node and the `consul` service were registered at bootstrap, below index 10.
        let state =
            FixtureState { index: 10, kv: kv::KvStore::default(), services: BTreeMap::new(), catalog_index: 10 };
        let (changes, _) = watch::channel(10);
        let shared = Arc::new(Shared { state: Mutex::new(state), changes, acl_token });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("consul fixture: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("consul fixture: no local address: {e}"));
        let router = Router::new().fallback(route).with_state(Arc::clone(&shared));
        let (shutdown, server) = crate::spawn_server(listener, router);
        let reaper = tokio::spawn(agent::reap_critical_services(Arc::clone(&shared)));
        (addr, Self { shared, shutdown: Some(shutdown), server, reaper })
    }

    /// The `http://127.0.0.1:<port>` base address of a fixture at `addr`.
    pub fn url(addr: SocketAddr) -> String {
        format!("http://{addr}")
    }
}

impl Drop for ConsulFixture {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.abort();
        self.reaper.abort();
        for service in self.shared.lock().services.values() {
            service.stop_checks();
        }
    }
}

/// Every request: ACL first, then the endpoint by path and method.
async fn route(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let query = Query::parse(request.uri().query());
    if let Err(denied) = authorize(&shared, request.headers(), &query) {
        return refuse(denied);
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        let key = query::decode_path(key);
        return match method {
            Method::GET => kv::get(&shared, &key, &query).await,
            Method::PUT => match read_body(request, kv::MAX_VALUE_BYTES).await {
                Ok(body) => kv::put(&shared, &key, &query, body),
                Err(refusal) => refuse(refusal),
            },
            Method::DELETE => kv::delete(&shared, &key, &query),
            _ => method_not_allowed(),
        };
    }
    if path == "/v1/agent/service/register" {
        if method != Method::PUT {
            return method_not_allowed();
        }
        return match read_body(request, 1 << 20).await {
            Ok(body) => agent::register(&shared, &body),
            Err(refusal) => refuse(refusal),
        };
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        if method != Method::PUT {
            return method_not_allowed();
        }
        return agent::deregister(&shared, &query::decode_path(id));
    }
    if method != Method::GET {
        return method_not_allowed();
    }
    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        return health::service(&shared, &query::decode_path(name), &query).await;
    }
    match path.as_str() {
        "/v1/catalog/services" => health::catalog_services(&shared, &query).await,
        "/v1/catalog/datacenters" => json(StatusCode::OK, &serde_json::json!([DATACENTER]), None),
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// The ACL check of every request when the fixture was started with a token.
fn authorize(shared: &Shared, headers: &HeaderMap, query: &Query) -> Result<(), Refusal> {
    let Some(expected) = shared.acl_token.as_deref() else { return Ok(()) };
    let header_value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let given = header_value("x-consul-token")
        .or_else(|| header_value("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .or_else(|| query.get("token"));
    match given {
        Some(token) if token == expected => Ok(()),
        Some(_) => Err((StatusCode::FORBIDDEN, "ACL not found".into())),
        None => Err((StatusCode::FORBIDDEN, "Permission denied".into())),
    }
}

async fn read_body(request: Request, limit: usize) -> Result<Vec<u8>, Refusal> {
    match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(_) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body too large, max size: {limit} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size."
            ),
        )),
    }
}

/// A JSON answer; reads carry `X-Consul-Index` (and the leader headers Consul sends with it).
fn json(status: StatusCode, body: &Json, index: Option<u64>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(index) = index {
        add_index_headers(headers, index);
    }
    response
}

fn add_index_headers(headers: &mut HeaderMap, index: u64) {
    headers.insert("x-consul-index", HeaderValue::from(index));
    headers.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    headers.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
}

/// A plain-text answer (Consul's error bodies are plain text).
fn text(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Body::from(message.to_owned())).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A refusal: a status and Consul's plain-text message (turned into a response by [`refuse`]).
type Refusal = (StatusCode, String);

fn refuse((status, message): Refusal) -> Response {
    text(status, &message)
}

fn method_not_allowed() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Runs `compute` (the read: result and its index) as a blocking query: when the request has
/// `index` > 0, waits until the result's index exceeds it or `wait` (+ jitter) expires.
async fn blocking<T>(
    shared: &Shared,
    query: &Query,
    compute: impl Fn(&FixtureState) -> (u64, T),
) -> Result<(u64, T), Refusal> {
    let options = query.blocking().map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let mut changes = shared.changes.subscribe();
    let first = compute(&shared.lock());
    let Some((min_index, wait)) = options else { return Ok(first) };
    if first.0 > min_index {
        return Ok(first);
    }
    let deadline = tokio::time::Instant::now() + wait + jitter(wait / 16);
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
        let now = compute(&shared.lock());
        if now.0 > min_index {
            return Ok(now);
        }
    }
    Ok(compute(&shared.lock()))
}

/// A pseudo-random duration in `[0, max)` (spreads wake-ups and check starts, as Consul does).
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let max_nanos = max.as_nanos();
    if max_nanos == 0 {
        return Duration::ZERO;
    }
    let spread = (u128::from(nanos).wrapping_mul(2_654_435_761)) % max_nanos;
    Duration::from_nanos(u64::try_from(spread).unwrap_or(0))
}
