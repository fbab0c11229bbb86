//! The Keycloak fixture (tests/keycloak_fixture.rs) driven over raw HTTP, the way a client of a
//! real Keycloak 26 sees it: discovery, the token endpoint's grant and refusals, the admin API's
//! bearer check (revocation, expiry), users (create, read, search, update, delete, conflicts,
//! validation), realm roles and role mappings (assignment, removal, composite expansion) and the
//! answers to unknown paths, methods and unreadable bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use onex_e2e::keycloak_fixture::{KeycloakFixture, Options};
use serde_json::{Value, json};

/// One answer: status, headers, body text.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One raw HTTP/1.1 request to the fixture.
async fn send(fixture: &KeycloakFixture, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let stream = tokio::net::TcpStream::connect(fixture.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("host", fixture.addr().to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body.as_bytes()))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    driver.abort();
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const TOKEN_PATH: &str = "/realms/onex/protocol/openid-connect/token";

/// A token from the default client, authenticated by form fields.
async fn token(fixture: &KeycloakFixture) -> String {
    let body = "grant_type=client_credentials&client_id=onex-admin-cli&client_secret=onex-admin-secret";
    let reply = send(fixture, "POST", TOKEN_PATH, &[FORM], body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// An admin-API request under `/admin/realms/onex` with `token`; `body` is sent as JSON text.
async fn admin(fixture: &KeycloakFixture, token: &str, method: &str, path: &str, body: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    send(fixture, method, &format!("/admin/realms/onex{path}"), &headers, body).await
}

/// Creates a user from `rep`; returns its id (from `Location`).
async fn create_user(fixture: &KeycloakFixture, token: &str, rep: Value) -> String {
    let reply = admin(fixture, token, "POST", "/users", &rep.to_string()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let location = reply.header("location").unwrap();
    location.rsplit('/').next().unwrap().to_owned()
}

fn names(roles: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn discovery_describes_the_realm() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let reply = send(&fixture, "GET", "/realms/onex/.well-known/openid-configuration", &[], "").await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    let issuer = fixture.issuer();
    assert_eq!(issuer, format!("{}/realms/onex", fixture.base_url()));
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["token_endpoint"], format!("{issuer}/protocol/openid-connect/token"));
    assert_eq!(doc["jwks_uri"], format!("{issuer}/protocol/openid-connect/certs"));
    assert_eq!(doc["introspection_endpoint"], format!("{issuer}/protocol/openid-connect/token/introspect"));
    assert_eq!(doc["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post"]));
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));

    let certs = send(&fixture, "GET", "/realms/onex/protocol/openid-connect/certs", &[], "").await;
    assert_eq!((certs.status, certs.json()), (200, json!({"keys": []})));

    let other = send(&fixture, "GET", "/realms/other/.well-known/openid-configuration", &[], "").await;
    assert_eq!((other.status, other.json()), (404, json!({"error": "Realm does not exist"})));
    let post = send(&fixture, "POST", "/realms/onex/.well-known/openid-configuration", &[], "").await;
    assert_eq!((post.status, post.json()), (404, json!({"error": "HTTP 404 Not Found"})));
}

