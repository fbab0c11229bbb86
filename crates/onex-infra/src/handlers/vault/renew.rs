//! The token's lifetime: `lookup-self` for its TTL, `renew-self` to extend it, and the
//! background task that renews it `renew_before` ahead of the end until shutdown.

use std::sync::Arc;
use std::time::Duration;

use onex_spi::{SpiError, SpiResult};
use serde_json::{Value as Json, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{Call, RawEndpoint, VaultApi};
use crate::error::codes;

/// Shortest wait between two renewals (a token with a tiny TTL must not spin the task).
const MIN_WAIT: Duration = Duration::from_millis(200);
/// Wait after a failed lookup or renewal before trying again.
const RETRY_WAIT: Duration = Duration::from_secs(5);

/// What `lookup-self` says about the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTtl {
    /// Seconds left; 0 means the token does not expire (a root token).
    pub ttl_s: u64,
    /// The TTL it was created with (Vault's `creation_ttl`; RustyVault only has `ttl`).
    pub creation_ttl_s: u64,
    /// Whether it can be renewed (absent in RustyVault's reply: assumed).
    pub renewable: bool,
}

/// Reads the token's TTL. The reply also carries the token itself: only the numbers are kept.
pub async fn lookup(api: &VaultApi, context: &str) -> SpiResult<TokenTtl> {
    let reply = api.send(RawEndpoint::lookup_self(), Call { context, carries_secret: false }).await?;
    let data = &reply["data"];
    let ttl_s = data["ttl"].as_u64().ok_or_else(|| {
        SpiError::new(codes::VAULT_UNEXPECTED, format!("{context}: Vault's token lookup has no `data.ttl`"))
    })?;
    Ok(TokenTtl {
        ttl_s,
        creation_ttl_s: data["creation_ttl"].as_u64().unwrap_or(ttl_s),
        renewable: data["renewable"].as_bool().unwrap_or(true),
    })
}

/// Renews the token by `increment_s` (Vault's default when `None`); returns the new TTL in
/// seconds and whether it stays renewable.
pub async fn renew(api: &VaultApi, increment_s: Option<u64>, context: &str) -> SpiResult<(u64, bool)> {
    let reply = api.send(RawEndpoint::renew_self(increment_s), Call { context, carries_secret: false }).await?;
    let auth = &reply["auth"];
    let lease = auth["lease_duration"].as_u64().ok_or_else(|| {
        SpiError::new(codes::VAULT_UNEXPECTED, format!("{context}: Vault's renewal reply has no `auth.lease_duration`"))
    })?;
    Ok((lease, auth["renewable"].as_bool().unwrap_or(true)))
}

/// `vault.renew_token`: renews a token that expires (by `increment_s`, default the TTL it was
/// created with); a token that does not expire is left as it is.
pub async fn renew_operation(api: &VaultApi, increment_s: Option<u64>, context: &str) -> SpiResult<Json> {
    let ttl = lookup(api, context).await?;
    if ttl.ttl_s == 0 {
        return Ok(json!({"renewed": false, "expires": false, "ttl_s": 0}));
    }
    if !ttl.renewable {
        return Err(SpiError::new(codes::VAULT_REJECTED, format!("{context}: the token is not renewable")));
    }
    let (ttl_s, renewable) = renew(api, Some(increment_s.unwrap_or(ttl.creation_ttl_s)), context).await?;
    Ok(json!({"renewed": true, "expires": true, "ttl_s": ttl_s, "renewable": renewable}))
}

/// How long to sleep before renewing a token with `ttl` left.
pub fn wait_before_renewal(ttl: Duration, renew_before: Duration) -> Duration {
    let wait = if ttl > renew_before { ttl - renew_before } else { ttl / 2 };
    wait.max(MIN_WAIT)
}

/// The background renewal task and the switch that stops it.
#[derive(Debug)]
pub struct Renewal {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Renewal {
    /// Starts renewing the token `renew_before` ahead of the end of its TTL.
    pub fn start(api: Arc<VaultApi>, renew_before: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(api, renew_before, stopped));
        Self { stop, task }
    }

    /// Stops the task and waits for it.
    pub async fn stop(self) {
        let _receiver_gone = self.stop.send(true);
        let _joined = self.task.await;
    }
}

/// Sleeps `wait`; `false` when asked to stop meanwhile.
async fn sleep_unless_stopped(wait: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stopped.wait_for(|stop| *stop) => false,
        () = tokio::time::sleep(wait) => true,
    }
}

async fn run(api: Arc<VaultApi>, renew_before: Duration, mut stopped: watch::Receiver<bool>) {
    let context = format!("vault token renewal ({})", api.address());
    let ttl = loop {
        match lookup(&api, &context).await {
            Ok(ttl) => break ttl,
            Err(e) => {
                tracing::warn!(code = e.code(), "{}", e.message());
                if !sleep_unless_stopped(RETRY_WAIT, &mut stopped).await {
                    return;
                }
            }
        }
    };
    if ttl.ttl_s == 0 || !ttl.renewable {
        tracing::debug!(expires = ttl.ttl_s != 0, renewable = ttl.renewable, "vault token needs no renewal");
        return;
    }
    let increment = ttl.creation_ttl_s;
    let mut left = Duration::from_secs(ttl.ttl_s);
    let mut wait = wait_before_renewal(left, renew_before);
    loop {
        if !sleep_unless_stopped(wait, &mut stopped).await {
            return;
        }
        match renew(&api, Some(increment), &context).await {
            Ok((ttl_s, renewable)) => {
                tracing::debug!(ttl_s, "renewed the vault token");
                if ttl_s == 0 || !renewable {
                    return;
                }
                left = Duration::from_secs(ttl_s);
                wait = wait_before_renewal(left, renew_before);
            }
            Err(e) => {
                tracing::warn!(code = e.code(), "{}", e.message());
                left = left.saturating_sub(wait);
                wait = RETRY_WAIT.min(left / 2).max(MIN_WAIT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_waits_until_renew_before_the_end() {
        let s = Duration::from_secs;
        assert_eq!(wait_before_renewal(s(3600), s(60)), s(3540));
        assert_eq!(wait_before_renewal(s(30), s(60)), s(15), "a short TTL is renewed half way");
        assert_eq!(wait_before_renewal(Duration::ZERO, s(60)), MIN_WAIT);
    }
}
