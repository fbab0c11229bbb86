//! The `webhook` handler against a real receiver (axum, in process on 127.0.0.1:0) that checks
//! signatures with `verify_signature`: signing, retries (5xx, 429, connection failures only),
//! `Retry-After`, and the attempts recorded in the delivery store (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use onex_core::contract::SecretRef;
use onex_core::envelope::Envelope;
use onex_core::error::ErrorCategory;
use onex_core::secret::Secret;
use onex_infra::error::codes;
use onex_infra::handlers::WebhookHandlerFactory;
use onex_infra::handlers::webhook::{SignatureError, verify_signature};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::stores::webhook_postgres::PostgresDeliveryStore;
use onex_infra::stores::webhook_sqlite::SqliteDeliveryStore;
use onex_spi::{
    DeliveryAttempt, DeliveryStatus, DeliveryStore, Handler, HandlerFactory, HandlerInit, SecretStore, SpiError,
    SpiResult, async_trait,
};
use serde_json::{Value, json};

#[path = "common/logs.rs"]
mod logs;
use logs::LogCapture;

const SECRET: &str = "whsec-test-0123456789abcdef";

/// Resolves `${env:ONEX_WEBHOOK_SECRET}` to [`SECRET`] (the process environment is shared by
/// every test thread, so it is not touched).
struct TestSecrets;

#[async_trait]
impl SecretStore for TestSecrets {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Env(name) if name == "ONEX_WEBHOOK_SECRET" => Ok(Secret::new(SECRET)),
            other => panic!("unexpected secret reference {other:?}"),
        }
    }
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// A receiver that verifies signatures (401 if refused) and otherwise answers its script.
#[derive(Default)]
struct Receiver {
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    seen: Mutex<Vec<Seen>>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    receiver.seen.lock().unwrap().push(Seen { headers: headers.clone(), body: body.clone(), at: Instant::now() });
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let verified =
        verify_signature(SECRET.as_bytes(), &header("x-onex-timestamp"), &header("x-onex-signature"), &body, now, 300);
    if verified.is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (status, retry_after) = receiver.script.lock().unwrap().pop_front().unwrap_or((200, None));
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(after) => (status, [("retry-after", after)]).into_response(),
        None => status.into_response(),
    }
}