#[tokio::test]
async fn the_token_endpoint_issues_and_refuses_like_keycloak() {
    let fixture = KeycloakFixture::start(Options { token_ttl_secs: 120, ..Options::default() }).await;
    let basic = format!("Basic {}", BASE64.encode("onex-admin-cli:onex-admin-secret"));
    let reply =
        send(&fixture, "POST", TOKEN_PATH, &[FORM, ("authorization", basic.as_str())], "grant_type=client_credentials")
            .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 40), "{body}");
    let mut shape = body.clone();
    shape["access_token"] = json!("*");
    assert_eq!(
        shape,
        json!({"access_token": "*", "expires_in": 120, "refresh_expires_in": 0, "token_type": "Bearer",
               "not-before-policy": 0, "scope": "profile email"})
    );
    let second = token(&fixture).await;
    assert_ne!(second, body["access_token"].as_str().unwrap());
    assert_eq!(fixture.tokens_issued(), 2);

    let invalid = "Invalid client or Invalid client credentials";
    let refusals = [
        (
            "grant_type=client_credentials&client_id=onex-admin-cli&client_secret=nope",
            401,
            json!({"error": "unauthorized_client", "error_description": invalid}),
        ),
        (
            "grant_type=client_credentials&client_id=onex-admin-cli",
            401,
            json!({"error": "unauthorized_client", "error_description": invalid}),
        ),
        (
            "grant_type=client_credentials&client_id=stranger&client_secret=x",
            401,
            json!({"error": "invalid_client", "error_description": invalid}),
        ),
        (
            "grant_type=client_credentials",
            400,
            json!({"error": "invalid_client", "error_description": "Missing client_id parameter"}),
        ),
        (
            "client_id=onex-admin-cli&client_secret=onex-admin-secret",
            400,
            json!({"error": "invalid_request", "error_description": "Missing form parameter: grant_type"}),
        ),
        (
            "grant_type=password&username=a&password=b",
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}),
        ),
    ];
    for (form, status, expected) in refusals {
        let reply = send(&fixture, "POST", TOKEN_PATH, &[FORM], form).await;
        assert_eq!((reply.status, reply.json()), (status, expected), "{form}");
    }
    let wrong = format!("Basic {}", BASE64.encode("onex-admin-cli:wrong"));
    let reply =
        send(&fixture, "POST", TOKEN_PATH, &[FORM, ("authorization", wrong.as_str())], "grant_type=client_credentials")
            .await;
    assert_eq!(reply.status, 401);
    // Another scheme and no client_id in the form: a bare Basic challenge.
    let reply =
        send(&fixture, "POST", TOKEN_PATH, &[FORM, ("authorization", "Bearer x")], "grant_type=client_credentials")
            .await;
    assert_eq!((reply.status, reply.header("www-authenticate")), (401, Some("Basic realm=\"onex\"")));
    assert_eq!(fixture.tokens_issued(), 2, "refusals issue nothing");
    let get = send(&fixture, "GET", TOKEN_PATH, &[], "").await;
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn the_admin_api_wants_a_live_token() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let unauthorized = json!({"error": "HTTP 401 Unauthorized"});
    let none = send(&fixture, "GET", "/admin/realms/onex/users", &[], "").await;
    assert_eq!((none.status, none.json()), (401, unauthorized.clone()));
    let garbage = admin(&fixture, "not-a-token", "GET", "/users", "").await;
    assert_eq!((garbage.status, garbage.json()), (401, unauthorized.clone()));

    let first = token(&fixture).await;
    let ok = admin(&fixture, &first, "GET", "/users", "").await;
    assert_eq!((ok.status, ok.json()), (200, json!([])));
    assert_eq!(ok.header("content-type"), Some("application/json;charset=UTF-8"));

    fixture.revoke_tokens();
    let revoked = admin(&fixture, &first, "GET", "/users", "").await;
    assert_eq!((revoked.status, revoked.json()), (401, unauthorized.clone()));
    let fresh = token(&fixture).await;
    assert_eq!(admin(&fixture, &fresh, "GET", "/users", "").await.status, 200);
    assert_eq!(fixture.admin_requests(), 5);
    assert_eq!(fixture.tokens_issued(), 2);

    let bearer = format!("Bearer {fresh}");
    let realm = send(&fixture, "GET", "/admin/realms/elsewhere/users", &[("authorization", bearer.as_str())], "").await;
    assert_eq!((realm.status, realm.json()), (404, json!({"error": "Realm not found."})));
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let fixture = KeycloakFixture::start(Options { token_ttl_secs: 1, ..Options::default() }).await;
    let short = token(&fixture).await;
    assert_eq!(admin(&fixture, &short, "GET", "/roles", "").await.status, 200);
    // The fixture's clock is tokio's: move it past the TTL instead of waiting the TTL out.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(1200)).await;
    tokio::time::resume();
    assert_eq!(admin(&fixture, &short, "GET", "/roles", "").await.status, 401);
}

