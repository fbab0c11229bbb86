//! The keycloak handler's Admin REST API operations against the in-repo Keycloak fixture
//! (`onex_e2e::keycloak_fixture`, which follows Keycloak's documented Admin REST API; Keycloak
//! itself cannot run here): users created and read, realm roles assigned, listed and removed,
//! Keycloak's refusals as the handler's codes, and the handler's own admin token reused and
//! renewed once when Keycloak stops taking it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use onex_core::contract::SecretRef;
use onex_core::envelope::Envelope;
use onex_core::secret::Secret;
use onex_e2e::keycloak_fixture::{KeycloakFixture, Options};
use onex_infra::error::codes;
use onex_infra::handlers::keycloak::KeycloakHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_spi::{Handler, SecretStore, SpiResult, async_trait};
use serde_json::{Value, json};

struct FixtureSecret;

#[async_trait]
impl SecretStore for FixtureSecret {
    async fn resolve(&self, _: &SecretRef) -> SpiResult<Secret> {
        Ok(Secret::new(Options::default().client_secret))
    }
}

async fn setup() -> (KeycloakFixture, KeycloakHandler) {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let config = json!({
        "issuer": fixture.issuer(),
        "client_id": fixture.options().client_id,
        "client_secret": "${env:KEYCLOAK_ADMIN_SECRET}",
    });
    let handler = KeycloakHandler::new(&config, &std::env::temp_dir(), Arc::new(FixtureSecret)).unwrap();
    handler.initialize().await.unwrap();
    (fixture, handler)
}

async fn run(handler: &KeycloakHandler, operation: &str, payload: Value) -> SpiResult<Value> {
    handler.execute(&Envelope::request(new_uuid_v7(), operation, payload, now_utc())).await
}

#[tokio::test]
async fn a_user_is_created_read_and_given_and_relieved_of_realm_roles() {
    let (fixture, handler) = setup().await;
    let created = run(
        &handler,
        "keycloak.create_user",
        json!({ "username": "Bob", "email": "bob@example.test", "first_name": "Bob", "password": "b0b-initial",
                "temporary_password": true, "attributes": { "team": ["infra"] } }),
    )
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["username"], "bob", "Keycloak keeps usernames in lower case");
    assert_eq!(fixture.password_of("bob").as_deref(), Some("b0b-initial"), "the password reached Keycloak");

    let by_id = run(&handler, "keycloak.get_user", json!({ "id": id })).await.unwrap();
    assert_eq!(
        (by_id["email"].as_str(), by_id["enabled"].as_bool()),
        (Some("bob@example.test"), Some(true)),
        "{by_id}"
    );
    assert!(by_id.get("credentials").is_none(), "Keycloak never returns credentials");
    let by_name = run(&handler, "keycloak.get_user", json!({ "username": "bob" })).await.unwrap();
    assert_eq!(by_name["id"], id.as_str());

    let assigned = run(
        &handler,
        "keycloak.assign_realm_role",
        json!({ "user_id": id, "roles": ["onex-operator", "onex-viewer"] }),
    )
    .await
    .unwrap();
    let direct: Vec<&str> = assigned["realm_roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(direct, ["default-roles-onex", "onex-operator", "onex-viewer"], "{assigned}");

    let effective =
        run(&handler, "keycloak.list_user_roles", json!({ "user_id": id, "effective": true })).await.unwrap();
    let effective: Vec<&str> =
        effective["realm_roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(effective.contains(&"offline_access") && effective.contains(&"onex-viewer"), "{effective:?}");

    let removed =
        run(&handler, "keycloak.remove_realm_role", json!({ "user_id": id, "role": "onex-viewer" })).await.unwrap();
    let listed = run(&handler, "keycloak.list_user_roles", json!({ "user_id": id })).await.unwrap();
    assert_eq!(listed["realm_roles"], removed["realm_roles"]);
    assert_eq!(listed["realm_roles"], json!(["default-roles-onex", "onex-operator"]));
    assert_eq!(fixture.tokens_issued(), 1, "one admin token served every call");
}

#[tokio::test]
async fn keycloak_refusals_become_the_handlers_codes_naming_what_was_wrong() {
    let (_fixture, handler) = setup().await;
    run(&handler, "keycloak.create_user", json!({ "username": "carol" })).await.unwrap();
    let e = run(&handler, "keycloak.create_user", json!({ "username": "carol" })).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_CONFLICT.as_str(), "{e}");
    assert!(e.message().contains("User exists with same username"), "{e}");

    let e =
        run(&handler, "keycloak.get_user", json!({ "id": "00000000-0000-4000-8000-000000000000" })).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_NOT_FOUND.as_str(), "{e}");
    let e = run(&handler, "keycloak.get_user", json!({ "username": "nobody" })).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_NOT_FOUND.as_str(), "{e}");

    let carol = run(&handler, "keycloak.get_user", json!({ "username": "carol" })).await.unwrap();
    let e = run(&handler, "keycloak.assign_realm_role", json!({ "user_id": carol["id"], "role": "no-such-role" }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_NOT_FOUND.as_str());
    assert!(e.message().contains("no-such-role"), "{e}");

    let e = run(&handler, "keycloak.get_user", json!({ "id": "x", "username": "y" })).await.unwrap_err();
    assert_eq!(e.code(), codes::BAD_PAYLOAD.as_str(), "{e}");
    // A value no envelope id (random hex) will hold by chance: the message must not quote it.
    let password = 73_519_246_801_357_u64;
    let e =
        run(&handler, "keycloak.create_user", json!({ "username": "dave", "password": password })).await.unwrap_err();
    assert_eq!(e.code(), codes::BAD_PAYLOAD.as_str());
    assert!(e.message().contains("`password`") && !e.message().contains(&password.to_string()), "{e}");
}

#[tokio::test]
async fn a_revoked_admin_token_is_replaced_once_and_the_call_goes_through() {
    let (fixture, handler) = setup().await;
    run(&handler, "keycloak.create_user", json!({ "username": "erin" })).await.unwrap();
    assert_eq!(fixture.tokens_issued(), 1);
    fixture.revoke_tokens();
    let erin = run(&handler, "keycloak.get_user", json!({ "username": "erin" })).await.unwrap();
    assert_eq!(erin["username"], "erin");
    assert_eq!(fixture.tokens_issued(), 2, "a 401 costs one new token, not one per call");
    run(&handler, "keycloak.get_user", json!({ "username": "erin" })).await.unwrap();
    assert_eq!(fixture.tokens_issued(), 2);
}

#[tokio::test]
async fn wrong_client_credentials_are_denied() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let config = json!({ "issuer": fixture.issuer(), "client_id": "intruder", "client_secret": "${env:X}" });
    let handler = KeycloakHandler::new(&config, &std::env::temp_dir(), Arc::new(FixtureSecret)).unwrap();
    handler.initialize().await.unwrap();
    let e = run(&handler, "keycloak.get_user", json!({ "username": "x" })).await.unwrap_err();
    assert_eq!(e.code(), codes::KEYCLOAK_DENIED.as_str(), "{e}");
}
