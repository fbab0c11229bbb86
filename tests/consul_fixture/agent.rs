//! The fixture's agent: `PUT /v1/agent/service/register` and `/deregister/<id>`, the HTTP
//! checks it runs at their interval, and the reaper of services critical for longer than their
//! `DeregisterCriticalServiceAfter`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value as Json};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use super::query::parse_go_duration;
use super::{Shared, jitter, text};

/// A check's `Timeout` when none is given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest `DeregisterCriticalServiceAfter` Consul honours.
const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// How often Consul's reaper looks for services to deregister.
const REAP_EVERY: Duration = Duration::from_secs(30);
/// Consul keeps at most this much of a check's output (`OutputMaxSize`'s default).
const OUTPUT_MAX: usize = 4096;

/// A registered service instance.
#[derive(Debug)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u64,
    pub meta: Map<String, Json>,
    pub create_index: u64,
    pub modify_index: u64,
    pub checks: Vec<Check>,
}

/// One HTTP check of a service, with its current status.
#[derive(Debug)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub notes: String,
    pub status: &'static str,
    pub output: String,
    pub http: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub deregister_after: Option<Duration>,
    critical_since: Option<Instant>,
    pub create_index: u64,
    pub modify_index: u64,
    runner: Option<AbortHandle>,
}

impl Service {
    /// Stops the runners of every check (deregistration, replacement, fixture drop).
    pub fn stop_checks(&self) {
        for runner in self.checks.iter().filter_map(|c| c.runner.as_ref()) {
            runner.abort();
        }
    }
}

/// A field of an agent request body, matched the way the agent decodes: case-insensitively and
/// with snake_case accepted (`deregister_critical_service_after`); `null` counts as absent.
fn field<'a>(object: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    object.iter().find(|(k, _)| k.replace('_', "").eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null())
}

fn string(object: &Map<String, Json>, name: &str) -> Result<String, String> {
    match field(object, name) {
        None => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("Request decode failed: {name}: expected a string, got {other}")),
    }
}

/// A duration field: a Go duration string, or a number of nanoseconds.
fn duration(object: &Map<String, Json>, name: &str) -> Result<Option<Duration>, String> {
    match field(object, name) {
        None => Ok(None),
        Some(Json::String(s)) if s.is_empty() => Ok(None),
        Some(Json::String(s)) => {
            parse_go_duration(s).map(Some).map_err(|e| format!("Request decode failed: {name}: {e}"))
        }
        Some(Json::Number(n)) => Ok(n.as_u64().map(Duration::from_nanos)),
        Some(other) => Err(format!("Request decode failed: {name}: expected a duration, got {other}")),
    }
}

fn bad_request(message: String) -> Response {
    text(StatusCode::BAD_REQUEST, &message)
}

/// Decodes one check definition of service `name`.
fn decode_check(value: &Json, default_id: String, service_name: &str) -> Result<Check, String> {
    let Json::Object(object) = value else { return Err("Request decode failed: Check: expected an object".into()) };
    let http = string(object, "HTTP")?;
    let other_kind = ["Args", "ScriptArgs", "TCP", "UDP", "TTL", "GRPC", "H2PING", "DockerContainerID", "AliasService"]
        .into_iter()
        .find(|k| field(object, k).is_some());
    if http.is_empty() {
        return Err(match other_kind {
            Some(kind) => format!("Invalid check: the Consul fixture runs HTTP checks only (got {kind})"),
            None => "Invalid check: TTL must be > 0 for TTL checks".into(),
        });
    }
    if !http.starts_with("http://") {
        return Err(format!("Invalid check: the Consul fixture runs plain http:// checks only (got {http:?})"));
    }
    let interval = duration(object, "Interval")?.filter(|d| !d.is_zero()).ok_or_else(|| {
        "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or gRPC checks".to_owned()
    })?;
    let status = match string(object, "Status")?.as_str() {
        "" | "critical" => "critical",
        "passing" => "passing",
        "warning" => "warning",
        other => return Err(format!("Invalid check status: {other:?}")),
    };
    let id = Some(string(object, "CheckID")?).filter(|s| !s.is_empty()).or(Some(string(object, "ID")?));
    let name = Some(string(object, "Name")?).filter(|s| !s.is_empty());
    Ok(Check {
        id: id.filter(|s| !s.is_empty()).unwrap_or(default_id),
        name: name.unwrap_or_else(|| format!("Service '{service_name}' check")),
        notes: string(object, "Notes")?,
        status,
        output: String::new(),
        http,
        interval,
        timeout: duration(object, "Timeout")?.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_TIMEOUT),
        deregister_after: duration(object, "DeregisterCriticalServiceAfter")?
            .filter(|d| !d.is_zero())
            .map(|d| d.max(MIN_DEREGISTER_AFTER)),
        critical_since: (status == "critical").then(Instant::now),
        create_index: 0,
        modify_index: 0,
        runner: None,
    })
}