#[tokio::test]
async fn users_are_created_read_searched_updated_and_deleted() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let t = token(&fixture).await;
    let rep = json!({
        "username": "Alice.Example", "email": "Alice@Example.org", "firstName": "Alice", "lastName": "Liddell",
        "enabled": true, "attributes": {"tenant": ["acme"], "tier": ["gold", "beta"]},
        "credentials": [{"type": "password", "value": "s3cret!", "temporary": true}],
    });
    let reply = admin(&fixture, &t, "POST", "/users", &rep.to_string()).await;
    assert_eq!((reply.status, reply.body.as_str(), reply.header("content-length")), (201, "", Some("0")));
    let location = reply.header("location").unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(location, format!("{}/users/{id}", fixture.admin_url()));
    assert_eq!(id.len(), 36);

    let user = admin(&fixture, &t, "GET", &format!("/users/{id}"), "").await.json();
    let created = user["createdTimestamp"].as_u64().unwrap();
    assert!(created > 1_600_000_000_000, "{user}");
    let mut shape = user.clone();
    shape["createdTimestamp"] = json!(0);
    assert_eq!(
        shape,
        json!({"id": id, "username": "alice.example", "email": "alice@example.org", "firstName": "Alice",
               "lastName": "Liddell", "emailVerified": false, "enabled": true, "createdTimestamp": 0,
               "attributes": {"tenant": ["acme"], "tier": ["gold", "beta"]}, "totp": false,
               "disableableCredentialTypes": [], "requiredActions": ["UPDATE_PASSWORD"], "notBefore": 0,
               "access": {"manageGroupMembership": true, "resetPassword": true, "view": true, "mapRoles": true,
                          "impersonate": true, "manage": true}})
    );
    assert_eq!(fixture.password_of("ALICE.example").as_deref(), Some("s3cret!"));

    let conflicts = [
        (json!({"username": "ALICE.EXAMPLE"}), 409, json!({"errorMessage": "User exists with same username"})),
        (
            json!({"username": "other", "email": "alice@EXAMPLE.org"}),
            409,
            json!({"errorMessage": "User exists with same email"}),
        ),
        (json!({"email": "x@example.org"}), 400, json!({"errorMessage": "User name is missing"})),
        (json!({"username": "  "}), 400, json!({"errorMessage": "User name is missing"})),
        (
            json!({"username": "ab"}),
            400,
            json!({"field": "username", "errorMessage": "error-invalid-length", "params": ["username", 3, 255]}),
        ),
        (
            json!({"username": "bob", "email": "nope"}),
            400,
            json!({"field": "email", "errorMessage": "error-invalid-email", "params": ["email", "nope"]}),
        ),
        (
            json!({"username": "bob", "enabled": "yes"}),
            400,
            json!({"error": "unknown_error", "error_description": "Cannot parse the JSON"}),
        ),
        (
            json!([{"username": "bob"}]),
            400,
            json!({"error": "unknown_error", "error_description": "Cannot parse the JSON"}),
        ),
    ];
    for (body, status, expected) in conflicts {
        let reply = admin(&fixture, &t, "POST", "/users", &body.to_string()).await;
        assert_eq!((reply.status, reply.json()), (status, expected), "{body}");
    }
    let malformed = admin(&fixture, &t, "POST", "/users", "{not json").await;
    assert_eq!(
        (malformed.status, malformed.json()),
        (400, json!({"error": "invalid_request", "error_description": "Cannot parse the JSON"}))
    );
    assert_eq!(admin(&fixture, &t, "POST", "/users", "").await.status, 500);

    create_user(&fixture, &t, json!({"username": "bob", "email": "bob@example.org", "firstName": "Robert"})).await;
    create_user(&fixture, &t, json!({"username": "alicia", "lastName": "Smith"})).await;
    let list = |query: &'static str| {
        let (fixture, t) = (&fixture, &t);
        async move {
            let reply = admin(fixture, t, "GET", &format!("/users{query}"), "").await;
            assert_eq!(reply.status, 200, "{query}: {}", reply.body);
            reply
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ["alice.example", "alicia", "bob"]);
    assert_eq!(list("?username=lic").await, ["alice.example", "alicia"]);
    assert_eq!(list("?username=ALICIA&exact=true").await, ["alicia"]);
    assert!(list("?username=alic&exact=true").await.is_empty());
    assert_eq!(list("?email=example.org").await, ["alice.example", "bob"]);
    assert_eq!(list("?search=rob").await, ["bob"]);
    assert!(list("?search=obert").await.is_empty(), "search is a prefix match");
    assert_eq!(list("?search=*obert").await, ["bob"]);
    assert_eq!(list("?search=%22bob%22").await, ["bob"]);
    assert_eq!(list("?q=tier:beta").await, ["alice.example"]);
    assert_eq!(list("?enabled=true").await, ["alice.example"]);
    assert_eq!(list("?first=1&max=1").await, ["alicia"]);
    let listed = admin(&fixture, &t, "GET", "/users?username=bob", "").await.json();
    assert_eq!(listed[0]["access"], json!({"manage": true}));
    let brief = admin(&fixture, &t, "GET", "/users?username=bob&briefRepresentation=true", "").await.json();
    assert!(brief[0].get("totp").is_none() && brief[0].get("requiredActions").is_none(), "{brief}");
    let count = admin(&fixture, &t, "GET", "/users/count?search=ali", "").await;
    assert_eq!((count.status, count.body.as_str()), (200, "2"));

    // PUT merges; the username cannot change; emails stay unique.
    let put =
        json!({"username": "renamed", "firstName": "Al", "attributes": {"tenant": ["other"]}, "emailVerified": true});
    let reply = admin(&fixture, &t, "PUT", &format!("/users/{id}"), &put.to_string()).await;
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
    let user = admin(&fixture, &t, "GET", &format!("/users/{id}"), "").await.json();
    assert_eq!(
        (&user["username"], &user["firstName"], &user["lastName"], &user["emailVerified"], &user["attributes"]),
        (&json!("alice.example"), &json!("Al"), &json!("Liddell"), &json!(true), &json!({"tenant": ["other"]}))
    );
    let taken =
        admin(&fixture, &t, "PUT", &format!("/users/{id}"), &json!({"email": "BOB@example.org"}).to_string()).await;
    assert_eq!((taken.status, taken.json()), (409, json!({"errorMessage": "User exists with same email"})));
    let taken = admin(&fixture, &t, "PUT", &format!("/users/{id}"), &json!({"username": "bob"}).to_string()).await;
    assert_eq!((taken.status, taken.json()), (409, json!({"errorMessage": "User exists with same username"})));

    let deleted = admin(&fixture, &t, "DELETE", &format!("/users/{id}"), "").await;
    assert_eq!((deleted.status, deleted.header("cache-control")), (204, Some("no-cache")));
    let gone = admin(&fixture, &t, "GET", &format!("/users/{id}"), "").await;
    assert_eq!((gone.status, gone.json()), (404, json!({"error": "User not found"})));
    assert_eq!(admin(&fixture, &t, "DELETE", &format!("/users/{id}"), "").await.status, 404);
    assert_eq!(admin(&fixture, &t, "PUT", &format!("/users/{id}"), "{}").await.status, 404);
}

