//! The consul handler against the in-repo Consul fixture (tests/consul_fixture.rs, which follows
//! Consul's documented HTTP API): every operation's round trip, check-and-set conflicts, the
//! error mapping, discovery of healthy instances only as their HTTP check flips, the host's
//! self-registration, and the fixture's own KV semantics and blocking queries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod consul_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use consul_support::{HealthEndpoint, TEST_TOKEN, consul_handler, eventually, eventually_within, execute, ids_of, raw};
use onex_core::error::ErrorCategory;
use onex_e2e::consul_fixture::ConsulFixture;
use onex_infra::error::codes;
use onex_infra::handlers::consul::{deregister_host, host_service_id, register_host};
use onex_spi::{Handler, Health};
use serde_json::json;

#[tokio::test]
async fn kv_operations_round_trip() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    consul.initialize().await.unwrap();
    assert_eq!(consul.health().await, Health::Healthy);

    let put = execute(&consul, "consul.kv_put", json!({"key": "app/config", "value": "hello"})).await.unwrap();
    assert_eq!(put, json!({"ok": true}));
    let got = execute(&consul, "consul.kv_get", json!({"key": "app/config"})).await.unwrap();
    assert_eq!((got["key"].as_str(), got["value"].as_str()), (Some("app/config"), Some("hello")));
    let first_index = got["modify_index"].as_u64().unwrap();
    assert!(first_index > 0, "{got}");

    // Bytes that are not UTF-8 travel as base64 both ways.
    execute(&consul, "consul.kv_put", json!({"key": "app/blob", "value_base64": "/wD+"})).await.unwrap();
    let blob = execute(&consul, "consul.kv_get", json!({"key": "app/blob"})).await.unwrap();
    assert_eq!(blob["value_base64"], "/wD+", "{blob}");
    assert!(blob.get("value").is_none(), "{blob}");

    execute(&consul, "consul.kv_put", json!({"key": "app/config", "value": "again"})).await.unwrap();
    let again = execute(&consul, "consul.kv_get", json!({"key": "app/config"})).await.unwrap();
    assert_eq!(again["value"], "again");
    assert!(again["modify_index"].as_u64().unwrap() > first_index, "{again}");

    let deleted = execute(&consul, "consul.kv_delete", json!({"key": "app/config"})).await.unwrap();
    assert_eq!(deleted, json!({"ok": true}));
    let gone = execute(&consul, "consul.kv_get", json!({"key": "app/config"})).await.unwrap_err();
    assert_eq!((gone.code(), gone.category()), (codes::CONSUL_NOT_FOUND.as_str(), ErrorCategory::NotFound));
    assert!(gone.message().contains("consul.kv_get") && gone.message().contains("app/config"), "{gone}");
    // Deleting what is not there is fine (Consul answers true).
    assert_eq!(execute(&consul, "consul.kv_delete", json!({"key": "app/config"})).await.unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn check_and_set_conflicts_are_conflict_errors() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    // cas 0: create only if absent.
    execute(&consul, "consul.kv_put", json!({"key": "lock", "value": "a", "cas": 0})).await.unwrap();
    let e = execute(&consul, "consul.kv_put", json!({"key": "lock", "value": "b", "cas": 0})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::CONSUL_CAS_CONFLICT.as_str(), ErrorCategory::Conflict));
    assert!(!e.retryable());

    let index =
        execute(&consul, "consul.kv_get", json!({"key": "lock"})).await.unwrap()["modify_index"].as_u64().unwrap();
    execute(&consul, "consul.kv_put", json!({"key": "lock", "value": "b", "cas": index})).await.unwrap();
    let stale =
        execute(&consul, "consul.kv_put", json!({"key": "lock", "value": "c", "cas": index})).await.unwrap_err();
    assert_eq!(stale.category(), ErrorCategory::Conflict, "{stale}");
    assert!(stale.message().contains(&format!("not {index}")), "{stale}");
    assert_eq!(execute(&consul, "consul.kv_get", json!({"key": "lock"})).await.unwrap()["value"], "b");

    let e = execute(&consul, "consul.kv_delete", json!({"key": "lock", "cas": index})).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Conflict, "{e}");
    let current =
        execute(&consul, "consul.kv_get", json!({"key": "lock"})).await.unwrap()["modify_index"].as_u64().unwrap();
    execute(&consul, "consul.kv_delete", json!({"key": "lock", "cas": current})).await.unwrap();
    assert!(execute(&consul, "consul.kv_get", json!({"key": "lock"})).await.is_err());
}

