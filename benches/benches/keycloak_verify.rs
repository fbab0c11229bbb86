//! `keycloak.verify` of an RS256 token whose key is cached, against a bare
//! `jsonwebtoken::decode` of the same token with the same checks, in the same run. Issue 13's
//! target: the handler's throughput at least 0.8x the bare decode's.
//!
//! The issuer is a small axum server in this process on `127.0.0.1:0`. It serves
//! `/.well-known/openid-configuration` and the JWKS of a fixed RSA-2048 key kept for this
//! benchmark (`benches/keys/`). The handler fetches both on its first call. After a warm-up,
//! every timed call uses the cached key, and the end of the run asserts the key set was fetched
//! once. The token is a Keycloak-like access token (`iss`, `aud`, `sub`, `exp`, `iat`,
//! `realm_access.roles`, `scope`, ...).
//!
//! Method: rounds of sequential calls, one at a time. Within a round the paths take turns in
//! slices of 100 calls, so a burst of other work on the machine falls on all of them alike.
//! The figure of each path is its median per-call time over the rounds; the ratio is baseline
//! time / handler time. Two parts of the handler are timed too, not checked, to show where its
//! time goes: `JwtVerifier::verify` alone, and `execute` on an envelope built beforehand.
//! Prints one `check` line ([`onex_benches::check`]). `cargo xtask bench-check` runs it with
//! `ONEX_BENCH_QUICK=1` (fewer, shorter rounds).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use onex_benches::check::{Check, median};
use onex_core::envelope::Envelope;
use onex_infra::handlers::keycloak::KeycloakHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::Handler;
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

/// A bench-only RSA-2048 private key (PKCS#8 PEM). It was made once with `openssl genpkey
/// -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and is committed on purpose: it signs this
/// benchmark's token and nothing else, and it guards nothing.
const PRIVATE_PEM: &[u8] = include_bytes!("../keys/bench_rs256.pem");
/// The public half of [`PRIVATE_PEM`] as the JWKS the issuer serves. `n` and `e` (base64url)
/// were exported from the PEM by node's `crypto.createPublicKey(pem).export({ format: "jwk" })`.
const JWKS: &str = include_str!("../keys/bench_rs256.jwks.json");
const AUDIENCE: &str = "onex-bench";
/// The handler's default leeway, given to the baseline too.
const LEEWAY_S: u64 = 30;
/// Calls per turn of each path within a round.
const SLICE: usize = 100;

/// How much to measure: the figure of record, or a quick look for `bench-check`.
struct Sizes {
    rounds: usize,
    calls: usize,
    warmup: usize,
}

impl Sizes {
    fn from_env() -> Self {
        if onex_benches::check::quick_run() {
            Self { rounds: 3, calls: 500, warmup: 100 }
        } else {
            Self { rounds: 5, calls: 2_000, warmup: 500 }
        }
    }
}

/// The one key of [`JWKS`]: its `kid`, `n` and `e`.
fn jwk() -> (String, String, String) {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let key = &jwks["keys"][0];
    let field = |name: &str| key[name].as_str().unwrap_or_else(|| panic!("the bench JWKS has no `{name}`")).to_owned();
    (field("kid"), field("n"), field("e"))
}

/// Starts the issuer on `runtime`: discovery and the JWKS on `127.0.0.1:0`. Returns its URL.
fn serve_issuer(runtime: &Runtime) -> String {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks"),
            "token_endpoint": format!("{issuer}/token"),
        })
        .to_string();
        let json = |body: String| move || std::future::ready(([(header::CONTENT_TYPE, "application/json")], body));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(json(discovery)))
            .route("/jwks", get(json(JWKS.to_owned())));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        issuer
    })
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A Keycloak-like access token from `issuer`, signed RS256 under `kid`, valid for an hour.
fn mint(issuer: &str, kid: &str) -> String {
    let now = now();
    let claims = json!({
        "exp": now + 3600,
        "iat": now,
        "jti": "0b6f3c2e-8a41-4d7e-9c55-1f2a3b4c5d6e",
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "5f0c2a8e-6b1d-4c3e-9a7f-2d8b1e4c6a90",
        "typ": "Bearer",
        "azp": "onex-web",
        "realm_access": { "roles": ["default-roles-onex", "offline_access", "onex-operator"] },
        "scope": "openid profile onex:read",
        "preferred_username": "bench",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap()).unwrap()
}

/// The bare decode's validation. It carries the handler's checks: RS256, the issuer, the
/// audience, `nbf` checked, the same leeway, and `exp`, `iss` and `aud` required (as
/// `JwtVerifier` requires them when an audience is configured).
fn validation(issuer: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_S;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation
}

/// The bench's `keycloak.verify` request: a new envelope per call, as a request arrives.
fn request(token: &str) -> Envelope {
    Envelope::request(new_uuid_v7(), "keycloak.verify", json!({ "token": token }), now_utc())
}

fn per_call(started: Instant, calls: usize) -> f64 {
    started.elapsed().as_secs_f64() / calls as f64
}

/// Seconds per call of the bare decode over `calls` calls.
fn baseline_round(calls: usize, token: &str, key: &DecodingKey, validation: &Validation) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        black_box(jsonwebtoken::decode::<Map<String, Value>>(black_box(token), key, validation).unwrap());
    }
    per_call(started, calls)
}

