#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod channel;
pub mod client;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod descriptor;
pub mod error;
pub mod message;
mod message_id;
pub mod network;
pub mod policy;
pub mod request;
pub mod security;
pub mod store;
pub mod system;
pub mod trace;

pub use channel::{
    BroadcastChannel, Channel, ChannelBuilder, DiscoveryChannel, MailboxChannel, MessageIds,
    PassthroughChannel, PeriodicChannel, Subscription, WorkQueueChannel,
};
pub use client::{ChannelClient, ChannelEndpoint, ChannelView};
pub use descriptor::{ServiceDescriptor, ServiceMethod};
pub use error::{Error, ErrorKind, Result};
pub use message::{
    ChannelInfo, ChannelKind, ChannelMessage, Content, GenericContent, Payload, Visibility,
};
pub use network::Network;
pub use store::{Claimed, DeadLetter, Entry, Settle, Settled};
pub use system::{System, SystemContext, SystemSpec};

/// The Rust snippets of the repository's README, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSnippets;
