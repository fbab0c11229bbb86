//! Helpers of the keycloak handler tests against the OpenID provider `cargo xtask services up`
//! starts (oidc-provider 8, `xtask/oidc/server.mjs`): building the handler, running operations,
//! minting tokens with the provider's own signing key, and a private provider instance the test
//! restarts with a new key.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use onex_core::contract::SecretRef;
use onex_core::envelope::Envelope;
use onex_core::secret::Secret;
use onex_e2e::service_setting;
use onex_infra::handlers::keycloak::KeycloakHandler;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{Handler, SecretStore, SpiResult, async_trait};
use serde_json::{Value, json};

/// The provider's confidential client with every scope and the password grant.
pub const SERVICE_CLIENT: (&str, &str) = ("onex-service", "onex-service-secret");
/// A client that may only get `onex:read`.
pub const LIMITED_CLIENT: (&str, &str) = ("onex-limited", "onex-limited-secret");
/// The provider's one account.
pub const ALICE: (&str, &str) = ("alice", "alice-password");
/// The audience of the provider's JWT access tokens.
pub const AUDIENCE: &str = "onex-admin";

/// A `services up` setting; fails naming the command when it is missing.
pub fn setting(key: &str) -> String {
    let value = service_setting(key, "");
    assert!(!value.is_empty(), "no {key}: run `cargo xtask services up` first (it starts the OpenID provider)");
    value
}

/// The shared provider's issuer.
pub fn issuer() -> String {
    setting("ONEX_OIDC_ISSUER")
}

/// Resolves `${env:ONEX_TEST_OIDC_SECRET}` to the service client's secret without touching the
/// process environment.
struct TestSecrets;

#[async_trait]
impl SecretStore for TestSecrets {
    async fn resolve(&self, reference: &SecretRef) -> SpiResult<Secret> {
        match reference {
            SecretRef::Env(name) if name == "ONEX_TEST_OIDC_SECRET" => Ok(Secret::new(SERVICE_CLIENT.1)),
            other => EnvSecretStore.resolve(other).await,
        }
    }
}

/// The handler's config for `issuer`: the service client, audience `onex-admin`, the password
/// grant allowed; `extra` fields added or replaced.
pub fn config(issuer: &str, extra: Value) -> Value {
    let mut config = json!({
        "issuer": issuer,
        "client_id": SERVICE_CLIENT.0,
        "client_secret": "${env:ONEX_TEST_OIDC_SECRET}",
        "audience": [AUDIENCE],
        "allow_password_grant": true,
    });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    config
}

/// An initialised handler for `config`.
pub async fn handler(config: Value) -> KeycloakHandler {
    let handler = KeycloakHandler::new(&config, &std::env::temp_dir(), Arc::new(TestSecrets)).unwrap();
    handler.initialize().await.unwrap();
    handler
}

/// Runs `operation` with `payload`.
pub async fn execute(handler: &dyn Handler, operation: &str, payload: Value) -> SpiResult<Value> {
    let envelope = Envelope::request(new_uuid_v7(), operation, payload, now_utc());
    handler.execute(&envelope).await
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims like the provider's access tokens: issuer, audience, an hour to live.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({ "iss": issuer, "aud": AUDIENCE, "sub": "minted", "iat": now, "exp": now + 3600, "scope": "onex:read" })
}

/// The signing key files the provider wrote beside `keys` (`keys.json`).
fn pem_beside(keys: &Path, suffix: &str) -> Vec<u8> {
    let path = keys.with_file_name(format!("keys{suffix}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `kid` of the provider's current key (from its keys file).
pub fn current_kid(keys: &Path) -> String {
    let jwks: Value = serde_json::from_slice(&std::fs::read(keys).unwrap()).unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
}

/// `claims` signed RS256 with the provider's own key, under `kid` (its real one if `None`).
pub fn mint_with(keys: &Path, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.map_or_else(|| current_kid(keys), str::to_owned));
    let key = EncodingKey::from_rsa_pem(&pem_beside(keys, ".pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// `claims` signed by the shared provider's key.
pub fn mint(claims: &Value) -> String {
    mint_with(Path::new(&setting("ONEX_OIDC_KEYS")), claims, None)
}

/// `claims` "signed" HS256 with the provider's public key as the HMAC secret (the algorithm
/// confusion attack), under the real `kid`.
pub fn mint_hs256_with_public_key(claims: &Value) -> String {
    let keys = PathBuf::from(setting("ONEX_OIDC_KEYS"));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(current_kid(&keys));
    let key = EncodingKey::from_secret(&pem_beside(&keys, ".pub.pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64.encode(claims.to_string()))
}

/// A token from the provider's token endpoint for `client` (client credentials, HTTP Basic).
pub fn provider_token(issuer: &str, client: (&str, &str), scope: Option<&str>) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.0, client.1));
    let addr = issuer.trim_start_matches("http://").trim_end_matches('/');
    let body = match scope {
        Some(scope) => format!("grant_type=client_credentials&scope={}", scope.replace(' ', "%20").replace(':', "%3A")),
        None => "grant_type=client_credentials".to_owned(),
    };
    let headers =
        [("Authorization", format!("Basic {basic}")), ("Content-Type", "application/x-www-form-urlencoded".to_owned())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, text) = onex_e2e::host::http_with(addr, "POST", "/token", &headers, Some(body.as_bytes()));
    assert_eq!(status, 200, "token endpoint: {text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

/// A provider of the test's own on a free port, with its keys in a scratch directory: stopped
/// and started again (with a new key when asked) while a handler keeps running.
pub struct OwnProvider {
    child: Option<Child>,
    pub port: u16,
    pub keys: PathBuf,
}

impl OwnProvider {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let keys = onex_e2e::scratch_dir("oidc-own").join("keys.json");
        let mut provider = Self { child: None, port, keys };
        provider.launch(false);
        provider
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it and starts it again on the same port with a newly generated signing key.
    pub fn restart_with_new_key(&mut self) {
        self.stop();
        self.launch(true);
    }

    fn launch(&mut self, rotate: bool) {
        let mut command = Command::new(setting("ONEX_NODE"));
        command.arg(setting("ONEX_OIDC_SERVER")).args(["--port", &self.port.to_string()]).arg("--keys").arg(&self.keys);
        if rotate {
            command.arg("--rotate");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(ready.starts_with("ready "), "the provider did not start: {ready:?}");
        std::thread::spawn(move || lines.for_each(drop));
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The port is free once a connection is refused.
        let addr = format!("127.0.0.1:{}", self.port);
        onex_e2e::host::wait_for("the provider to stop listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr).is_err().then_some(())
        });
    }
}

impl Drop for OwnProvider {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
