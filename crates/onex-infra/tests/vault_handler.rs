//! The vault handler against RustyVault (`cargo xtask services up` starts it; KV v1 at
//! `secret/`): round trips, the error mapping, 403 not retried by the node's resilience stack,
//! token renewal, `${vault:…}` resolution and secrets kept out of logs, errors and Debug.
//! `fault.rs` stops a second RustyVault mid-test; `fixture.rs` checks KV v2 request shapes
//! and token renewal against a fixture following Vault's documented API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "vault_handler/fault.rs"]
mod fault;
#[path = "vault_handler/fixture.rs"]
mod fixture;
#[path = "common/logs.rs"]
mod logs;
#[path = "vault_handler/support.rs"]
mod support;

use std::path::Path;
use std::sync::atomic::Ordering;

use onex_core::contract::SecretRef;
use onex_core::error::ErrorCategory;
use onex_infra::error::codes;
use onex_infra::handlers::VaultSecretStore;
use onex_infra::resilience::ResilienceStack;
use onex_spi::{Handler, Health, SecretStore};
use serde_json::json;

use support::{LogCapture, Tokens, call, envelope, handler, rvault, unique, vault_contract};

#[tokio::test]
async fn kv_v1_secrets_round_trip_through_rvault() {
    let (addr, token) = rvault();
    let h = handler(&addr, &token, json!({})).await;
    let dir = unique("onex-test");
    let data = json!({"user": "app", "password": "pw-1", "port": 5432, "opts": {"tls": true}});
    let written = call(&h, "vault.write_secret", json!({"mount": "secret", "path": format!("{dir}/db"), "data": data}))
        .await
        .unwrap();
    assert_eq!(written, json!({"written": true}));
    let read = call(&h, "vault.read_secret", json!({"mount": "secret", "path": format!("{dir}/db")})).await.unwrap();
    assert_eq!(read, json!({"data": data}), "values come back with their JSON types");
    call(&h, "vault.write_secret", json!({"mount": "secret/", "path": format!("/{dir}/cache"), "data": {"k": "v"}}))
        .await
        .unwrap();
    let listed = call(&h, "vault.list_secrets", json!({"mount": "secret", "path": dir})).await.unwrap();
    let mut keys: Vec<String> = serde_json::from_value(listed["keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, ["cache", "db"]);
    let root = call(&h, "vault.list_secrets", json!({"mount": "secret"})).await.unwrap();
    assert!(root["keys"].as_array().unwrap().contains(&json!(format!("{dir}/"))), "{root}");

    for name in ["db", "cache"] {
        let deleted = call(&h, "vault.delete_secret", json!({"mount": "secret", "path": format!("{dir}/{name}")}));
        assert_eq!(deleted.await.unwrap(), json!({"deleted": true}));
    }
    let e = call(&h, "vault.read_secret", json!({"mount": "secret", "path": format!("{dir}/db")})).await.unwrap_err();
    assert_eq!((e.code(), e.category()), (codes::VAULT_NOT_FOUND.as_str(), ErrorCategory::NotFound));
    assert!(e.message().contains(&format!("vault.read_secret `secret/{dir}/db`")), "{e}");
    // Nothing left under the folder: Vault answers a list with 404 (not_found), RustyVault
    // with an empty list; either way `db` and `cache` are gone.
    match call(&h, "vault.list_secrets", json!({"mount": "secret", "path": dir})).await {
        Ok(listed) => assert_eq!(listed, json!({"keys": []})),
        Err(e) => assert_eq!(e.category(), ErrorCategory::NotFound, "{e}"),
    }
    assert_eq!(h.health().await, Health::Healthy);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_payloads_name_the_envelope_operation_and_field_but_not_the_value() {
    let (addr, token) = rvault();
    let h = handler(&addr, &token, json!({})).await;
    let env = envelope("vault.write_secret", json!({"mount": "secret", "path": "x", "data": "hunter2-value"}));
    let e = h.execute(&env).await.unwrap_err();
    assert_eq!(e.code(), codes::BAD_PAYLOAD.as_str());
    assert!(e.message().contains(&env.envelope_id.to_string()), "{e}");
    assert!(e.message().contains("vault.write_secret") && e.message().contains("field `data`"), "{e}");
    assert!(!e.message().contains("hunter2-value"), "{e}");
    let env = envelope("vault.read_secret", json!({"mount": "secret"}));
    let e = h.execute(&env).await.unwrap_err();
    assert!(e.message().contains(&env.envelope_id.to_string()) && e.message().contains("missing field `path`"), "{e}");
    let e = call(&h, "vault.read_secret", json!({"mount": "secret", "path": "a/../b"})).await.unwrap_err();
    assert!(e.message().contains("field `path`") && e.message().contains(".."), "{e}");
    let e = call(&h, "vault.read_secret", json!({"mount": "secret", "path": "a", "version": 2})).await.unwrap_err();
    assert!(e.message().contains("field `version` applies to KV v2 mounts only"), "{e}");
    let e = call(&h, "vault.renew_token", json!({"increment": "1h"})).await.unwrap_err();
    assert!(e.message().contains("unknown field `increment`"), "{e}");
    let e = call(&h, "vault.rotate", json!({})).await.unwrap_err();
    assert_eq!(e.code(), onex_core::error::codes::OPERATION_NOT_FOUND.as_str());
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_the_resilience_stack_does_not_retry() {
    let (addr, _) = rvault();
    let bad_token = unique("not-a-token");
    let h = handler(&addr, &bad_token, json!({})).await;
    let stack = ResilienceStack::build(&vault_contract(), h.clone());
    for op in ["vault.read_secret", "vault.list_secrets", "vault.delete_secret"] {
        let env = envelope(op, json!({"mount": "secret", "path": "anything"}));
        let e = stack.call(std::sync::Arc::new(env)).await.unwrap_err();
        assert_eq!((e.code(), e.category()), (codes::VAULT_DENIED.as_str(), ErrorCategory::Auth), "{op}: {e}");
        assert!(e.message().contains("HTTP 403"), "{e}");
        assert!(!e.message().contains(&bad_token), "the token is in the error: {e}");
    }
    assert_eq!(stack.stats.retries.load(Ordering::Relaxed), 0, "auth failures must not be retried");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn renew_token_leaves_a_token_that_does_not_expire_alone() {
    // RustyVault's root token has no TTL (and RustyVault has no renew-self endpoint): the
    // handler looks the TTL up and does not renew. Renewing an expiring token is checked
    // against the fixture in `fixture.rs`.
    let (addr, token) = rvault();
    let h = handler(&addr, &token, json!({})).await;
    let reply = call(&h, "vault.renew_token", json!({})).await.unwrap();
    assert_eq!(reply, json!({"renewed": false, "expires": false, "ttl_s": 0}));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn vault_references_resolve_to_the_key_and_errors_name_only_the_reference() {
    let (addr, token) = rvault();
    let h = handler(&addr, &token, json!({})).await;
    let path = unique("onex-test-ref");
    let value = unique("db-password");
    call(&h, "vault.write_secret", json!({"mount": "secret", "path": path, "data": {"password": value, "port": 5432}}))
        .await
        .unwrap();

    let store = VaultSecretStore::connect(&support::config(&addr, json!({})), Path::new("."), Tokens::of(&token))
        .await
        .unwrap();
    let reference = |r: &str| SecretRef::parse(r).unwrap();
    let resolved = store.resolve(&reference(&format!("${{vault:secret/{path}#password}}"))).await.unwrap();
    assert_eq!(resolved.expose(), value);
    let port = store.resolve(&reference(&format!("${{vault:secret/{path}#port}}"))).await.unwrap();
    assert_eq!(port.expose(), "5432");
    // `${env:…}` goes to the store it chains to.
    assert_eq!(store.resolve(&SecretRef::Env("TEST_VAULT_TOKEN".into())).await.unwrap().expose(), token);

    let missing_key = format!("${{vault:secret/{path}#user}}");
    let e = store.resolve(&reference(&missing_key)).await.unwrap_err();
    assert_eq!(e.code(), codes::SECRET_UNRESOLVED.as_str());
    assert!(e.message().contains(&missing_key) && e.message().contains("no key `user`"), "{e}");
    assert!(!e.message().contains(&value), "{e}");
    let missing_path = format!("${{vault:secret/{path}-gone#password}}");
    let e = store.resolve(&reference(&missing_path)).await.unwrap_err();
    assert!(e.message().contains(&missing_path) && e.message().contains("no secret at that path"), "{e}");

    // The handler shares its client as a store once initialised.
    let shared = h.secret_store(Tokens::of("unused")).unwrap();
    assert_eq!(
        shared.resolve(&reference(&format!("${{vault:secret/{path}#password}}"))).await.unwrap().expose(),
        value
    );
    // A store whose token Vault refuses fails with the reference and an auth error.
    let refused = VaultSecretStore::connect(&support::config(&addr, json!({})), Path::new("."), Tokens::of("nope"))
        .await
        .unwrap();
    let e = refused.resolve(&reference(&format!("${{vault:secret/{path}#password}}"))).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Auth);
    assert!(e.message().contains(&format!("${{vault:secret/{path}#password}}")), "{e}");
    call(&h, "vault.delete_secret", json!({"mount": "secret", "path": path})).await.unwrap();
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_logs_errors_or_debug() {
    let (addr, token) = rvault();
    let logs = LogCapture::start();
    let secret = unique("s3cret-value");
    let bad_token = unique("bad-token");
    let good = handler(&addr, &token, json!({})).await;
    let bad = handler(&addr, &bad_token, json!({})).await;
    let path = unique("onex-test-logs");

    // A successful write and read: the reply has the value (the caller asked for it).
    call(&good, "vault.write_secret", json!({"mount": "secret", "path": path, "data": {"password": secret}}))
        .await
        .unwrap();
    let read = call(&good, "vault.read_secret", json!({"mount": "secret", "path": path})).await.unwrap();
    assert_eq!(read["data"]["password"], json!(secret));
    // Failing calls: a refused token reading and writing, and a write Vault rejects.
    let mut errors = Vec::new();
    errors.push(call(&bad, "vault.read_secret", json!({"mount": "secret", "path": path})).await.unwrap_err());
    errors.push(
        call(&bad, "vault.write_secret", json!({"mount": "secret", "path": path, "data": {"password": secret}}))
            .await
            .unwrap_err(),
    );
    let store =
        VaultSecretStore::connect(&support::config(&addr, json!({})), Path::new("."), Tokens::of(&bad_token)).await;
    let store = store.unwrap();
    let reference = SecretRef::parse(&format!("${{vault:secret/{path}#password}}")).unwrap();
    errors.push(store.resolve(&reference).await.unwrap_err());
    call(&good, "vault.delete_secret", json!({"mount": "secret", "path": path})).await.unwrap();
    good.shutdown().await.unwrap();
    bad.shutdown().await.unwrap();

    let text = logs.text();
    assert!(text.contains("Sending Request"), "the capture saw the client's request logs:\n{text}");
    for (what, needle) in [("the secret value", &secret), ("the token", &token), ("the refused token", &bad_token)] {
        assert!(!text.contains(needle.as_str()), "{what} was logged:\n{text}");
        for e in &errors {
            assert!(!e.to_string().contains(needle.as_str()) && !format!("{e:?}").contains(needle.as_str()), "{e}");
        }
        for debug in [format!("{good:?}"), format!("{bad:?}"), format!("{store:?}")] {
            assert!(!debug.contains(needle.as_str()), "{what} in Debug: {debug}");
        }
    }
    let config = onex_infra::handlers::vault::VaultConfig::parse(&support::config(&addr, json!({})), Path::new("."));
    assert!(format!("{:?}", config.unwrap()).contains("TEST_VAULT_TOKEN"), "Debug shows the reference, not a value");
}