async fn receiver(script: &[(u16, Option<&'static str>)]) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver { script: Mutex::new(script.iter().copied().collect()), ..Receiver::default() });
    let router = Router::new().route("/hook", post(receive)).with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/hook"), receiver)
}

fn db_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("onex-webhook-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

async fn handler(db: &std::path::Path, overrides: Value) -> Arc<dyn Handler> {
    let mut config = json!({
        "signing_secret": "${env:ONEX_WEBHOOK_SECRET}",
        "sqlite_path": db,
        "max_attempts": 4,
        "base_delay_ms": 10,
        "max_delay_ms": 2000,
        "timeout_ms": 2000,
    });
    config.as_object_mut().unwrap().extend(overrides.as_object().unwrap().clone());
    let init = HandlerInit { config, secrets: Arc::new(TestSecrets), data_dir: std::env::temp_dir() };
    let h = WebhookHandlerFactory.create(init).unwrap();
    h.initialize().await.unwrap();
    h
}

async fn deliver(h: &Arc<dyn Handler>, payload: Value) -> Result<Value, SpiError> {
    h.execute(&Envelope::request(new_uuid_v7(), "webhook.deliver", payload, now_utc())).await
}

/// `(attempt, status, has error)` of every recorded attempt, and the final status.
async fn recorded(store: &dyn DeliveryStore, id: &str) -> (Vec<(u32, Option<u16>, bool)>, DeliveryStatus) {
    let record = store.delivery(id).await.unwrap().expect("the delivery is recorded");
    let attempts = record.attempts.iter().map(|a: &DeliveryAttempt| (a.attempt, a.status, a.error.is_some())).collect();
    (attempts, record.status)
}

#[tokio::test]
async fn the_receiver_verifies_the_signature_and_refuses_tampering_and_replays() {
    let (url, receiver) = receiver(&[]).await;
    let h = handler(&db_path("verify"), json!({})).await;
    let body = json!({"order": 42, "items": ["a", "b"]});
    let reply =
        deliver(&h, json!({"url": url, "event": "order.created", "body": body, "delivery_id": "dlv-1"})).await.unwrap();
    assert_eq!(reply, json!({"delivery_id": "dlv-1", "status": "delivered", "attempts": 1, "http_status": 200}));

    let seen = receiver.seen.lock().unwrap()[0].clone();
    let header = |name: &str| seen.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!((header("x-onex-delivery"), header("x-onex-event")), ("dlv-1".into(), "order.created".into()));
    assert!(seen.headers.get("traceparent").is_none(), "an envelope without a trace sends none");
    assert_eq!(serde_json::from_slice::<Value>(&seen.body).unwrap(), body);
    let (timestamp, signature) = (header("x-onex-timestamp"), header("x-onex-signature"));
    assert!(signature.starts_with("sha256="));
    let ts: u64 = timestamp.parse().unwrap();
    let secret = SECRET.as_bytes();
    assert_eq!(verify_signature(secret, &timestamp, &signature, &seen.body, ts + 5, 300), Ok(()));
    let mut tampered = seen.body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(verify_signature(secret, &timestamp, &signature, &tampered, ts, 300), Err(SignatureError::Mismatch));
    let replay = verify_signature(secret, &timestamp, &signature, &seen.body, ts + 301, 300);
    assert!(matches!(replay, Err(SignatureError::OutsideTolerance { .. })), "{replay:?}");
    let forged_time = (ts + 1).to_string();
    assert_eq!(verify_signature(secret, &forged_time, &signature, &seen.body, ts, 300), Err(SignatureError::Mismatch));
    assert_eq!(verify_signature(secret, "", &signature, &seen.body, ts, 300), Err(SignatureError::MalformedTimestamp));
    assert_eq!(
        verify_signature(secret, &timestamp, "deadbeef", &seen.body, ts, 300),
        Err(SignatureError::MalformedSignature)
    );
}

#[tokio::test]
async fn the_envelopes_trace_goes_out_as_traceparent() {
    let (url, receiver) = receiver(&[]).await;
    let h = handler(&db_path("traceparent"), json!({})).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let payload = json!({"url": url, "body": {"n": 1}, "delivery_id": "dlv-trace"});
    let mut request = Envelope::request(new_uuid_v7(), "webhook.deliver", payload, now_utc());
    request.metadata.traceparent = Some(traceparent.to_owned());
    h.execute(&request).await.unwrap();
    let seen = receiver.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.headers["traceparent"], traceparent);
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered_and_every_attempt_is_recorded() {
    let (url, receiver) = receiver(&[(503, None), (503, None)]).await;
    let db = db_path("retry");
    let h = handler(&db, json!({})).await;
    let reply = deliver(&h, json!({"url": url, "body": {"n": 1}, "delivery_id": "dlv-retry"})).await.unwrap();
    assert_eq!((reply["status"].as_str(), reply["attempts"].as_u64()), (Some("delivered"), Some(3)));
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.headers["x-onex-delivery"] == "dlv-retry"), "one delivery id for every attempt");

    let store = SqliteDeliveryStore::open(&db).await.unwrap();
    let (attempts, status) = recorded(&store, "dlv-retry").await;
    assert_eq!(attempts, [(1, Some(503), false), (2, Some(503), false), (3, Some(200), false)]);
    assert_eq!(status, DeliveryStatus::Delivered);
    let record = store.delivery("dlv-retry").await.unwrap().unwrap();
    assert_eq!(record.url, url);
    assert!(record.attempts.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_is_recorded_as_failed() {
    let (url, receiver) = receiver(&[(400, None)]).await;
    let db = db_path("client-error");
    let h = handler(&db, json!({})).await;
    let e = deliver(&h, json!({"url": url, "body": {}, "delivery_id": "dlv-400"})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::HTTP_CLIENT_ERROR.as_str(), ErrorCategory::Validation), "{e}");
    assert!(e.message().contains("dlv-400") && e.message().contains("1 attempt") && e.message().contains("400"), "{e}");
    assert_eq!(receiver.seen.lock().unwrap().len(), 1);
    let store = SqliteDeliveryStore::open(&db).await.unwrap();
    assert_eq!(recorded(&store, "dlv-400").await, (vec![(1, Some(400), false)], DeliveryStatus::Failed));

    // The same delivery id again continues the record.
    deliver(&h, json!({"url": url, "body": {}, "delivery_id": "dlv-400"})).await.unwrap();
    let (attempts, status) = recorded(&store, "dlv-400").await;
    assert_eq!((attempts, status), (vec![(1, Some(400), false), (2, Some(200), false)], DeliveryStatus::Delivered));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    for (status, after) in [(503, "1"), (429, "1")] {
        let (url, receiver) = receiver(&[(status, Some(after))]).await;
        let h = handler(&db_path(&format!("retry-after-{status}")), json!({})).await;
        deliver(&h, json!({"url": url, "body": {}})).await.unwrap();
        let seen = receiver.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        let waited = seen[1].at - seen[0].at;
        assert!(waited >= Duration::from_millis(980), "{status}: waited only {waited:?} (base delay is 10 ms)");
        assert!(waited < Duration::from_secs(3), "{status}: waited {waited:?}");
    }
    let (url, receiver) = receiver(&[(503, Some("60"))]).await;
    let h = handler(&db_path("retry-after-long"), json!({})).await;
    let e = deliver(&h, json!({"url": url, "body": {}})).await.unwrap_err();
    assert!(e.message().contains("retry after 60 s, beyond max_delay_ms (2000 ms)"), "{e}");
    assert_eq!(receiver.seen.lock().unwrap().len(), 1, "a Retry-After beyond max_delay_ms ends the delivery");
}

#[tokio::test]
async fn refused_connections_are_retried_then_recorded_as_failed() {
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let db = db_path("refused");
    let h = handler(&db, json!({"max_attempts": 3})).await;
    let e = deliver(&h, json!({"url": format!("http://{addr}/hook"), "body": {}, "delivery_id": "dlv-down"}))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::HTTP_CONNECTION_FAILED.as_str(), ErrorCategory::Unavailable), "{e}");
    let store = SqliteDeliveryStore::open(&db).await.unwrap();
    let (attempts, status) = recorded(&store, "dlv-down").await;
    assert_eq!(attempts, [(1, None, true), (2, None, true), (3, None, true)]);
    assert_eq!(status, DeliveryStatus::Failed);
}

