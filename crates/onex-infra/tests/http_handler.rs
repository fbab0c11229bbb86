//! The `http` handler against real HTTP servers (axum, in process on 127.0.0.1:0, plain and
//! TLS): round trips, size caps, bounded redirects, timeouts, status mapping and the header
//! allow-list of its logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use onex_core::envelope::Envelope;
use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use onex_infra::handlers::HttpHandlerFactory;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{Handler, HandlerFactory, HandlerInit, SpiError};
use serde_json::{Value, json};

#[path = "common/logs.rs"]
mod logs;
use logs::LogCapture;

/// Requests the test server has seen.
#[derive(Default)]
struct Hits(AtomicUsize);

/// An endless body of 4 KiB chunks.
struct Endless;

impl futures_core::Stream for Endless {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(Some(Ok(Bytes::from(vec![b'x'; 4096]))))
    }
}

async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(body.to_vec()).unwrap();
    json_response(json!({"method": method.as_str(), "content_type": content_type, "body": body}))
}

fn json_response(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn router(hits: Arc<Hits>) -> Router {
    Router::new()
        .route(
            "/json",
            get(|| async {
                let headers = [("x-secret-token", "resp-s3cret-value"), ("x-visible", "shown-value")];
                (headers, json_response(json!({"hello": "world"})))
            }),
        )
        .route("/echo", any(echo))
        .route(
            "/traceparent",
            get(|headers: HeaderMap| async move {
                let given = headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned());
                json_response(json!({ "traceparent": given }))
            }),
        )
        .route("/method", any(echo))
        .route("/empty", any(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/binary",
            get(|| async { ([(header::CONTENT_TYPE, "application/octet-stream")], vec![0xffu8, 0, 0xfe]) }),
        )
        .route("/big", get(|| async { vec![b'y'; 64 * 1024] }))
        .route("/exact", get(|| async { Body::from_stream(futures_stream(16 * 1024)) }))
        .route("/endless", get(|| async { Body::from_stream(Endless) }))
        .route("/hops/{n}", get(|n: Path<u32>| async move { hop(n.0) }))
        .route(
            "/loop",
            get(|State(hits): State<Arc<Hits>>| async move {
                hits.0.fetch_add(1, Ordering::SeqCst);
                (StatusCode::FOUND, [(header::LOCATION, "/loop")])
            }),
        )
        .route("/see-other", any(|| async { (StatusCode::SEE_OTHER, [(header::LOCATION, "/method")]) }))
        .route("/temporary", any(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/method")]) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/status/{code}", get(|code: Path<u16>| async move { StatusCode::from_u16(code.0).unwrap() }))
        .route(
            "/counted",
            any(|State(hits): State<Arc<Hits>>| async move {
                hits.0.fetch_add(1, Ordering::SeqCst);
                "counted"
            }),
        )
        .with_state(hits)
}

/// `len` bytes in 1 KiB chunks, without a Content-Length.
fn futures_stream(len: usize) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Chunks(usize);
    impl futures_core::Stream for Chunks {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let n = self.0.min(1024);
            self.0 -= n;
            Poll::Ready((n > 0).then(|| Ok(Bytes::from(vec![b'z'; n]))))
        }
    }
    Chunks(len)
}

fn hop(n: u32) -> Response {
    if n == 0 {
        return "arrived".into_response();
    }
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, format!("/hops/{}", n - 1))]).into_response()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn server() -> (String, Arc<Hits>) {
    let hits = Arc::new(Hits::default());
    let addr = serve(router(Arc::clone(&hits))).await;
    (format!("http://{addr}"), hits)
}

fn handler(config: Value) -> Arc<dyn Handler> {
    let init = HandlerInit {
        config,
        secrets: Arc::new(EnvSecretStore),
        data_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    };
    HttpHandlerFactory.create(init).unwrap()
}

async fn call(h: &Arc<dyn Handler>, op: &str, payload: Value) -> Result<Value, SpiError> {
    h.execute(&Envelope::request(new_uuid_v7(), op, payload, now_utc())).await
}

