//! Fault test: a second RustyVault of this test's own (the binary `services up` found, on a
//! free port, data in a temp dir) is stopped mid-test: calls fail as unavailable and the
//! node's breaker opens; restarted on the same storage and unsealed again, calls succeed and
//! the breaker closes once its recovery timeout has passed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use onex_core::error::{ErrorCategory, codes as core_codes};
use onex_core::resilience::BreakerState;
use onex_infra::error::codes;
use onex_infra::resilience::ResilienceStack;
use onex_spi::{Handler, Health};
use serde_json::{Value as Json, json};

use crate::common::service_url;
use crate::support::{envelope, handler, unique, vault_contract};

/// A RustyVault process this test owns.
struct Instance {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    key: String,
    token: String,
}

async fn http(method: &str, url: &str, token: Option<&str>, body: Option<Json>) -> (u16, Json) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = vault_reqwest::Client::new();
    let mut request = client.request(vault_reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Json::Null))
}

impl Instance {
    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts a fresh instance, initialises (one key share) and unseals it.
    async fn start() -> Self {
        let bin = PathBuf::from(service_url("ONEX_RVAULT_BIN", ""));
        assert!(bin.is_file(), "no ONEX_RVAULT_BIN: run `cargo xtask services up` first");
        let dir = std::env::temp_dir().join(unique("onex-rvault-fault"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "storage \"file\" {{\n  path = \"{d}/data\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\nwork_dir = \"{d}\"\nlog_level = \"warn\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("config.hcl"), config).unwrap();
        let mut instance = Self { bin, dir, port, child: None, key: String::new(), token: String::new() };
        instance.spawn().await;
        let (status, init) = http(
            "PUT",
            &format!("{}/v1/sys/init", instance.addr()),
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
        assert_eq!(status, 200, "{init}");
        instance.key = init["keys"][0].as_str().unwrap().to_owned();
        instance.token = init["root_token"].as_str().unwrap().to_owned();
        instance.unseal().await;
        instance
    }

    /// Runs the server and waits until it accepts connections.
    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("rvault.log")).unwrap();
        let child = Command::new(&self.bin)
            .args(["server", "--config"])
            .arg(self.dir.join("config.hcl"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "rvault did not listen on {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn unseal(&self) {
        let (status, reply) =
            http("PUT", &format!("{}/v1/sys/unseal", self.addr()), None, Some(json!({"key": self.key}))).await;
        assert_eq!((status, &reply["sealed"]), (200, &json!(false)), "{reply}");
    }

    /// Kills the server and waits until the port refuses connections.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the server again on the same storage and unseals it.
    async fn restart(&mut self) {
        self.spawn().await;
        self.unseal().await;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_stopped_vault_is_unavailable_opens_the_breaker_and_recovers_after_restart() {
    let mut vault = Instance::start().await;
    let h = handler(&vault.addr(), &vault.token, json!({"timeout_ms": 1000})).await;
    let mut contract = vault_contract();
    // Everything as contracts/effects/vault.yaml declares it, but the recovery timeout (15 s
    // there) is shortened so the test does not idle.
    let recovery = Duration::from_secs(4);
    let breaker = contract.resilience.circuit_breaker.as_mut().unwrap();
    breaker.recovery_timeout_ms = recovery.as_millis() as u64;
    let threshold = breaker.failure_threshold;
    let stack = ResilienceStack::build(&contract, h.clone());
    let send = |op: &str, payload: Json| stack.call(std::sync::Arc::new(envelope(op, payload)));
    let path = unique("fault");
    let read = json!({"mount": "secret", "path": path});

    send("vault.write_secret", json!({"mount": "secret", "path": path, "data": {"v": "kept"}})).await.unwrap();
    assert_eq!(stack.breaker_state(), Some(BreakerState::Closed));

    vault.stop().await;
    for _ in 0..threshold {
        let e = send("vault.read_secret", read.clone()).await.unwrap_err();
        assert_eq!((e.code(), e.category()), (codes::VAULT_UNAVAILABLE.as_str(), ErrorCategory::Unavailable), "{e}");
        assert!(e.message().contains("cannot reach Vault at"), "{e}");
    }
    assert!(stack.stats.retries.load(Ordering::Relaxed) > 0, "unavailable is retried");
    assert_eq!(stack.breaker_state(), Some(BreakerState::Open));
    let opened = Instant::now();
    let e = send("vault.read_secret", read.clone()).await.unwrap_err();
    assert_eq!(e.code(), core_codes::CIRCUIT_OPEN.as_str(), "{e}");
    assert!(matches!(h.health().await, Health::Unhealthy(_)));

    vault.restart().await;
    assert!(opened.elapsed() < recovery, "restart took longer than the recovery timeout");
    let e = send("vault.read_secret", read.clone()).await.unwrap_err();
    assert_eq!(e.code(), core_codes::CIRCUIT_OPEN.as_str(), "still open before the recovery timeout: {e}");
    assert_eq!(stack.stats.rejected_open.load(Ordering::Relaxed), 2);

    tokio::time::sleep(recovery.saturating_sub(opened.elapsed()) + Duration::from_millis(200)).await;
    let reply = send("vault.read_secret", read.clone()).await.unwrap();
    assert_eq!(reply, json!({"data": {"v": "kept"}}), "the secret survived the restart");
    assert_eq!(stack.breaker_state(), Some(BreakerState::Closed));
    assert_eq!(h.health().await, Health::Healthy);
    h.shutdown().await.unwrap();
}
