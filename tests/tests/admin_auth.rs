//! Who may call the admin API of a running `onex-runtime-host`: bearer JWTs from a real OpenID
//! provider checked per route (401 without or with a bad token, 403 without the route's scope,
//! 200 with it, both counted in `/metrics`), a static token, `/health/*` always open, `auth:
//! none` refused off loopback, and no token in the host's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod keycloak_support;

use std::process::{Command, Stdio};

use keycloak_support::{LIMITED_CLIENT, SERVICE_CLIENT, issuer, provider_token};
use onex_e2e::host::{HostOptions, HostProcess, envelope, http_with};
use onex_e2e::{contracts_with, host_binary, runtime_config_with_admin, scratch_dir};
use serde_json::{Value, json};

fn host_with_admin(name: &str, admin: &str, env: &[(&str, &str)]) -> HostProcess {
    let config = runtime_config_with_admin(admin);
    let contracts = contracts_with(name, &[("runtime/runtime_config.yaml", &config)]);
    let mut options = HostOptions::new(&contracts, &scratch_dir(name));
    for (k, v) in env {
        options = options.env(k, v);
    }
    HostProcess::start(&options)
}

/// `(status, body as JSON or Null)` of one request carrying `token` as a bearer token.
fn call(host: &HostProcess, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let body = body.map(Value::to_string);
    http_with(&host.addr, method, path, &headers, body.as_deref().map(str::as_bytes))
}

fn refused_count(metrics: &str, route: &str, status: u16) -> f64 {
    let series = format!("onex_admin_auth_refused_total{{route=\"{route}\",status=\"{status}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(-1.0)
}

#[test]
fn bearer_tokens_are_checked_per_route_and_refusals_are_counted() {
    let issuer = issuer();
    let admin = format!(
        "  auth:\n    bearer:\n      issuer: {issuer}\n      audience: [onex-admin]\n      routes:\n        \
         ingress: [\"onex:ingress\"]\n        state_read: [\"onex:read\"]\n        workflow_read: [\"onex:read\"]\n        \
         metrics: [\"onex:metrics\"]"
    );
    let host = host_with_admin("admin-bearer", &admin, &[]);
    let full = provider_token(&issuer, SERVICE_CLIENT, None);
    let limited = provider_token(&issuer, LIMITED_CLIENT, None);
    let echo = envelope("local.echo", json!({ "hello": "admin" }));

    let (status, body) = call(&host, "POST", "/v1/envelopes", None, Some(&echo));
    assert_eq!(status, 401, "no token: {body}");
    assert!(body.contains("ONEX_INFRA_110_ADMIN_UNAUTHENTICATED"), "{body}");
    let (status, body) = call(&host, "POST", "/v1/envelopes", Some("not-a-jwt"), Some(&echo));
    assert_eq!(status, 401, "a bad token: {body}");
    assert!(body.contains("ONEX_INFRA_100_TOKEN_MALFORMED"), "the reason is named: {body}");
    let (status, body) = call(&host, "POST", "/v1/envelopes", Some(&limited), Some(&echo));
    assert_eq!(status, 403, "a token without onex:ingress: {body}");
    assert!(body.contains("ONEX_INFRA_111_ADMIN_FORBIDDEN") && body.contains("onex:ingress"), "{body}");
    let (status, body) = call(&host, "POST", "/v1/envelopes", Some(&full), Some(&echo));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hello\":\"admin\""), "{body}");

    // onex:read is enough to read state and runs (the lookups themselves answer 404 here).
    let (status, body) = call(&host, "GET", "/v1/state/no_such_fsm/k", Some(&limited), None);
    assert_eq!(status, 404, "{body}");
    let (status, _) = call(&host, "GET", "/v1/state/no_such_fsm/k", None, None);
    assert_eq!(status, 401);
    let (status, _) = call(&host, "GET", "/metrics", Some(&limited), None);
    assert_eq!(status, 403, "metrics needs onex:metrics");
    let (status, _) = call(&host, "GET", "/health/live", None, None);
    assert_eq!(status, 200, "health stays open");
    let (status, _) = call(&host, "GET", "/health/ready", None, None);
    assert_eq!(status, 200, "health stays open");

    let (status, metrics) = call(&host, "GET", "/metrics", Some(&full), None);
    assert_eq!(status, 200);
    assert_eq!(refused_count(&metrics, "ingress", 401), 2.0, "{metrics}");
    assert_eq!(refused_count(&metrics, "ingress", 403), 1.0, "{metrics}");
    assert_eq!(refused_count(&metrics, "state_read", 401), 1.0, "{metrics}");
    assert_eq!(refused_count(&metrics, "metrics", 403), 1.0, "{metrics}");

    let logs = host.logs();
    assert!(logs.contains("admin API request refused"), "positive control: refusals are logged\n{logs}");
    for token in [&full, &limited] {
        assert!(!logs.contains(token.as_str()), "a token reached the logs");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token's signature reached the logs");
    }
}

#[test]
fn a_static_token_guards_every_route_but_health() {
    const TOKEN: &str = "static-admin-token-0123456789abcdef";
    let admin = "  auth: {static_token: \"${env:ONEX_TEST_ADMIN_TOKEN}\"}";
    let host = host_with_admin("admin-static", admin, &[("ONEX_TEST_ADMIN_TOKEN", TOKEN)]);
    let echo = envelope("local.echo", json!({}));
    assert_eq!(call(&host, "POST", "/v1/envelopes", None, Some(&echo)).0, 401);
    assert_eq!(call(&host, "POST", "/v1/envelopes", Some("static-admin-token-0123456789abcdeX"), Some(&echo)).0, 401);
    assert_eq!(call(&host, "POST", "/v1/envelopes", Some(TOKEN), Some(&echo)).0, 200);
    assert_eq!(call(&host, "GET", "/metrics", Some(TOKEN), None).0, 200);
    assert_eq!(call(&host, "GET", "/health/live", None, None).0, 200);
    let logs = host.logs();
    assert!(logs.contains("admin_auth") && logs.contains("static_token"), "the mode is logged at start\n{logs}");
    assert!(!logs.contains(TOKEN) && !logs.contains("0123456789abcde"), "the token reached the logs");
}

#[test]
fn the_host_refuses_to_start_with_auth_none_off_loopback() {
    let contracts = contracts_with("admin-none", &[]);
    let output = Command::new(host_binary())
        .args(["run", "--admin-addr", "0.0.0.0:0", "--contracts"])
        .arg(&contracts)
        .arg("--data-dir")
        .arg(scratch_dir("admin-none-data"))
        .env_remove("ONEX_ADMIN_ADDR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "it must not serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ONEX_INFRA_112_ADMIN_CONFIG") && stderr.contains("loopback"), "{stderr}");
}

#[test]
fn a_well_formed_token_is_answered_503_while_the_issuer_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let issuer = format!("http://{closed}");
    let admin = format!("  auth:\n    bearer:\n      issuer: {issuer}\n      audience: [onex-admin]");
    let host = host_with_admin("admin-issuer-down", &admin, &[]);
    let token = keycloak_support::mint(&keycloak_support::claims(&issuer));
    let (status, body) = call(&host, "GET", "/v1/state/x/y", Some(&token), None);
    assert_eq!(status, 503, "the caller is not at fault: {body}");
    assert!(body.contains("ONEX_INFRA_091_KEYCLOAK_UNAVAILABLE"), "{body}");
    let (status, _) = call(&host, "GET", "/v1/state/x/y", Some("not-a-jwt"), None);
    assert_eq!(status, 401, "a malformed token is refused without asking the issuer");
}