fn assert_error(
    result: Result<Value, SpiError>,
    code: onex_core::error::ErrorCode,
    category: ErrorCategory,
) -> SpiError {
    let error = result.expect_err("an error");
    assert_eq!((error.code(), error.category()), (code.as_str(), category), "{error}");
    error
}

#[tokio::test]
async fn get_post_put_delete_round_trip() {
    let (base, _) = server().await;
    let h = handler(json!({}));
    let got = call(&h, "http.get", json!({"url": format!("{base}/json")})).await.unwrap();
    assert_eq!((got["status"].clone(), got["body"].clone()), (json!(200), json!({"hello": "world"})));
    assert_eq!(got["headers"]["content-type"], "application/json");
    assert!(got["headers"].get("x-secret-token").is_none(), "only allow-listed headers are replied: {got}");

    let posted = call(&h, "http.post", json!({"url": format!("{base}/echo"), "body": {"n": 1}})).await.unwrap();
    assert_eq!(posted["body"], json!({"method": "POST", "content_type": "application/json", "body": "{\"n\":1}"}));
    let put = call(
        &h,
        "http.put",
        json!({"url": format!("{base}/echo"), "body": "plain", "headers": {"Content-Type": "text/x-custom"}}),
    )
    .await
    .unwrap();
    assert_eq!(put["body"], json!({"method": "PUT", "content_type": "text/x-custom", "body": "plain"}));
    let deleted = call(&h, "http.delete", json!({"url": format!("{base}/empty")})).await.unwrap();
    assert_eq!((deleted["status"].clone(), deleted["body"].clone()), (json!(204), json!("")));
    let binary = call(&h, "http.get", json!({"url": format!("{base}/binary")})).await.unwrap();
    assert_eq!(binary["body_base64"], "/wD+");

    let concurrent = (0..50).map(|_| {
        let (h, url) = (Arc::clone(&h), format!("{base}/json"));
        async move { call(&h, "http.get", json!({"url": url})).await }
    });
    for reply in futures_join(concurrent).await {
        assert_eq!(reply.unwrap()["status"], 200);
    }
}

#[tokio::test]
async fn the_envelopes_trace_goes_out_as_traceparent_unless_the_payload_sets_one() {
    let (base, _) = server().await;
    let h = handler(json!({}));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request =
        Envelope::request(new_uuid_v7(), "http.get", json!({"url": format!("{base}/traceparent")}), now_utc());
    request.metadata.traceparent = Some(traceparent.to_owned());
    let got = h.execute(&request).await.unwrap();
    assert_eq!(got["body"]["traceparent"], traceparent);

    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    request.payload = json!({"url": format!("{base}/traceparent"), "headers": {"traceparent": own}});
    let got = h.execute(&request).await.unwrap();
    assert_eq!(got["body"]["traceparent"], own, "the payload's own header wins");
    let untraced = call(&h, "http.get", json!({"url": format!("{base}/traceparent")})).await.unwrap();
    assert_eq!(untraced["body"]["traceparent"], Value::Null);
}

