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
pub mod network;
pub mod request;
pub mod security;
pub mod store;
pub mod system;

pub use channel::{Channel, ChannelBuilder, Subscription};
pub use client::{ChannelClient, ChannelEndpoint};
pub use descriptor::{ServiceDescriptor, ServiceMethod};
pub use error::{Error, ErrorKind, Result};
pub use message::{
    ChannelInfo, ChannelKind, ChannelMessage, Content, GenericContent, Payload, Visibility,
};
pub use network::Network;
pub use system::{System, SystemContext, SystemSpec};