#[tokio::test]
async fn realm_roles_are_listed_read_and_created() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let t = token(&fixture).await;
    let roles = admin(&fixture, &t, "GET", "/roles", "").await.json();
    assert_eq!(
        names(&roles),
        ["default-roles-onex", "offline_access", "onex-operator", "onex-viewer", "uma_authorization"]
    );
    let default = roles.as_array().unwrap().iter().find(|r| r["name"] == "default-roles-onex").unwrap();
    assert_eq!((&default["composite"], &default["clientRole"]), (&json!(true), &json!(false)));
    assert!(default.get("attributes").is_none(), "listings are brief: {default}");
    let realm_id = default["containerId"].as_str().unwrap();
    assert!(roles.as_array().unwrap().iter().all(|r| r["containerId"] == realm_id));

    let operator = admin(&fixture, &t, "GET", "/roles/onex-operator", "").await.json();
    assert_eq!(operator["composite"], false);
    assert_eq!(operator["attributes"], json!({}));
    assert!(operator.get("description").is_none(), "{operator}");
    let unknown = admin(&fixture, &t, "GET", "/roles/nope", "").await;
    assert_eq!((unknown.status, unknown.json()), (404, json!({"error": "Could not find role"})));

    let body = json!({"name": "onex admin", "description": "Administers onex"}).to_string();
    let made = admin(&fixture, &t, "POST", "/roles", &body).await;
    assert_eq!(made.status, 201);
    assert_eq!(made.header("location"), Some(format!("{}/roles/onex%20admin", fixture.admin_url()).as_str()));
    let read = admin(&fixture, &t, "GET", "/roles/onex%20admin", "").await.json();
    assert_eq!(read["description"], "Administers onex");
    let again = admin(&fixture, &t, "POST", "/roles", &body).await;
    assert_eq!(
        (again.status, again.json()),
        (409, json!({"errorMessage": "Role with name onex admin already exists"}))
    );
    let nameless = admin(&fixture, &t, "POST", "/roles", "{}").await;
    assert_eq!((nameless.status, nameless.json()), (400, json!({"error": "role has no name"})));
    let found = admin(&fixture, &t, "GET", "/roles?search=ADMINISTERS", "").await.json();
    assert_eq!(names(&found), ["onex admin"]);
}