/// Decodes a service definition (without indexes).
fn decode_service(body: &[u8]) -> Result<Service, String> {
    let value: Json = serde_json::from_slice(body).map_err(|e| format!("Request decode failed: {e}"))?;
    let Json::Object(object) = value else { return Err("Request decode failed: expected a JSON object".into()) };
    let name = string(&object, "Name")?;
    if name.is_empty() {
        return Err("Missing service name".into());
    }
    let id = Some(string(&object, "ID")?).filter(|s| !s.is_empty()).unwrap_or_else(|| name.clone());
    let tags = match field(&object, "Tags") {
        None => Vec::new(),
        Some(Json::Array(tags)) => tags
            .iter()
            .map(|t| {
                t.as_str().map(str::to_owned).ok_or_else(|| format!("Request decode failed: Tags: {t} is not a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("Request decode failed: Tags: expected an array, got {other}")),
    };
    let port = match field(&object, "Port") {
        None => 0,
        Some(p) => p.as_u64().filter(|p| *p <= 65_535).ok_or_else(|| format!("Request decode failed: Port: {p}"))?,
    };
    let meta = match field(&object, "Meta") {
        None => Map::new(),
        Some(Json::Object(meta)) if meta.values().all(Json::is_string) => meta.clone(),
        Some(other) => return Err(format!("Request decode failed: Meta: expected strings by key, got {other}")),
    };
    let mut definitions: Vec<&Json> = field(&object, "Check").into_iter().collect();
    match field(&object, "Checks") {
        None => {}
        Some(Json::Array(checks)) => definitions.extend(checks),
        Some(other) => return Err(format!("Request decode failed: Checks: expected an array, got {other}")),
    }
    let many = definitions.len() > 1;
    let checks = definitions
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let default_id = if many { format!("service:{id}:{}", i + 1) } else { format!("service:{id}") };
            decode_check(c, default_id, &name)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let address = string(&object, "Address")?;
    Ok(Service { id, name, tags, address, port, meta, create_index: 0, modify_index: 0, checks })
}

/// `PUT /v1/agent/service/register`.
pub fn register(shared: &Arc<Shared>, body: &[u8]) -> Response {
    let mut service = match decode_service(body) {
        Ok(service) => service,
        Err(message) => return bad_request(message),
    };
    let mut state = shared.lock();
    let index = state.next_index();
    let previous = state.services.remove(&service.id);
    if let Some(previous) = &previous {
        previous.stop_checks();
    }
    service.create_index = previous.map_or(index, |p| p.create_index);
    service.modify_index = index;
    for check in &mut service.checks {
        check.create_index = index;
        check.modify_index = index;
        let runner = tokio::spawn(run_check(
            Arc::clone(shared),
            service.id.clone(),
            check.id.clone(),
            index,
            check.http.clone(),
            check.interval,
            check.timeout,
        ));
        check.runner = Some(runner.abort_handle());
    }
    state.services.insert(service.id.clone(), service);
    state.catalog_index = index;
    drop(state);
    shared.notify(index);
    StatusCode::OK.into_response()
}

/// `PUT /v1/agent/service/deregister/<id>`: removes the service and its checks; an unknown ID
/// is no action.
pub fn deregister(shared: &Shared, id: &str) -> Response {
    let mut state = shared.lock();
    if let Some(service) = state.services.remove(id) {
        service.stop_checks();
        let index = state.next_index();
        state.catalog_index = index;
        drop(state);
        shared.notify(index);
    }
    StatusCode::OK.into_response()
}

/// Runs one HTTP check after a random stagger within its interval, then every interval,
/// recording status changes (each one a catalog write with a new index).
async fn run_check(
    shared: Arc<Shared>,
    service_id: String,
    check_id: String,
    generation: u64,
    url: String,
    interval: Duration,
    timeout: Duration,
) {
    tokio::time::sleep(jitter(interval)).await;
    loop {
        let (status, output) = http_check(&url, timeout).await;
        if !record(&shared, &service_id, &check_id, generation, status, output) {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Records one result of a check; a status change is a catalog write (new index, blocking
/// queries woken). `false` when the check is gone (deregistered or replaced).
fn record(
    shared: &Shared,
    service_id: &str,
    check_id: &str,
    generation: u64,
    status: &'static str,
    output: String,
) -> bool {
    let mut state = shared.lock();
    let state = &mut *state;
    let Some(check) = state
        .services
        .get_mut(service_id)
        .and_then(|s| s.checks.iter_mut().find(|c| c.id == check_id && c.create_index == generation))
    else {
        return false;
    };
    check.output = output;
    if check.status == status {
        return true;
    }
    check.status = status;
    check.critical_since = (status == "critical").then(Instant::now);
    state.index += 1;
    check.modify_index = state.index;
    state.catalog_index = state.index;
    shared.notify(state.index);
    true
}

/// One HTTP check: 2xx passing, 429 warning, anything else (or no answer in time) critical.
async fn http_check(url: &str, timeout: Duration) -> (&'static str, String) {
    match tokio::time::timeout(timeout, http_get(url)).await {
        Err(_) => (
            "critical",
            format!("Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
        ),
        Ok(Err(e)) => ("critical", format!("Get {url:?}: {e}")),
        Ok(Ok((code, reason, body))) => {
            let status = match code {
                200..=299 => "passing",
                429 => "warning",
                _ => "critical",
            };
            (status, format!("HTTP GET {url}: {code} {reason} Output: {body}"))
        }
    }
}

/// Aborts the connection task when the check is done (or timed out).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn http_get(url: &str) -> Result<(u16, &'static str, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, authority.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| format!("dial tcp {authority}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(HOST, authority.as_str())
        .header(USER_AGENT, "Consul Health Check")
        .header(ACCEPT, "text/plain, text/*, */*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = response.into_body();
    let mut output = Vec::new();
    while output.len() < OUTPUT_MAX {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    output.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    output.truncate(OUTPUT_MAX);
    Ok((status.as_u16(), status.canonical_reason().unwrap_or(""), String::from_utf8_lossy(&output).into_owned()))
}

/// Every 30 s, deregisters services with a check critical for longer than its
/// `DeregisterCriticalServiceAfter`.
pub async fn reap_critical_services(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let mut state = shared.lock();
        let doomed: Vec<String> = state
            .services
            .values()
            .filter(|s| {
                s.checks.iter().any(|c| match (c.deregister_after, c.critical_since) {
                    (Some(after), Some(since)) => since.elapsed() > after,
                    _ => false,
                })
            })
            .map(|s| s.id.clone())
            .collect();
        if doomed.is_empty() {
            continue;
        }
        for id in doomed {
            if let Some(service) = state.services.remove(&id) {
                service.stop_checks();
            }
        }
        let index = state.next_index();
        state.catalog_index = index;
        drop(state);
        shared.notify(index);
    }
}
