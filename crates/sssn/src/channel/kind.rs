//! Channel kinds as types.
//!
//! A channel handle is `Channel<K>`: `K` is one of the kind markers
//! ([`Passthrough`], [`Broadcast`], [`WorkQueue`], [`Mailbox`], [`Periodic`],
//! [`Discovery`]) or [`Any`], the type-erased kind that `Network`, the HTTP server and the
//! CLI use. Each operation is available on the handles whose kind has the capability it
//! needs, so misuse does not compile:
//!
//! ```compile_fail,E0599
//! # async fn demo() -> sssn::Result<()> {
//! let feed = sssn::channel::BroadcastChannel::new("feed").build();
//! feed.claim("worker", 1).await?; // a broadcast has no claims
//! # Ok(()) }
//! ```
//!
//! ```compile_fail,E0599
//! # async fn demo() -> sssn::Result<()> {
//! let jobs = sssn::channel::WorkQueueChannel::new("jobs").build();
//! jobs.subscribe("dashboard").await?; // work is claimed, not subscribed to
//! # Ok(()) }
//! ```
//!
//! ```compile_fail,E0599
//! let feed = sssn::channel::BroadcastChannel::new("feed").max_deliveries(3).build();
//! ```
//!
//! `Any` has every capability; on it, an operation the channel's kind lacks fails at run
//! time with [`ErrorKind::UnsupportedOperation`](crate::ErrorKind::UnsupportedOperation).
//! The run-time capabilities ([`ChannelKind::claims`] and friends) and these traits agree;
//! a test checks it.

use crate::message::ChannelKind;

pub use super::broadcast::Broadcast;
pub use super::discovery::Discovery;
pub use super::mailbox::Mailbox;
pub use super::passthrough::Passthrough;
pub use super::periodic::Periodic;
pub use super::work_queue::WorkQueue;

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A channel kind marker (or [`Any`]).
pub trait Kind: Sealed + Send + Sync + 'static {
    /// The kind this marker stands for; `None` for [`Any`].
    const KIND: Option<ChannelKind>;
}

/// The six kind markers (every `Kind` but [`Any`]).
pub trait Typed: Kind {
    /// The kind this marker stands for.
    const CHANNEL_KIND: ChannelKind;
}

/// Kinds with shared (cursor) reads: every reader sees every message through its cursor.
pub trait SharedReads: Kind {}

/// Kinds with claims: exclusive, leased reads settled by ack, nack, reject or extend, and
/// dead letters. On a [`Mailbox`] they are per recipient: each claimer takes only its own
/// messages and those addressed to everyone, from its own inbox
/// ([`ClaimScope::PerRecipient`](crate::policy::ClaimScope)).
pub trait Claims: Kind {}

/// Kinds with push subscriptions. A work queue has none: its work is claimed. (The
/// type-erased handle still subscribes to a work queue, as a *tail* that sees every write
/// and consumes nothing — what `sssn tail` and wake-ups on new work use.)
pub trait Subscriptions: Kind {}

/// Kinds with a pull loop and a raw buffer (periodic channels).
pub trait PullLoop: Kind {}

/// Kinds that keep registrations with a time to live (discovery channels).
pub trait Registry: Kind {}

/// Any kind, decided at run time: the type-erased handle.
#[derive(Debug, Clone, Copy)]
pub struct Any;

impl Sealed for Any {}
impl Kind for Any {
    const KIND: Option<ChannelKind> = None;
}
impl SharedReads for Any {}
impl Claims for Any {}
impl Subscriptions for Any {}
impl PullLoop for Any {}
impl Registry for Any {}

/// Implements [`Kind`] and the listed capability traits for a kind marker.
macro_rules! kind {
    ($marker:ty, $kind:expr $(, $cap:ident)*) => {
        impl $crate::channel::kind::Sealed for $marker {}
        impl $crate::channel::kind::Kind for $marker {
            const KIND: Option<$crate::message::ChannelKind> = Some($kind);
        }
        impl $crate::channel::kind::Typed for $marker {
            const CHANNEL_KIND: $crate::message::ChannelKind = $kind;
        }
        $(impl $crate::channel::kind::$cap for $marker {})*
        impl From<$crate::channel::Channel<$marker>> for $crate::channel::Channel {
            fn from(channel: $crate::channel::Channel<$marker>) -> Self {
                channel.erased()
            }
        }
    };
}
pub(crate) use kind;

#[cfg(test)]
mod tests {
    use super::*;

    // Compile-time checks: each call compiles only if the kind has the capability.
    #[allow(clippy::extra_unused_type_parameters)]
    fn claims<K: Claims>() -> bool {
        true
    }
    #[allow(clippy::extra_unused_type_parameters)]
    fn reads<K: SharedReads>() -> bool {
        true
    }

    #[test]
    fn compile_time_capabilities_match_the_run_time_ones() {
        // Every kind with a capability trait has the run-time capability…
        for (kind, claim) in [
            (Passthrough::KIND, claims::<Passthrough>()),
            (WorkQueue::KIND, claims::<WorkQueue>()),
            (Mailbox::KIND, claims::<Mailbox>()),
            (Periodic::KIND, claims::<Periodic>()),
        ] {
            assert_eq!(kind.map(ChannelKind::claims), Some(claim));
        }
        for (kind, read) in [
            (Passthrough::KIND, reads::<Passthrough>()),
            (Broadcast::KIND, reads::<Broadcast>()),
            (Mailbox::KIND, reads::<Mailbox>()),
            (Periodic::KIND, reads::<Periodic>()),
            (Discovery::KIND, reads::<Discovery>()),
        ] {
            assert_eq!(kind.map(ChannelKind::shared_reads), Some(read));
        }
        // …and the kinds without it lack it at run time too (the compile-fail doc tests
        // above show the traits are missing).
        assert!(!ChannelKind::Broadcast.claims());
        assert!(!ChannelKind::Discovery.claims());
        assert!(!ChannelKind::WorkQueue.shared_reads());
    }
}