#[tokio::test]
async fn role_mappings_are_granted_removed_and_expanded() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let t = token(&fixture).await;
    let id = create_user(&fixture, &t, json!({"username": "carol", "enabled": true})).await;
    let mappings = format!("/users/{id}/role-mappings");

    let all = admin(&fixture, &t, "GET", &mappings, "").await.json();
    assert_eq!(all.as_object().unwrap().keys().collect::<Vec<_>>(), ["realmMappings"], "{all}");
    assert_eq!(names(&all["realmMappings"]), ["default-roles-onex"]);
    let effective = admin(&fixture, &t, "GET", &format!("{mappings}/realm/composite"), "").await.json();
    assert_eq!(names(&effective), ["default-roles-onex", "offline_access", "uma_authorization"]);

    let operator = admin(&fixture, &t, "GET", "/roles/onex-operator", "").await.json();
    let grant = json!([{"id": operator["id"], "name": "onex-operator"}]).to_string();
    for _ in 0..2 {
        let reply = admin(&fixture, &t, "POST", &format!("{mappings}/realm"), &grant).await;
        assert_eq!((reply.status, reply.body.as_str()), (204, ""), "granting twice is a no-op");
    }
    let direct = admin(&fixture, &t, "GET", &format!("{mappings}/realm"), "").await.json();
    assert_eq!(names(&direct), ["default-roles-onex", "onex-operator"]);
    let effective = admin(&fixture, &t, "GET", &format!("{mappings}/realm/composite"), "").await.json();
    assert_eq!(names(&effective), ["default-roles-onex", "offline_access", "onex-operator", "uma_authorization"]);
    let available = admin(&fixture, &t, "GET", &format!("{mappings}/realm/available"), "").await.json();
    assert_eq!(names(&available), ["offline_access", "onex-viewer", "uma_authorization"]);

    // Keycloak looks roles up by name and wants the matching id; a bad entry refuses the batch.
    let viewer = admin(&fixture, &t, "GET", "/roles/onex-viewer", "").await.json();
    let not_found = json!({"error": "Role not found"});
    for body in [
        json!([{"name": "onex-viewer"}]),
        json!([{"id": viewer["id"]}]),
        json!([{"id": operator["id"], "name": "onex-viewer"}]),
        json!([{"id": viewer["id"], "name": "onex-viewer"}, {"id": "00000000-0000-0000-0000-000000000000", "name": "ghost"}]),
    ] {
        let reply = admin(&fixture, &t, "POST", &format!("{mappings}/realm"), &body.to_string()).await;
        assert_eq!((reply.status, reply.json()), (404, not_found.clone()), "{body}");
    }
    let direct = admin(&fixture, &t, "GET", &format!("{mappings}/realm"), "").await.json();
    assert_eq!(names(&direct), ["default-roles-onex", "onex-operator"], "a refused batch changes nothing");
    let shape = admin(&fixture, &t, "POST", &format!("{mappings}/realm"), &json!({"name": "x"}).to_string()).await;
    assert_eq!(
        (shape.status, shape.json()),
        (400, json!({"error": "unknown_error", "error_description": "Cannot parse the JSON"}))
    );

    let removed = admin(&fixture, &t, "DELETE", &format!("{mappings}/realm"), &grant).await;
    assert_eq!(removed.status, 204);
    let direct = admin(&fixture, &t, "GET", &format!("{mappings}/realm"), "").await.json();
    assert_eq!(names(&direct), ["default-roles-onex"]);
    assert_eq!(admin(&fixture, &t, "DELETE", &format!("{mappings}/realm"), &grant).await.status, 204);

    // DELETE without a body removes every realm mapping; the combined view is then `{}`.
    assert_eq!(admin(&fixture, &t, "DELETE", &format!("{mappings}/realm"), "").await.status, 204);
    assert_eq!(admin(&fixture, &t, "GET", &mappings, "").await.json(), json!({}));
    assert_eq!(admin(&fixture, &t, "GET", &format!("{mappings}/realm/composite"), "").await.json(), json!([]));

    let ghost = admin(&fixture, &t, "GET", "/users/00000000-0000-0000-0000-000000000000/role-mappings", "").await;
    assert_eq!((ghost.status, ghost.json()), (404, json!({"error": "User not found"})));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_keycloak() {
    let fixture = KeycloakFixture::start(Options::default()).await;
    let t = token(&fixture).await;
    let unmatched = json!({"error": "Unable to find matching target resource method"});
    let reply = send(&fixture, "GET", "/nowhere", &[], "").await;
    assert_eq!((reply.status, reply.json()), (404, unmatched.clone()));
    let reply = admin(&fixture, &t, "GET", "/clients", "").await;
    assert_eq!((reply.status, reply.json()), (404, unmatched.clone()));
    let id = create_user(&fixture, &t, json!({"username": "dave"})).await;
    let reply = admin(&fixture, &t, "PATCH", &format!("/users/{id}"), "{}").await;
    assert_eq!((reply.status, reply.json()), (405, json!({"error": "HTTP 405 Method Not Allowed"})));
    let reply = admin(&fixture, &t, "DELETE", "/roles", "").await;
    assert_eq!(reply.status, 405);
}
