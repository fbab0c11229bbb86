//! The keycloak handler against a real OpenID Connect provider (oidc-provider 8, started by
//! `cargo xtask services up`): tokens obtained and cached, verified end to end, every refusal
//! with its own code, a key rotation picked up without a restart, the password grant, refresh,
//! userinfo and introspection, and no secret in logs, errors or `Debug`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod keycloak_support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use keycloak_support::*;
use onex_infra::error::codes;
use serde_json::{Value, json};

#[tokio::test]
async fn a_client_credentials_token_is_obtained_once_cached_and_verified_end_to_end() {
    let handler = handler(config(&issuer(), json!({}))).await;
    let first = execute(&handler, "keycloak.token", json!({})).await.unwrap();
    assert_eq!((first["token_type"].as_str(), first["cached"].as_bool()), (Some("Bearer"), Some(false)), "{first}");
    assert!(first["expires_in"].as_u64().unwrap() > 200, "{first}");
    let again = execute(&handler, "keycloak.token", json!({ "scope": [] })).await.unwrap();
    assert_eq!(again["cached"], true);
    assert_eq!(again["access_token"], first["access_token"], "the cached token is served until shortly before expiry");
    assert_eq!(handler.tokens_granted(), 1);
    // Another scope set is another token.
    let narrow = execute(&handler, "keycloak.token", json!({ "scope": "onex:read" })).await.unwrap();
    assert_eq!((narrow["cached"].as_bool(), narrow["scope"].as_str()), (Some(false), Some("onex:read")), "{narrow}");

    let token = first["access_token"].as_str().unwrap();
    let verified = execute(&handler, "keycloak.verify", json!({ "token": token })).await.unwrap();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["issuer"], issuer());
    assert_eq!(verified["audience"], AUDIENCE);
    assert_eq!(verified["subject"], SERVICE_CLIENT.0);
    let scopes: Vec<&str> = verified["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(scopes, ["onex:ingress", "onex:read", "onex:metrics"], "{verified}");
    assert_eq!(handler.verifier().key_fetches(), 1, "the key set is fetched once and cached");
    execute(&handler, "keycloak.verify", json!({ "token": token })).await.unwrap();
    assert_eq!(handler.verifier().key_fetches(), 1);
}

#[tokio::test]
async fn every_refusal_has_its_own_code_and_an_unknown_kid_costs_one_refresh() {
    let issuer = issuer();
    let handler = handler(config(&issuer, json!({ "leeway_s": 30 }))).await;
    let verify = |token: String| {
        let handler = &handler;
        async move { execute(handler, "keycloak.verify", json!({ "token": token })).await }
    };
    // Positive control: a token minted with the provider's key and sound claims verifies.
    let sound = claims(&issuer);
    verify(mint(&sound)).await.unwrap();

    let with = |changes: Value| {
        let mut claims = sound.clone();
        claims.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        claims
    };
    let now = now();
    let mut no_exp = sound.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let valid = mint(&sound);
    let (head, rest) = valid.split_once('.').unwrap();
    let (body, signature) = rest.split_once('.').unwrap();
    let flipped =
        if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", mint(&with(json!({ "exp": now - 120 }))), codes::TOKEN_EXPIRED.as_str()),
        ("not yet valid", mint(&with(json!({ "nbf": now + 600 }))), codes::TOKEN_NOT_YET_VALID.as_str()),
        ("wrong issuer", mint(&with(json!({ "iss": "http://127.0.0.1:1" }))), codes::TOKEN_WRONG_ISSUER.as_str()),
        ("wrong audience", mint(&with(json!({ "aud": "someone-else" }))), codes::TOKEN_WRONG_AUDIENCE.as_str()),
        ("alg none", unsigned(&sound), codes::TOKEN_ALGORITHM_REFUSED.as_str()),
        ("HS256 with the public key", mint_hs256_with_public_key(&sound), codes::TOKEN_ALGORITHM_REFUSED.as_str()),
        ("tampered signature", format!("{head}.{body}.{flipped}"), codes::TOKEN_BAD_SIGNATURE.as_str()),
        (
            "tampered claims",
            format!("{head}.{}.{signature}", mint(&with(json!({"sub": "root"}))).split('.').nth(1).unwrap()),
            codes::TOKEN_BAD_SIGNATURE.as_str(),
        ),
        ("no exp", mint(&no_exp), codes::TOKEN_MISSING_CLAIM.as_str()),
        ("not a JWT", "not-a-jwt".to_owned(), codes::TOKEN_MALFORMED.as_str()),
    ];
    for (case, token, code) in cases {
        let e = verify(token.clone()).await.expect_err(case);
        assert_eq!(e.code(), code, "{case}: {e}");
        assert!(!e.message().contains(&token), "{case}: the error quotes the token");
    }

    let fetches = handler.verifier().key_fetches();
    let keys = setting("ONEX_OIDC_KEYS");
    let unknown = mint_with(Path::new(&keys), &sound, Some("no-such-kid"));
    let e = verify(unknown.clone()).await.unwrap_err();
    assert_eq!(e.code(), codes::TOKEN_KEY_UNKNOWN.as_str(), "{e}");
    assert_eq!(handler.verifier().key_fetches(), fetches + 1, "an unknown kid refreshes the key set once");
    let e = verify(unknown).await.unwrap_err();
    assert_eq!(e.code(), codes::TOKEN_KEY_UNKNOWN.as_str(), "{e}");
    assert_eq!(handler.verifier().key_fetches(), fetches + 1, "refreshes are rate-limited");
}

