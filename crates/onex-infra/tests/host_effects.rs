//! Effects through the host: an effect that is not idempotent (`http.post`) records its final
//! reply, so the same envelope delivered again is answered from the record and the receiving
//! service sees one request; a retryable failure is not recorded, so a redelivery tries again;
//! the envelope id goes downstream in the header the contract names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use onex_core::envelope::Envelope;
use onex_infra::host::{RunningHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use serde_json::json;

/// What the receiving service saw: the `Idempotency-Key` of every request, and whether it is up.
#[derive(Default)]
struct Receiver {
    keys: Mutex<Vec<Option<String>>>,
    down: AtomicBool,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap) -> (StatusCode, &'static str) {
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned());
    receiver.keys.lock().unwrap().push(key);
    if receiver.down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else {
        (StatusCode::OK, "{\"ok\": true}")
    }
}

async fn receiver() -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let router = Router::new().route("/{*path}", any(receive)).with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), receiver)
}

const RUNTIME: &str = "runtime_name: effects-test\nhandlers:\n  http: {enabled: true}\n";
const NODE: &str = "name: test_http
contract_version: '1.0.0'
node_version: '1.0.0'
node_type: EFFECT
io_operations:
  - operation: http.post
    idempotency_header: Idempotency-Key
  - operation: http.get
";

async fn host(name: &str) -> RunningHost {
    let files = [("runtime.yaml", RUNTIME), ("http.yaml", NODE)];
    start(host_support::setup(name, &files, Registry::with_builtin_handlers().unwrap())).await.unwrap()
}

fn envelope(operation: &str, url: &str) -> Envelope {
    Envelope::request(new_uuid_v7(), operation, json!({"url": url, "body": {"n": 1}}), now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_effect_runs_once_per_envelope_and_carries_its_id_downstream() {
    let (base, receiver) = receiver().await;
    let running = host("recorded-effect").await;
    let host = running.host();

    let post = envelope("http.post", &format!("{base}/orders"));
    let first = host.handle(post.clone()).await;
    assert_eq!(first.success, Some(true), "{:?}", first.error);
    let again = host.handle(post.clone()).await;
    assert_eq!(again, first, "a redelivery is answered from the record");
    assert_eq!(
        *receiver.keys.lock().unwrap(),
        [Some(post.envelope_id.to_string())],
        "one request, keyed by the envelope"
    );

    // An idempotent effect keeps no record: it simply runs again.
    let get = envelope("http.get", &format!("{base}/orders"));
    host.handle(get.clone()).await;
    host.handle(get).await;
    assert_eq!(receiver.keys.lock().unwrap().len(), 3);
    assert_eq!(receiver.keys.lock().unwrap()[1], None, "only the operation that asks for it gets the header");
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_not_recorded_so_a_redelivery_tries_again() {
    let (base, receiver) = receiver().await;
    let running = host("unrecorded-failure").await;
    let host = running.host();
    receiver.down.store(true, Ordering::SeqCst);
    let post = envelope("http.post", &format!("{base}/orders"));
    let failed = host.handle(post.clone()).await;
    assert_eq!(failed.success, Some(false));
    assert!(failed.error.as_ref().unwrap().category.retryable(), "{:?}", failed.error);

    receiver.down.store(false, Ordering::SeqCst);
    let recovered = host.handle(post.clone()).await;
    assert_eq!(recovered.success, Some(true), "{:?}", recovered.error);
    let keys = receiver.keys.lock().unwrap().clone();
    assert!(keys.len() >= 2, "the redelivery reached the service again: {keys:?}");
    assert!(keys.iter().all(|k| k.as_deref() == Some(post.envelope_id.to_string().as_str())), "{keys:?}");
    running.shutdown(Duration::from_secs(5)).await;
}