#[tokio::test]
async fn a_service_is_discovered_only_while_its_check_passes() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    let healthy = HealthEndpoint::start(200).await;
    let throttled = HealthEndpoint::start(429).await;
    let register = |id: &str, url: String| {
        json!({"name": "web", "id": id, "address": "127.0.0.1", "port": 8080, "tags": ["v1"],
               "check": {"http": url, "interval": "100ms", "timeout": "1s"}})
    };
    let reply = execute(&consul, "consul.register", register("web-1", healthy.url())).await.unwrap();
    assert_eq!(reply, json!({"id": "web-1"}));
    execute(&consul, "consul.register", register("web-2", throttled.url())).await.unwrap();

    // Checks start critical; once web-1's passes it is discovered, with its address and tags.
    let found = eventually("web-1 discovered", || async {
        let instances = execute(&consul, "consul.discover", json!({"service": "web"})).await.unwrap();
        (ids_of(&instances) == ["web-1"]).then_some(instances)
    })
    .await;
    assert_eq!(found, json!([{"id": "web-1", "address": "127.0.0.1", "port": 8080, "tags": ["v1"]}]));

    healthy.status.store(500, Ordering::SeqCst);
    eventually("web-1 gone after its check fails", || async {
        let instances = execute(&consul, "consul.discover", json!({"service": "web"})).await.unwrap();
        ids_of(&instances).is_empty().then_some(())
    })
    .await;

    healthy.status.store(200, Ordering::SeqCst);
    eventually("web-1 back after its check passes again", || async {
        let instances = execute(&consul, "consul.discover", json!({"service": "web"})).await.unwrap();
        (ids_of(&instances) == ["web-1"]).then_some(())
    })
    .await;
    // A 429 is `warning`, which is not passing: web-2 was never discovered, though it was
    // checked all along.
    assert!(throttled.calls.load(Ordering::SeqCst) >= 2);
    assert!(healthy.calls.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn deregister_removes_the_service() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    let endpoint = HealthEndpoint::start(200).await;
    let check = json!({"http": endpoint.url(), "interval": "100ms"});
    execute(&consul, "consul.register", json!({"name": "api", "port": 9000, "check": check})).await.unwrap();
    eventually("api discovered", || async {
        let instances = execute(&consul, "consul.discover", json!({"service": "api"})).await.unwrap();
        // No address given: the instance is reached at the node's.
        (instances == json!([{"id": "api", "address": "127.0.0.1", "port": 9000, "tags": []}])).then_some(())
    })
    .await;
    let (_, _, services) = raw(addr, "GET", "/v1/catalog/services", b"").await;
    assert!(services.contains("\"api\""), "{services}");

    assert_eq!(execute(&consul, "consul.deregister", json!({"id": "api"})).await.unwrap(), json!({"ok": true}));
    assert_eq!(execute(&consul, "consul.discover", json!({"service": "api"})).await.unwrap(), json!([]));
    let (_, _, services) = raw(addr, "GET", "/v1/catalog/services", b"").await;
    assert!(!services.contains("\"api\""), "{services}");
    // Its check stopped with it.
    let calls = endpoint.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn the_host_registers_itself_with_a_check_on_health_ready() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    let admin = HealthEndpoint::start(200).await;
    let id = register_host(&consul, "onex-runtime-host", admin.addr).await.unwrap();
    assert_eq!(id, host_service_id("onex-runtime-host", admin.addr));
    let (_, _, entries) = raw(addr, "GET", "/v1/health/service/onex-runtime-host", b"").await;
    assert!(entries.contains(&format!("http://{}/health/ready", admin.addr)), "{entries}");
    // The host's check interval is 10 s with a random first stagger: wait for it to pass.
    eventually_within(Duration::from_secs(25), "host discovered", || async {
        let instances = execute(&consul, "consul.discover", json!({"service": "onex-runtime-host"})).await.unwrap();
        (ids_of(&instances) == [id.as_str()]).then_some(())
    })
    .await;
    assert!(admin.paths.lock().unwrap().iter().all(|p| p == "/health/ready"));
    deregister_host(&consul, &id).await.unwrap();
    let (_, _, entries) = raw(addr, "GET", "/v1/health/service/onex-runtime-host", b"").await;
    assert_eq!(entries, "[]");
}