#[tokio::test]
async fn bad_requests_and_configs_are_refused_by_name() {
    let h = handler(&db_path("bad"), json!({})).await;
    let envelope =
        Envelope::request(new_uuid_v7(), "webhook.deliver", json!({"url": "http://127.0.0.1:1/"}), now_utc());
    let e = h.execute(&envelope).await.unwrap_err();
    let id = envelope.envelope_id.to_string();
    assert!(
        e.message().contains(&id) && e.message().contains("webhook.deliver") && e.message().contains("body"),
        "{e}"
    );
    let e =
        deliver(&h, json!({"url": "http://127.0.0.1:1/", "body": {}, "delivery_id": "has space"})).await.unwrap_err();
    assert!(e.message().contains("`delivery_id`"), "{e}");

    let short = HandlerInit {
        config: json!({"signing_secret": "too-short", "sqlite_path": db_path("short")}),
        secrets: Arc::new(TestSecrets),
        data_dir: std::env::temp_dir(),
    };
    let e = WebhookHandlerFactory.create(short).unwrap().initialize().await.unwrap_err();
    assert!(e.message().contains("at least 16 bytes") && !e.message().contains("too-short"), "{e}");
    let missing = HandlerInit { config: json!({}), secrets: Arc::new(TestSecrets), data_dir: std::env::temp_dir() };
    let Err(e) = WebhookHandlerFactory.create(missing) else { panic!("a missing signing_secret is refused") };
    assert!(e.message().contains("`signing_secret` is required"), "{e}");
}