#[tokio::test]
async fn a_rotated_signing_key_is_picked_up_without_a_restart() {
    let mut provider = OwnProvider::start();
    let handler = handler(config(&provider.issuer(), json!({ "jwks_refresh_min_interval_ms": 0 }))).await;
    let old = provider_token(&provider.issuer(), SERVICE_CLIENT, None);
    execute(&handler, "keycloak.verify", json!({ "token": old })).await.unwrap();

    provider.restart_with_new_key();
    let new = provider_token(&provider.issuer(), SERVICE_CLIENT, None);
    assert_ne!(current_kid(&provider.keys), "", "a new key");
    let verified = execute(&handler, "keycloak.verify", json!({ "token": new })).await.unwrap();
    assert_eq!(verified["valid"], true);
    assert_eq!(handler.verifier().key_fetches(), 2, "the new kid fetched the key set again");
    let e = execute(&handler, "keycloak.verify", json!({ "token": old })).await.unwrap_err();
    assert_eq!(e.code(), codes::TOKEN_KEY_UNKNOWN.as_str(), "the retired key no longer verifies: {e}");
}

#[tokio::test]
async fn the_password_grant_refresh_userinfo_and_introspection_work_against_the_provider() {
    let handler = handler(config(&issuer(), json!({}))).await;
    let scope = "openid offline_access profile email";
    let payload = json!({ "grant": "password", "username": ALICE.0, "password": ALICE.1, "scope": scope });
    let tokens = execute(&handler, "keycloak.token", payload).await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().expect("offline_access gives a refresh token");

    let me = execute(&handler, "keycloak.userinfo", json!({ "access_token": access })).await.unwrap();
    assert_eq!((me["sub"].as_str(), me["email"].as_str()), (Some("alice-0001"), Some("alice@example.test")), "{me}");

    let renewed = execute(&handler, "keycloak.token", json!({ "grant": "refresh_token", "refresh_token": refresh }))
        .await
        .unwrap();
    let access2 = renewed["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    let me2 = execute(&handler, "keycloak.userinfo", json!({ "access_token": access2 })).await.unwrap();
    assert_eq!(me2["preferred_username"], "alice");

    let active = execute(&handler, "keycloak.introspect", json!({ "token": access2 })).await.unwrap();
    assert_eq!((active["active"].as_bool(), active["sub"].as_str()), (Some(true), Some("alice-0001")), "{active}");
    let inactive = execute(&handler, "keycloak.introspect", json!({ "token": "garbage" })).await.unwrap();
    assert_eq!(inactive["active"], false);

    let wrong = json!({ "grant": "password", "username": ALICE.0, "password": "not-her-password" });
    let e = execute(&handler, "keycloak.token", wrong).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_REJECTED.as_str(), "{e}");
    assert!(e.message().contains("invalid_grant") && !e.message().contains("not-her-password"), "{e}");
    let e = execute(&handler, "keycloak.userinfo", json!({ "access_token": "garbage" })).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_DENIED.as_str(), "{e}");

    let strict = keycloak_support::handler(config(&issuer(), json!({ "allow_password_grant": false }))).await;
    let e = execute(&strict, "keycloak.token", json!({ "grant": "password", "username": "alice", "password": "x" }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_REJECTED.as_str());
    assert!(e.message().contains("allow_password_grant"), "{e}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_passwords_and_client_secrets_never_reach_logs_errors_or_debug() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let handler = handler(config(&issuer(), json!({}))).await;
    let token = execute(&handler, "keycloak.token", json!({})).await.unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let payload =
        json!({ "grant": "password", "username": ALICE.0, "password": ALICE.1, "scope": "openid offline_access" });
    let user = execute(&handler, "keycloak.token", payload).await.unwrap();
    let refresh = user["refresh_token"].as_str().unwrap().to_owned();
    let mut errors = Vec::new();
    for (op, payload) in [
        ("keycloak.token", json!({ "grant": "password", "username": "alice", "password": "wrong-secret-pw" })),
        ("keycloak.token", json!({ "grant": "password", "username": "alice", "password": 12345 })),
        ("keycloak.verify", json!({ "token": format!("{access}x") })),
        ("keycloak.introspect", json!({ "token": access, "extra": 1 })),
        ("keycloak.userinfo", json!({ "access_token": access })),
    ] {
        if let Err(e) = execute(&handler, op, payload).await {
            errors.push(format!("{e} {e:?}"));
        }
    }
    assert!(errors.len() >= 4, "the refusals happened: {errors:?}");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // Positive control: the exchanges with the provider were logged, token endpoint included.
    assert!(logs.contains("http exchange") && logs.contains("/token"), "nothing was captured:\n{logs}");
    let everything = format!("{logs}\n{}\n{handler:?}", errors.join("\n"));
    for secret in [SERVICE_CLIENT.1, ALICE.1, "wrong-secret-pw", access.as_str(), refresh.as_str()] {
        assert!(!everything.contains(secret), "a secret leaked: {secret}\n{everything}");
    }
    assert!(!errors.join("\n").contains("12345"), "a password of the wrong type is not quoted: {errors:?}");
}