/// Seconds per call of `keycloak.verify` through `execute` over `calls` calls.
async fn handler_round(calls: usize, handler: &KeycloakHandler, token: &str) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        black_box(handler.execute(&request(black_box(token))).await.unwrap());
    }
    per_call(started, calls)
}

/// Seconds per call of `JwtVerifier::verify` alone: no envelope and no reply JSON.
async fn verifier_round(calls: usize, handler: &KeycloakHandler, token: &str) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        black_box(handler.verifier().verify(black_box(token)).await.unwrap());
    }
    per_call(started, calls)
}

/// Seconds per call of `execute` on one envelope built beforehand.
async fn prebuilt_round(calls: usize, handler: &KeycloakHandler, envelope: &Envelope) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        black_box(handler.execute(black_box(envelope)).await.unwrap());
    }
    per_call(started, calls)
}

fn micros(seconds: f64) -> String {
    format!("{:.2} µs/call ({:.0} calls/s)", seconds * 1e6, 1.0 / seconds)
}

fn main() {
    let sizes = Sizes::from_env();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let issuer = serve_issuer(&runtime);
    let (kid, n, e) = jwk();
    let token = mint(&issuer, &kid);
    let key = DecodingKey::from_rsa_components(&n, &e).unwrap();
    let validation = validation(&issuer);

    let config = json!({ "issuer": issuer, "audience": [AUDIENCE] });
    let handler = KeycloakHandler::new(&config, &std::env::temp_dir(), Arc::new(EnvSecretStore)).unwrap();
    let prebuilt = request(&token);
    runtime.block_on(async {
        handler.initialize().await.unwrap();
        // The first call fetches discovery and the JWKS; the reply must carry what the bare
        // decode reads, so both paths do the same work.
        let reply = handler.execute(&request(&token)).await.unwrap();
        let bare = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation).unwrap();
        assert_eq!(reply["valid"], true, "{reply}");
        assert_eq!(reply["claims"], Value::Object(bare.claims), "the handler and the bare decode read other claims");
        assert_eq!(reply["realm_roles"], json!(["default-roles-onex", "offline_access", "onex-operator"]));
        baseline_round(sizes.warmup, &token, &key, &validation);
        handler_round(sizes.warmup, &handler, &token).await;
    });
    assert_eq!(handler.verifier().key_fetches(), 1, "the warm-up fetched the key set once");

    let (mut baseline, mut timed, mut verifier, mut prebuilt_execute) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.rounds {
        // The paths take turns slice by slice (see the module's doc).
        let mut sums = [0.0_f64; 4];
        for _ in 0..sizes.calls / SLICE {
            sums[0] += baseline_round(SLICE, &token, &key, &validation);
            runtime.block_on(async {
                sums[1] += handler_round(SLICE, &handler, &token).await;
                sums[2] += verifier_round(SLICE, &handler, &token).await;
                sums[3] += prebuilt_round(SLICE, &handler, &prebuilt).await;
            });
        }
        let slices = (sizes.calls / SLICE) as f64;
        for (figures, sum) in [&mut baseline, &mut timed, &mut verifier, &mut prebuilt_execute].into_iter().zip(sums) {
            figures.push(sum / slices);
        }
    }
    assert_eq!(handler.verifier().key_fetches(), 1, "a timed call fetched the key set again");
    let rounds: Vec<String> = baseline.iter().zip(&timed).map(|(b, h)| format!("{:.3}", b / h)).collect();
    let (baseline, timed) = (median(&mut baseline), median(&mut timed));
    let (verifier, prebuilt_execute) = (median(&mut verifier), median(&mut prebuilt_execute));

    println!(
        "keycloak.verify, RS256, cached key: {} rounds x {} sequential calls, token {} bytes",
        sizes.rounds,
        sizes.calls,
        token.len()
    );
    println!("baseline: bare jsonwebtoken::decode: {}", micros(baseline));
    println!("handler: execute(keycloak.verify), envelope built per call: {}", micros(timed));
    println!("ratio (baseline time / handler time), by round: {}", rounds.join(", "));
    println!("parts (not checked):");
    println!("  JwtVerifier::verify alone: {}", micros(verifier));
    println!("  execute on an envelope built beforehand: {}", micros(prebuilt_execute));
    println!("  verify over the bare decode (header parse, key lookup, roles): {:.2} µs", (verifier - baseline) * 1e6);
    println!("  dispatch and reply JSON over verify: {:.2} µs", (prebuilt_execute - verifier) * 1e6);
    println!("  building the envelope: {:.2} µs", (timed - prebuilt_execute) * 1e6);
    let check = Check::at_least(
        "keycloak.verify RS256 cached key / bare jsonwebtoken::decode (throughput)",
        baseline / timed,
        0.8,
    );
    println!("{check}");
}
