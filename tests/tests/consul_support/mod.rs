//! Helpers of the consul handler tests: building the handler, running operations, waiting for
//! the fixture's checks, a health endpoint whose status the test flips, and a raw HTTP client
//! for asserting the fixture's own answers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use onex_core::contract::SecretRef;
use onex_core::envelope::Envelope;
use onex_core::secret::Secret;
use onex_infra::handlers::consul::ConsulHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{Handler, HandlerInit, SecretStore, SpiResult, async_trait};
use serde_json::{Value, json};

/// The ACL token the ACL fixture wants; `${env:ONEX_TEST_CONSUL_TOKEN}` resolves to it.
pub const TEST_TOKEN: &str = "s3cr3t-acl-token";

/// Resolves `${env:ONEX_TEST_CONSUL_TOKEN}` without touching the process environment.
struct TestSecrets;

#[async_trait]
impl SecretStore for TestSecrets {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Env(name) if name == "ONEX_TEST_CONSUL_TOKEN" => Ok(Secret::new(TEST_TOKEN)),
            other => EnvSecretStore.resolve(other).await,
        }
    }
}

fn init(config: Value) -> HandlerInit {
    HandlerInit { config, secrets: Arc::new(TestSecrets), data_dir: std::env::temp_dir() }
}

/// A consul handler for `config` (`handlers.consul.config`).
pub fn consul_handler(config: Value) -> ConsulHandler {
    ConsulHandler::from_init(init(config)).unwrap()
}

/// A consul handler with a literal token.
pub fn consul_handler_with_token(address: &str, token: &str) -> ConsulHandler {
    consul_handler(json!({ "address": address, "token": token }))
}

/// A consul handler built by the factory `Registry::with_builtin_handlers` registers.
pub fn from_registry(config: Value) -> Arc<dyn Handler> {
    let registry = Registry::with_builtin_handlers().unwrap();
    registry.factory("consul").expect("the consul factory is registered").create(init(config)).unwrap()
}

/// Runs `operation` with `payload`; also returns the envelope ID.
pub async fn execute_envelope(handler: &dyn Handler, operation: &str, payload: Value) -> (String, SpiResult<Value>) {
    let envelope = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
    let result = handler.execute(&envelope).await;
    (envelope.envelope_id.to_string(), result)
}

/// Runs `operation` with `payload`.
pub async fn execute(handler: &dyn Handler, operation: &str, payload: Value) -> SpiResult<Value> {
    execute_envelope(handler, operation, payload).await.1
}

/// The `id`s of a `consul.discover` reply.
pub fn ids_of(instances: &Value) -> Vec<&str> {
    instances.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect()
}

/// Polls `probe` every 50 ms until it gives a value; fails after 10 s.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(10), what, probe).await
}

/// Polls `probe` every 50 ms until it gives a value; fails after `limit`.
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP endpoint answering every request with `status` (the test flips it); counts calls.
pub struct HealthEndpoint {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub calls: Arc<AtomicUsize>,
    pub paths: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct EndpointState {
    status: Arc<AtomicU16>,
    calls: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HealthEndpoint {
    pub async fn start(status: u16) -> Self {
        let state = EndpointState {
            status: Arc::new(AtomicU16::new(status)),
            calls: Arc::new(AtomicUsize::new(0)),
            paths: Arc::new(Mutex::new(Vec::new())),
        };
        let router = Router::new()
            .fallback(|State(state): State<EndpointState>, request: Request| async move {
                state.calls.fetch_add(1, Ordering::SeqCst);
                state.paths.lock().unwrap().push(request.uri().path().to_owned());
                StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
            })
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, status: state.status, calls: state.calls, paths: state.paths, server }
    }

    /// The URL a check should call.
    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

impl Drop for HealthEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One raw HTTP request to the fixture: status, headers and body as text.
pub async fn raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    driver.abort();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}