#[tokio::test]
async fn errors_map_to_categories_and_never_show_the_token() {
    let (addr, _fixture) = ConsulFixture::start_with_acl_token(TEST_TOKEN).await;
    let url = ConsulFixture::url(addr);

    // No token: 403 is an auth error, not retried.
    let anonymous = consul_handler(json!({ "address": url }));
    let e = execute(&anonymous, "consul.kv_get", json!({"key": "k"})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::CONSUL_DENIED.as_str(), ErrorCategory::Auth), "{e}");
    assert!(!e.retryable());
    assert!(matches!(anonymous.health().await, Health::Unhealthy(_)));

    // The token from a `${env:…}` reference (resolved through the secret store), through the
    // factory the host's registry holds.
    let consul = consul_support::from_registry(json!({ "address": url, "token": "${env:ONEX_TEST_CONSUL_TOKEN}" }));
    execute(consul.as_ref(), "consul.kv_put", json!({"key": "k", "value": "v"})).await.unwrap();
    let wrong = consul_support::consul_handler_with_token(&url, "not-the-token");
    let e = execute(&wrong, "consul.kv_put", json!({"key": "k", "value": "v"})).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Auth);
    assert!(!format!("{e} {e:?} {wrong:?}").contains("not-the-token"), "{e:?}");

    // Nothing listening: unavailable (retryable); a server that never answers: timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = consul_handler(json!({ "address": format!("http://{closed}") }));
    let e = execute(&down, "consul.discover", json!({"service": "web"})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::CONSUL_UNAVAILABLE.as_str(), ErrorCategory::Unavailable), "{e}");
    assert!(e.retryable());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let slow = consul_handler(json!({ "address": format!("http://{silent_addr}"), "timeout_ms": 300 }));
    let e = execute(&slow, "consul.kv_get", json!({"key": "k"})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::CONSUL_TIMEOUT.as_str(), ErrorCategory::Timeout), "{e}");
}

#[tokio::test]
async fn bad_input_names_envelope_operation_and_field() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = consul_handler(json!({ "address": ConsulFixture::url(addr) }));
    let (envelope, e) = consul_support::execute_envelope(&consul, "consul.kv_put", json!({"value": "v"})).await;
    let e = e.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::BAD_PAYLOAD.as_str(), ErrorCategory::Validation));
    for part in [envelope.as_str(), "consul.kv_put", "missing field `key`"] {
        assert!(e.message().contains(part), "{part}: {e}");
    }
    let e = execute(&consul, "consul.register", json!({"name": "x", "check": {"http": "http://h/", "interval": "10"}}))
        .await
        .unwrap_err();
    assert!(e.message().contains("`check.interval`"), "{e}");
    let e = execute(&consul, "consul.kv_get", json!({"key": "/abs"})).await.unwrap_err();
    assert!(e.message().contains("`key`"), "{e}");
    // Consul's own 400 is a validation error too (an HTTPS check URL is refused by the fixture).
    let e =
        execute(&consul, "consul.register", json!({"name": "x", "check": {"http": "https://h/", "interval": "1s"}}))
            .await
            .unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::CONSUL_REJECTED.as_str(), ErrorCategory::Validation), "{e}");
}

