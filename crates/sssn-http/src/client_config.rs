//! [`ClientConfig`]: a [`ChannelClient`] wired from a TOML file, v1's
//! `ChannelClient.connect_from_config(mapping)` with tokens kept out of the file and local
//! channels too ([`ConnectFromConfig::connect_from_config`]).
//!
//! ```toml
//! # Channels on other machines: the full channel URL (or the server's URL, the channel
//! # is then `id`) and the bearer token, inline (`token = "…"`) or, better, from the
//! # environment. Without either, the client's system id is the token (open and ACL
//! # servers without secret tokens).
//! [[remote]]
//! id = "jobs"
//! url = "http://10.0.0.5:8000/channels/jobs"
//! token_env = "JOBS_TOKEN"
//! transport = "auto"            # auto (default), stream, http
//!
//! # Channels the program passes in (from a `Network`, or built in code), by id;
//! # `channel` names the passed channel when the client uses another id for it.
//! [[local]]
//! id = "results"
//!
//! # Channels declared here, exactly as in `sssn serve`'s config (sssn-config's table):
//! # built on their store, started, and handed back to the program.
//! [[channel]]
//! id = "scratch"
//! kind = "broadcast"
//! store = "memory"
//! ```
//!
//! Wiring is all or nothing: every table is checked (environment variables, the local
//! channels passed, URLs, the declared channels built and started) before the client
//! gets any channel; on an error nothing is connected and declared channels already
//! started are stopped again. Every error names the file, line and column of the value
//! it is about (`client.toml:7:13: …`), with [`ErrorKind::InvalidArgument`] (or the kind
//! of a store that could not be opened).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sssn::{Channel, ChannelClient, Error, ErrorKind, Result, Visibility};
use sssn_config::{ChannelTable, Source, Stores};
use toml::Spanned;

use crate::remote::RemoteChannel;
use crate::stream::Transport;

/// One `[[remote]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteTable {
    id: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    token: Option<Spanned<String>>,
    #[serde(default)]
    token_env: Option<Spanned<String>>,
    #[serde(default)]
    transport: Option<Spanned<String>>,
}

/// One `[[local]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalTable {
    id: Spanned<String>,
    #[serde(default)]
    channel: Option<Spanned<String>>,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tables {
    #[serde(default, rename = "remote")]
    remotes: Vec<RemoteTable>,
    #[serde(default, rename = "local")]
    locals: Vec<LocalTable>,
    #[serde(default, rename = "channel")]
    channels: Vec<Spanned<ChannelTable>>,
}

/// A client wiring read from a TOML file (see the [module docs](self) for the format).
///
/// ```no_run
/// # async fn demo(net: sssn::network::RunningNetwork) -> sssn::Result<()> {
/// use sssn::ChannelClient;
/// use sssn_http::ConnectFromConfig;
///
/// let client = ChannelClient::new("worker-1");
/// // Remote channels, the network's channels named in `[[local]]`, declared channels.
/// let wired = client.connect_from_config("client.toml", net.channels()).await?;
/// client.work_queue("jobs")?.write(&serde_json::json!({"n": 1})).await?;
/// wired.stop().await; // the channels the file declared
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientConfig {
    source: Source,
    /// The file's directory: relative `sqlite:` paths of declared channels start there.
    dir: Option<PathBuf>,
    tables: Tables,
}

/// What [`ClientConfig::connect`] wired, besides the client's new channels.
#[derive(Debug, Default)]
pub struct Wired {
    /// The remote channels, in file order (also connected to the client).
    pub remotes: Vec<RemoteChannel>,
    /// The channels the file declared (`[[channel]]`), started; the program stops them.
    pub channels: Vec<Channel>,
}

impl Wired {
    /// Stops the declared channels (remote and passed-in channels are left alone).
    pub async fn stop(&self) {
        for channel in &self.channels {
            channel.stop().await;
        }
    }
}