async fn futures_join<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn responses_over_the_cap_are_refused_even_while_streaming() {
    let (base, _) = server().await;
    let h = handler(json!({"max_response_bytes": 16 * 1024, "timeout_ms": 5000}));
    for path in ["/big", "/endless"] {
        let started = Instant::now();
        let e = assert_error(
            call(&h, "http.get", json!({"url": format!("{base}{path}")})).await,
            codes::HTTP_RESPONSE_TOO_LARGE,
            ErrorCategory::Validation,
        );
        assert!(e.message().contains("max_response_bytes (16384 bytes)"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}: refused while streaming, not at the deadline");
    }
    let exact = call(&h, "http.get", json!({"url": format!("{base}/exact")})).await.unwrap();
    assert_eq!(exact["body"].as_str().unwrap().len(), 16 * 1024, "a body of exactly the cap is read");
}

#[tokio::test]
async fn requests_over_the_cap_are_refused_before_sending() {
    let (base, hits) = server().await;
    let h = handler(json!({"max_request_bytes": 16}));
    let url = format!("{base}/counted");
    let e = assert_error(
        call(&h, "http.post", json!({"url": url, "body": "x".repeat(17)})).await,
        codes::HTTP_REQUEST_INVALID,
        ErrorCategory::Validation,
    );
    assert!(e.message().contains("max_request_bytes (16 bytes)") && e.message().contains("`body`"), "{e}");
    assert_eq!(hits.0.load(Ordering::SeqCst), 0, "nothing was sent");
    call(&h, "http.post", json!({"url": url, "body": "x".repeat(16)})).await.unwrap();
    assert_eq!(hits.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirects_are_followed_within_the_cap_and_loops_end() {
    let (base, hits) = server().await;
    let h = handler(json!({"max_redirects": 3}));
    let arrived = call(&h, "http.get", json!({"url": format!("{base}/hops/3")})).await.unwrap();
    assert_eq!((arrived["body"].clone(), arrived["redirects"].clone()), (json!("arrived"), json!(3)));
    assert!(arrived["url"].as_str().unwrap().ends_with("/hops/0"));
    let e = assert_error(
        call(&h, "http.get", json!({"url": format!("{base}/loop")})).await,
        codes::HTTP_TOO_MANY_REDIRECTS,
        ErrorCategory::Validation,
    );
    assert!(e.message().contains("max_redirects (3)"), "{e}");
    assert_eq!(hits.0.load(Ordering::SeqCst), 4, "the first request and 3 redirects");

    let see_other = call(&h, "http.post", json!({"url": format!("{base}/see-other"), "body": {"a": 1}})).await.unwrap();
    assert_eq!(see_other["body"], json!({"method": "GET", "content_type": null, "body": ""}), "303 becomes a GET");
    let temporary = call(&h, "http.post", json!({"url": format!("{base}/temporary"), "body": {"a": 1}})).await.unwrap();
    assert_eq!(temporary["body"], json!({"method": "POST", "content_type": "application/json", "body": "{\"a\":1}"}));

    let unfollowed = handler(json!({"max_redirects": 0}));
    let e = assert_error(
        call(&unfollowed, "http.get", json!({"url": format!("{base}/hops/1")})).await,
        codes::HTTP_CLIENT_ERROR,
        ErrorCategory::Validation,
    );
    assert!(e.message().contains("301"), "{e}");
}

#[tokio::test]
async fn a_slow_server_times_out_within_the_shorter_timeout() {
    let (base, _) = server().await;
    let url = format!("{base}/slow");
    for (config, payload) in [
        (json!({}), json!({"url": url, "timeout_ms": 200})),
        (json!({"timeout_ms": 200}), json!({"url": url, "timeout_ms": 60_000})),
    ] {
        let started = Instant::now();
        let e = assert_error(
            call(&handler(config), "http.get", payload).await,
            codes::HTTP_TIMEOUT,
            ErrorCategory::Timeout,
        );
        assert!(e.message().contains("within 200 ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn statuses_map_to_error_categories() {
    let (base, _) = server().await;
    let h = handler(json!({}));
    let cases = [
        (400, codes::HTTP_CLIENT_ERROR, ErrorCategory::Validation),
        (422, codes::HTTP_CLIENT_ERROR, ErrorCategory::Validation),
        (401, codes::HTTP_UNAUTHORIZED, ErrorCategory::Auth),
        (403, codes::HTTP_UNAUTHORIZED, ErrorCategory::Auth),
        (404, codes::HTTP_NOT_FOUND, ErrorCategory::NotFound),
        (409, codes::HTTP_CONFLICT, ErrorCategory::Conflict),
        (429, codes::HTTP_SERVER_UNAVAILABLE, ErrorCategory::Unavailable),
        (500, codes::HTTP_SERVER_UNAVAILABLE, ErrorCategory::Unavailable),
        (503, codes::HTTP_SERVER_UNAVAILABLE, ErrorCategory::Unavailable),
    ];
    for (status, code, category) in cases {
        let envelope =
            Envelope::request(new_uuid_v7(), "http.get", json!({"url": format!("{base}/status/{status}")}), now_utc());
        let e = assert_error(h.execute(&envelope).await, code, category);
        assert!(e.message().contains(&format!("status {status}")), "{e}");
        assert!(e.message().contains(&envelope.envelope_id.to_string()), "{e}");
        assert_eq!(e.retryable(), matches!(status, 429 | 500 | 503));
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let e = assert_error(
        call(&handler(json!({})), "http.get", json!({"url": format!("http://{addr}/")})).await,
        codes::HTTP_CONNECTION_FAILED,
        ErrorCategory::Unavailable,
    );
    assert!(e.retryable());
}

#[tokio::test]
async fn bad_payloads_name_the_envelope_operation_and_field() {
    let h = handler(json!({}));
    let envelope =
        Envelope::request(new_uuid_v7(), "http.put", json!({"url": "http://127.0.0.1:1/", "colour": 1}), now_utc());
    let e = h.execute(&envelope).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Validation);
    let id = envelope.envelope_id.to_string();
    assert!(e.message().contains(&id) && e.message().contains("http.put") && e.message().contains("colour"), "{e}");
    let e = call(&h, "http.get", json!({"url": "ftp://127.0.0.1/x"})).await.unwrap_err();
    assert!(e.message().contains("`url`") && e.message().contains("ftp"), "{e}");
    let e = call(&h, "http.get", json!({"url": "http://127.0.0.1:1/", "headers": {"Host": "elsewhere"}}))
        .await
        .unwrap_err();
    assert!(e.message().contains("`headers.Host`"), "{e}");
    let e = call(&h, "http.patch", json!({})).await.unwrap_err();
    assert!(e.message().contains("no operation `http.patch`"), "{e}");
    let config = HandlerInit {
        config: json!({"log_headers": ["authorization"]}),
        secrets: Arc::new(EnvSecretStore),
        data_dir: ".".into(),
    };
    let Err(e) = HttpHandlerFactory.create(config) else { panic!("a credential header in log_headers is refused") };
    assert!(e.message().contains("log_headers") && e.message().contains("authorization"), "{e}");
}

#[tokio::test]
async fn only_allow_listed_headers_reach_the_logs() {
    let (base, _) = server().await;
    let capture = LogCapture::start();
    let h = handler(json!({"log_headers": ["x-visible", "x-request-tag"]}));
    let headers = json!({"x-api-key": "TOPSECRET-123", "authorization": "Bearer tok-456", "x-request-tag": "tag-789"});
    call(&h, "http.get", json!({"url": format!("{base}/json?token=query-secret"), "headers": headers})).await.unwrap();
    let _ =
        call(&h, "http.get", json!({"url": format!("{base}/status/500?token=query-secret"), "headers": headers})).await;
    let logs = capture.text();
    assert!(logs.contains("http exchange") && logs.contains("shown-value") && logs.contains("tag-789"), "{logs}");
    for secret in ["TOPSECRET-123", "tok-456", "resp-s3cret-value", "query-secret"] {
        assert!(!logs.contains(secret), "`{secret}` was logged:\n{logs}");
    }
}

/// A TLS server with the fixture certificate (signed by the fixture CA) in front of `router`.
async fn serve_tls(router: Router) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_trusts_the_configured_ca_and_refuses_an_unknown_one() {
    let addr = serve_tls(router(Arc::default())).await;
    let payload = json!({"url": format!("https://127.0.0.1:{}/json", addr.port())});
    let trusted = handler(json!({"ca_file": "tls/ca.pem"}));
    assert_eq!(call(&trusted, "http.get", payload.clone()).await.unwrap()["body"], json!({"hello": "world"}));
    let e = assert_error(
        call(&handler(json!({})), "http.get", payload.clone()).await,
        codes::HTTP_UNAUTHORIZED,
        ErrorCategory::Auth,
    );
    assert!(e.message().contains("certificate is not trusted"), "{e}");
    let insecure = handler(json!({"insecure_skip_verify": true}));
    assert_eq!(call(&insecure, "http.get", payload).await.unwrap()["status"], 200);
}
