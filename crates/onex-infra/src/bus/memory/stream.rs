//! A member's subscription stream: pulls its next message from the shared state and leaves the
//! group when dropped, which hands its partitions to the remaining members.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use onex_spi::{InboundMessage, SpiResult};

use super::Shared;

/// One member of a consumer group.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) shared: Arc<Shared>,
    pub(super) group: String,
    pub(super) member: u64,
}

impl Stream for Subscription {
    type Item = SpiResult<InboundMessage>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let picked = this.shared.with(|state| state.next_for(&this.group, this.member, cx.waker()));
        // Copied out of the shared record after the lock is released.
        picked.map(|next| next.map(|picked| Ok(picked.into_inbound())))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.with(|state| state.leave(&self.group, self.member));
    }
}
