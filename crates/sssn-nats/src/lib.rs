#![doc = include_str!("../README.md")]

mod channel;
mod feed;
mod names;
mod store;
mod url;
mod version;

pub use names::stream_name;
pub use store::{JetStreamOptions, JetStreamStore, StorageKind};
pub use version::ServerVersion;