#[tokio::test]
async fn fixture_kv_follows_the_documented_api() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let (status, headers, body) = raw(addr, "GET", "/v1/kv/missing", b"").await;
    assert_eq!((status, body.as_str()), (404, ""));
    assert!(headers.contains_key("x-consul-index"));
    assert_eq!(raw(addr, "PUT", "/v1/kv/web/a?flags=42", b"1").await.2, "true");
    assert_eq!(raw(addr, "PUT", "/v1/kv/web/sub/b", b"2").await.2, "true");
    assert_eq!(raw(addr, "PUT", "/v1/kv/webx", b"3").await.2, "true");
    let (_, _, entry) = raw(addr, "GET", "/v1/kv/web/a", b"").await;
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(
        (entry[0]["Key"].as_str(), entry[0]["Value"].as_str(), entry[0]["Flags"].as_u64()),
        (Some("web/a"), Some("MQ=="), Some(42))
    );
    assert_eq!(entry[0]["CreateIndex"], entry[0]["ModifyIndex"]);
    assert_eq!(entry[0]["LockIndex"], 0);
    let (_, _, listed) = raw(addr, "GET", "/v1/kv/web/?recurse", b"").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&listed).unwrap().as_array().unwrap().len(), 2);
    assert_eq!(raw(addr, "GET", "/v1/kv/web/?keys&separator=/", b"").await.2, r#"["web/a","web/sub/"]"#);
    assert_eq!(raw(addr, "GET", "/v1/kv/web?keys", b"").await.2, r#"["web/a","web/sub/b","webx"]"#);
    let (status, headers, value) = raw(addr, "GET", "/v1/kv/web/a?raw", b"").await;
    assert_eq!((status, value.as_str(), headers["content-type"].to_str().unwrap()), (200, "1", "text/plain"));
    assert_eq!(raw(addr, "PUT", "/v1/kv/web/a?cas=1", b"x").await.2, "false");
    assert_eq!(raw(addr, "DELETE", "/v1/kv/web/a?cas=1", b"").await.2, "false");
    assert_eq!(raw(addr, "DELETE", "/v1/kv/web/?recurse", b"").await.2, "true");
    assert_eq!(raw(addr, "GET", "/v1/kv/web/?recurse", b"").await.0, 404);
    assert_eq!(raw(addr, "PUT", "/v1/kv/", b"x").await.0, 400);
    assert_eq!(raw(addr, "PUT", "/v1/kv/big", &vec![b'x'; 512 * 1024 + 1]).await.0, 413);
}

#[tokio::test]
async fn fixture_blocking_query_returns_when_the_key_changes() {
    let (addr, _fixture) = ConsulFixture::start().await;
    raw(addr, "PUT", "/v1/kv/watched", b"v1").await;
    raw(addr, "PUT", "/v1/kv/other", b"x").await;
    let (_, headers, _) = raw(addr, "GET", "/v1/kv/watched", b"").await;
    let index: u64 = headers["x-consul-index"].to_str().unwrap().parse().unwrap();

    // Nothing changes: the query waits out its `wait` and answers the same index.
    let started = std::time::Instant::now();
    let (_, headers, _) = raw(addr, "GET", &format!("/v1/kv/watched?index={index}&wait=300ms"), b"").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(headers["x-consul-index"].to_str().unwrap(), index.to_string());

    let watcher =
        tokio::spawn(async move { raw(addr, "GET", &format!("/v1/kv/watched?index={index}&wait=30s"), b"").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A write to another key does not wake a watcher of this one.
    raw(addr, "PUT", "/v1/kv/other", b"y").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!watcher.is_finished(), "the blocking query returned before its key changed");
    raw(addr, "PUT", "/v1/kv/watched", b"v2").await;
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(5), watcher).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(headers["x-consul-index"].to_str().unwrap().parse::<u64>().unwrap() > index);
    assert!(body.contains(r#""Value":"djI=""#), "{body}");
    assert_eq!(raw(addr, "GET", "/v1/kv/watched?index=1&wait=nonsense", b"").await.0, 400);
}

/// A self-signed test CA (public; no key is kept anywhere).
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBlDCCATmgAwIBAgIUHzTxQFLTe34+4N5kh5AYlW8e88IwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTb25leC1jb25zdWwtdGVzdC1jYTAgFw0yNjExMjIwMjAwMzRa
GA8yMTI2MTAyOTAyMDAzNFowHjEcMBoGA1UEAwwTb25leC1jb25zdWwtdGVzdC1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPo2ipYfOMck/NXriBdZVkgVyw0N
6eUYBwHrW0KpzaZe1tQRP8d2gv3WERZVFcl/nmNcgyJ11D6pTP6DWC3L88ejUzBR
MB0GA1UdDgQWBBTL1z7UXOpXLblfVhaDQFBm3rimTDAfBgNVHSMEGDAWgBTL1z7U
XOpXLblfVhaDQFBm3rimTDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA
MEYCIQD2goPg/L7RKDKPZdfaWwk8M6e3gAOw7HAg3c30eYkKbgIhALr/jKwilUU5
ppOoX3AimuF44SCiTNVX4l/7Php5T9ZN
-----END CERTIFICATE-----
";

#[tokio::test]
async fn tls_settings_are_checked_at_start() {
    let dir = onex_e2e::scratch_dir("consul-tls");
    std::fs::write(dir.join("ca.pem"), TEST_CA_PEM).unwrap();
    std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    let with_ca =
        |file: &str| consul_handler(json!({"address": "https://127.0.0.1:8501", "tls": {"ca_path": dir.join(file)}}));
    with_ca("ca.pem").initialize().await.unwrap();
    for (file, says) in [("missing.pem", "cannot read tls.ca_path"), ("junk.pem", "holds no PEM certificate")] {
        let e = with_ca(file).initialize().await.unwrap_err();
        assert_eq!((e.code(), e.category()), (codes::CONSUL_CONFIG.as_str(), ErrorCategory::Validation), "{e}");
        assert!(e.message().contains(says) && e.message().contains(file), "{e}");
    }
    let insecure = consul_handler(json!({"address": "https://127.0.0.1:8501", "tls": {"skip_verify": true}}));
    insecure.initialize().await.unwrap();
}
