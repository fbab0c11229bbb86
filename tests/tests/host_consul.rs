//! `run` with the consul handler enabled registers the host in Consul (against the in-repo
//! Consul fixture) with a check on `/health/ready`, and deregisters it on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use onex_e2e::consul_fixture::ConsulFixture;
use onex_e2e::host::{HostOptions, HostProcess, http};
use onex_e2e::{repo_root, scratch_dir};
use serde_json::Value as Json;

fn services(consul: &str) -> Json {
    let (status, body) = http(consul, "GET", "/v1/catalog/services", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_registers_in_consul_and_deregisters_on_sigterm() {
    let (addr, _fixture) = ConsulFixture::start().await;
    let consul = addr.to_string();
    let bundled = std::fs::read_to_string(repo_root().join("contracts/runtime/runtime_config.yaml")).unwrap();
    let config = bundled.replace(
        "  consul:\n    enabled: false\n    config:\n      address: http://127.0.0.1:8500",
        &format!("  consul:\n    enabled: true\n    config:\n      address: http://{consul}"),
    );
    assert_ne!(config, bundled, "the consul section of the bundled runtime config changed; update this test");
    let dir = scratch_dir("consul-host");
    std::fs::write(dir.join("runtime.yaml"), config).unwrap();
    let mut options = HostOptions::new(&repo_root().join("contracts"), &dir.join("data"));
    options.extra_args = vec!["--config".into(), dir.join("runtime.yaml").display().to_string()];

    let mut host = tokio::task::spawn_blocking(move || HostProcess::start(&options)).await.unwrap();
    let consul_for_poll = consul.clone();
    let registered = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all = services(&consul_for_poll);
            if all.get("onex-runtime-host").is_some() || Instant::now() > deadline {
                return all;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(registered.get("onex-runtime-host").is_some(), "registered: {registered}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.logs().contains("registered in Consul") {
        assert!(Instant::now() < deadline, "the host logs its registration: {}", host.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    host.signal("TERM");
    let exit =
        tokio::task::spawn_blocking(move || (host.wait_exit(Duration::from_secs(15)), host.logs())).await.unwrap();
    assert_eq!(exit.0.and_then(|s| s.code()), Some(0), "{}", exit.1);
    let left = tokio::task::spawn_blocking(move || services(&consul)).await.unwrap();
    assert!(left.get("onex-runtime-host").is_none(), "deregistered on shutdown: {left}");
}