#[tokio::test]
async fn the_postgres_delivery_store_records_attempts() {
    let url = common::service_url("ONEX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    let store = match PostgresDeliveryStore::connect(&url, 2).await {
        Ok(store) => store,
        Err(e) => panic!(
            "PostgreSQL is needed for this test and did not answer ({e}); \
             run `cargo xtask services up` (or set ONEX_POSTGRES_URL)"
        ),
    };
    let id = format!("dlv-pg-{}", new_uuid_v7());
    assert_eq!(store.begin(&id, "http://127.0.0.1/hook", Some("e")).await.unwrap(), 0);
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_763_683_200_123_456);
    let first =
        DeliveryAttempt { delivery_id: id.clone(), attempt: 1, status: None, error: Some("refused".into()), at };
    store.record_attempt(&first).await.unwrap();
    let second = DeliveryAttempt { attempt: 2, status: Some(200), error: None, ..first.clone() };
    store.record_attempt(&second).await.unwrap();
    store.finish(&id, DeliveryStatus::Delivered).await.unwrap();
    let record = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!((record.status, record.event.as_deref()), (DeliveryStatus::Delivered, Some("e")));
    assert_eq!(record.attempts, [first, second]);
    assert_eq!(store.begin(&id, "http://127.0.0.1/hook", None).await.unwrap(), 2, "numbering continues");
    assert!(store.delivery("no-such-delivery").await.unwrap().is_none());
}

#[tokio::test]
async fn the_sqlite_delivery_store_keeps_attempt_times_to_the_microsecond() {
    let store = SqliteDeliveryStore::open(&db_path("times")).await.unwrap();
    store.begin("d", "http://h/", None).await.unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_763_683_200_123_456);
    let attempt = DeliveryAttempt { delivery_id: "d".into(), attempt: 1, status: Some(500), error: None, at };
    store.record_attempt(&attempt).await.unwrap();
    assert_eq!(store.delivery("d").await.unwrap().unwrap().attempts, [attempt]);
}

#[tokio::test]
async fn neither_the_secret_nor_a_signature_is_logged() {
    let capture = LogCapture::start();
    let (url, receiver) = receiver(&[(500, None), (400, None)]).await;
    let h = handler(&db_path("logs"), json!({})).await;
    let _ = deliver(&h, json!({"url": url, "body": {"x": 1}, "delivery_id": "dlv-logs"})).await.unwrap_err();
    let logs = capture.text();
    assert!(logs.contains("webhook attempt") && logs.contains("dlv-logs"), "{logs}");
    assert!(!logs.contains(SECRET), "the secret was logged:\n{logs}");
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in seen {
        let signature = s.headers["x-onex-signature"].to_str().unwrap().trim_start_matches("sha256=").to_owned();
        assert!(!logs.contains(&signature), "a signature was logged:\n{logs}");
    }
}

#[tokio::test]
async fn without_a_delivery_id_the_envelope_id_is_the_receivers_idempotency_key() {
    let (url, receiver) = receiver(&[]).await;
    let h = handler(&db_path("envelope-id"), json!({})).await;
    let request = Envelope::request(new_uuid_v7(), "webhook.deliver", json!({"url": url, "body": {"n": 1}}), now_utc());
    // The same envelope delivered twice (a redelivery) reaches the receiver under one id.
    for _ in 0..2 {
        let reply = h.execute(&request).await.unwrap();
        assert_eq!(reply["delivery_id"], request.envelope_id.to_string());
    }
    let seen = receiver.seen.lock().unwrap();
    let ids: Vec<&str> = seen.iter().map(|s| s.headers.get("x-onex-delivery").unwrap().to_str().unwrap()).collect();
    assert_eq!(ids, [request.envelope_id.to_string(), request.envelope_id.to_string()]);
}