impl ClientConfig {
    /// Reads and parses the file at `path` (errors are reported under that path).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot read client config {}: {e}", path.display()),
            )
        })?;
        let mut config = Self::parse(&path.display().to_string(), &text)?;
        config.dir = path.parent().map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses `text`, reporting errors under `origin` (a path, or a name such as
    /// `"<inline>"`). Checks the syntax, unknown keys, the values (durations, counts) and
    /// that no id is wired twice; the rest is checked by [`ClientConfig::connect`].
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let source = Source::new(origin, text);
        let tables: Tables = source
            .parse()
            .map_err(|message| Error::new(ErrorKind::InvalidArgument, message))?;
        let config = Self {
            source,
            dir: None,
            tables,
        };
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        let ids = (config.tables.remotes.iter().map(|r| &r.id))
            .chain(config.tables.locals.iter().map(|l| &l.id))
            .map(|id| (id.get_ref().as_str(), id.span()))
            .chain((config.tables.channels.iter()).map(|c| (c.get_ref().id(), c.span())));
        for (id, span) in ids {
            if let Some(first) = seen.insert(id, span.clone()) {
                return Err(config.error(
                    &span,
                    format!(
                        "channel '{id}' is wired twice (first at {})",
                        config.source.locate(&first)
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// The ids the file wires, in file order: remote, local, declared.
    pub fn ids(&self) -> Vec<&str> {
        let t = &self.tables;
        (t.remotes.iter().map(|r| r.id.get_ref().as_str()))
            .chain(t.locals.iter().map(|l| l.id.get_ref().as_str()))
            .chain(t.channels.iter().map(|c| c.get_ref().id()))
            .collect()
    }

    /// Wires `client`: the remote channels, the channels of `local` named in `[[local]]`
    /// tables, and the declared channels (built and started). Tokens named by
    /// `token_env` are read from the process environment.
    pub async fn connect(&self, client: &ChannelClient, local: &[Channel]) -> Result<Wired> {
        self.connect_with_env(client, local, &|var| std::env::var(var).ok())
            .await
    }

    /// Like [`ClientConfig::connect`], with `env` looking up environment variables.
    pub async fn connect_with_env(
        &self,
        client: &ChannelClient,
        local: &[Channel],
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Wired> {
        let remotes = self
            .tables
            .remotes
            .iter()
            .map(|r| self.remote(r, env))
            .collect::<Result<Vec<_>>>()?;
        let locals = self
            .tables
            .locals
            .iter()
            .map(|l| self.local(l, local))
            .collect::<Result<Vec<_>>>()?;
        let channels = self.declared().await?;
        // Everything checked: wire the client.
        for (id, remote) in &remotes {
            client.connect_endpoint(id.clone(), Arc::new(remote.clone()));
        }
        for (id, channel) in locals {
            client.connect(id, channel);
        }
        for channel in &channels {
            client.connect(channel.id(), channel.clone());
        }
        Ok(Wired {
            remotes: remotes.into_iter().map(|(_, r)| r).collect(),
            channels,
        })
    }

    fn remote(
        &self,
        r: &RemoteTable,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(String, RemoteChannel)> {
        let id = r.id.get_ref();
        let token = match (&r.token, &r.token_env) {
            (Some(_), Some(var)) => {
                return Err(self.error(
                    &var.span(),
                    format!("remote '{id}' sets both token and token_env"),
                ));
            }
            (Some(token), None) => Some(token.get_ref().clone()),
            (None, Some(var)) => Some(env(var.get_ref()).ok_or_else(|| {
                self.error(
                    &var.span(),
                    format!(
                        "environment variable {} (the token of remote '{id}') is not set",
                        var.get_ref()
                    ),
                )
            })?),
            (None, None) => None,
        };
        let transport = match &r.transport {
            None => Transport::Auto,
            Some(t) => match t.get_ref().as_str() {
                "auto" => Transport::Auto,
                "stream" => Transport::Stream,
                "http" => Transport::Http,
                other => {
                    return Err(self.error(
                        &t.span(),
                        format!("unknown transport '{other}' (auto, stream, http)"),
                    ));
                }
            },
        };
        let remote = RemoteChannel::connect_to(r.url.get_ref(), id, token.as_deref())
            .map_err(|e| self.error(&r.url.span(), format!("remote '{id}': {}", e.message())))?
            .transport(transport);
        Ok((id.clone(), remote))
    }

    fn local(&self, l: &LocalTable, passed: &[Channel]) -> Result<(String, Channel)> {
        let id = l.id.get_ref();
        let (wanted, span) = match &l.channel {
            Some(c) => (c.get_ref(), c.span()),
            None => (id, l.id.span()),
        };
        match passed.iter().find(|c| c.id() == wanted.as_str()) {
            Some(channel) => Ok((id.clone(), channel.clone())),
            None => {
                let mut names: Vec<&str> = passed.iter().map(Channel::id).collect();
                names.sort_unstable();
                Err(self.error(
                    &span,
                    format!(
                        "local channel '{wanted}' was not passed in (passed: {})",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    /// Builds and starts the declared channels; on an error stops those started.
    async fn declared(&self) -> Result<Vec<Channel>> {
        let mut stores = Stores::default();
        let mut started: Vec<Channel> = Vec::new();
        for table in &self.tables.channels {
            let outcome = async {
                let mut t = table.get_ref().clone();
                if let Some(dir) = &self.dir {
                    t.resolve_paths(dir);
                }
                // A client's own channels are not offered to anyone: private unless the
                // table says otherwise.
                let channel = t.build(None, Visibility::Private, &mut stores).await?;
                channel.start().await?;
                Ok::<_, Error>(channel)
            }
            .await;
            match outcome {
                Ok(channel) => started.push(channel),
                Err(e) => {
                    for channel in &started {
                        channel.stop().await;
                    }
                    let id = table.get_ref().id();
                    let named = format!("channel '{id}'");
                    let message = if e.message().contains(&named) {
                        e.message().to_owned()
                    } else {
                        format!("{named}: {}", e.message())
                    };
                    let at = self.source.locate(&table.span());
                    return Err(Error::new(e.kind(), format!("{at}: {message}")));
                }
            }
        }
        Ok(started)
    }

    fn error(&self, span: &Range<usize>, message: String) -> Error {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{}: {message}", self.source.locate(span)),
        )
    }
}

/// Wires a [`ChannelClient`] from a client config file (see [`ClientConfig`]).
pub trait ConnectFromConfig {
    /// Reads the file at `path` and wires the client: remote channels, the channels of
    /// `local` named in `[[local]]` tables, and the channels it declares (started, handed
    /// back in [`Wired::channels`]). v1's `connect_from_config(mapping)`.
    fn connect_from_config(
        &self,
        path: impl AsRef<Path> + Send,
        local: &[Channel],
    ) -> impl Future<Output = Result<Wired>> + Send;
}

impl ConnectFromConfig for ChannelClient {
    async fn connect_from_config(
        &self,
        path: impl AsRef<Path> + Send,
        local: &[Channel],
    ) -> Result<Wired> {
        ClientConfig::load(path)?.connect(self, local).await
    }
}
