//! The configuration tables shared by `sssn serve` (crate `sssn-cli`) and clients wired
//! from a file (`sssn_http::ClientConfig`), so both read a channel table, a duration or a
//! count the same way and report a bad one the same way, at its line and column:
//!
//! * [`ChannelTable`]: a `[[channel]]` table (kind, id, options, store spec) and how it is
//!   built into a [`sssn::Channel`];
//! * [`Stores`]: the stores named by store specs, each opened once (features `sqlite` and
//!   `nats` for those stores);
//! * [`values`]: durations and counts, with the serde deserializers the tables use;
//! * [`Source`]: a file's text and name, to parse it and to turn `toml` spans into
//!   `file:line:column`.

mod channel_table;
mod location;
mod stores;
pub mod values;

pub use channel_table::{ChannelTable, resolve_store};
pub use location::{Location, Source};
pub use stores::Stores;
pub use values::parse_duration;
