//! The host's own registration in Consul: one service instance per host, with an HTTP check on
//! its admin server's `/health/ready`, removed again at shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use onex_spi::SpiResult;

use super::ConsulHandler;
use super::errors::Context;
use super::ops::{self, HttpCheck, Register};

/// How often Consul calls the host's `/health/ready`.
pub const HOST_CHECK_INTERVAL: &str = "10s";
/// How long one `/health/ready` call may take.
pub const HOST_CHECK_TIMEOUT: &str = "5s";
/// A host whose check stays critical this long is deregistered by Consul (a crashed host
/// that never deregistered itself).
pub const HOST_DEREGISTER_AFTER: &str = "10m";

/// The address Consul reaches the admin server at: an unspecified bind address (`0.0.0.0`,
/// `::`) is reached on loopback (the agent runs on the same machine).
fn reachable(admin_addr: SocketAddr) -> SocketAddr {
    if admin_addr.ip().is_unspecified() {
        let loopback = match admin_addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(loopback, admin_addr.port())
    } else {
        admin_addr
    }
}

/// The service ID a host registers under: `<name>-<ip>-<port>` (`:` of IPv6 kept out).
pub fn host_service_id(name: &str, admin_addr: SocketAddr) -> String {
    let addr = reachable(admin_addr);
    let ip = addr.ip().to_string().replace(':', "_");
    format!("{name}-{ip}-{}", addr.port())
}

/// Registers the host as service `name` with address and port of its admin server and an
/// HTTP check on `http://<admin_addr>/health/ready` every [`HOST_CHECK_INTERVAL`]; returns the
/// service ID to hand to [`deregister_host`].
pub async fn register_host(handler: &ConsulHandler, name: &str, admin_addr: SocketAddr) -> SpiResult<String> {
    let cx = Context(format!("registering the host in Consul as `{name}`"));
    let client = handler.client().await?;
    let addr = reachable(admin_addr);
    let id = host_service_id(name, admin_addr);
    let request = Register {
        name: name.to_owned(),
        id: Some(id.clone()),
        address: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        tags: Some(vec!["onex-runtime-host".to_owned()]),
        check: HttpCheck {
            http: format!("http://{addr}/health/ready"),
            interval: HOST_CHECK_INTERVAL.to_owned(),
            timeout: Some(HOST_CHECK_TIMEOUT.to_owned()),
            deregister_critical_after: Some(HOST_DEREGISTER_AFTER.to_owned()),
        },
    };
    ops::register(client, &cx, request).await?;
    Ok(id)
}

/// Removes the registration [`register_host`] made (`service_id` is what it returned).
pub async fn deregister_host(handler: &ConsulHandler, service_id: &str) -> SpiResult<()> {
    let cx = Context(format!("deregistering the host (service id `{service_id}`) from Consul"));
    let client = handler.client().await?;
    ops::deregister(client, &cx, ops::Deregister::new(service_id)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_are_path_safe() {
        assert_eq!(host_service_id("onex", "127.0.0.1:8085".parse().unwrap()), "onex-127.0.0.1-8085");
        assert_eq!(host_service_id("onex", "0.0.0.0:8085".parse().unwrap()), "onex-127.0.0.1-8085");
        assert_eq!(host_service_id("onex", "[::1]:9000".parse().unwrap()), "onex-__1-9000");
    }
}
