//! `sssn`: serve channels over HTTP, issue tokens, and act on remote channels.
//!
//! ```text
//! sssn serve --config sssn.toml
//! sssn token --config sssn.toml --subject worker-1 --role write --channels jobs --expires-in 1d
//! sssn write --url http://127.0.0.1:8000/channels/jobs --token $T '{"n": 1}'
//! sssn claim --url … --token $T --limit 10
//! sssn ack   --url … --token $T <message id>…
//! sssn tail  --url http://127.0.0.1:8000/channels/events --token $T
//! ```
//!
//! Client commands print JSON, one item per line. `--url` and `--token` can come from
//! `SSSN_URL` and `SSSN_TOKEN`.

mod config;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sssn::channel::ReadOptions;
use sssn::security::{JwtSecurity, Principal, Role, Security};
use sssn::{ChannelEndpoint, Payload};
use sssn_http::RemoteChannel;
use sssn_http::wire::{self, PayloadKind};

use crate::config::{Config, parse_duration};

#[derive(Debug, Parser)]
#[command(
    name = "sssn",
    version,
    about = "Channels over HTTP: serve, issue tokens, read and write remote channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Remote {
    /// The channel's URL, e.g. http://127.0.0.1:8000/channels/jobs.
    #[arg(long, env = "SSSN_URL")]
    url: String,
    /// Bearer token (with open or ACL security: your system id).
    #[arg(long, env = "SSSN_TOKEN", hide_env_values = true)]
    token: String,
}

impl Remote {
    fn connect(&self) -> anyhow::Result<RemoteChannel> {
        Ok(RemoteChannel::connect(&self.url, Some(&self.token))?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the channels of a TOML config until SIGINT/SIGTERM, then drain them.
    Serve {
        /// The config file (see sssn.example.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Overrides the bind address of the config's server table.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Issue a JWT for a subject, role and channels.
    Token {
        /// The caller's id (becomes reader/sender id).
        #[arg(long)]
        subject: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        role: String,
        /// Channel scope, comma-separated (default: every channel).
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Lifetime (e.g. 3600, 30m, 1d).
        #[arg(long, default_value = "1d")]
        expires_in: String,
        /// Take the secret and algorithm from this config's security table.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The HMAC secret (HS256), when no --config is given.
        #[arg(long, env = "SSSN_JWT_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Write data (JSON; from stdin when omitted or "-"). Prints the new id(s).
    Write {
        #[command(flatten)]
        remote: Remote,
        /// The body is a complete message (v1 direct write); its sender_id must be yours.
        #[arg(long)]
        direct: bool,
        /// The body is content (a JSON object) stored as is.
        #[arg(long, conflicts_with = "direct")]
        content: bool,
        /// The body is a JSON array written in one batch.
        #[arg(long)]
        batch: bool,
        /// JSON text.
        data: Option<String>,
    },
    /// Shared read from your cursor (or a claim with --exclusive). Prints messages.
    Read {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        exclusive: bool,
        /// Start after this message id.
        #[arg(long)]
        after: Option<String>,
    },
    /// Claim messages with a lease. Prints {seq, attempt, lease_until_ms, message}.
    Claim {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, default_value_t = 1)]
        limit: usize,
    },
    /// Acknowledge claimed messages. Prints how many.
    Ack {
        #[command(flatten)]
        remote: Remote,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Release claimed messages, optionally after a delay. Prints how many.
    Nack {
        #[command(flatten)]
        remote: Remote,
        /// Claimable again only after this (e.g. 500ms, 10s).
        #[arg(long)]
        delay: Option<String>,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Follow a channel live (server push). Prints {seq, message} per message.
    Tail {
        #[command(flatten)]
        remote: Remote,
        /// Start after this sequence (default: from now).
        #[arg(long)]
        after: Option<u64>,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Print the channel's stats.
    Stats {
        #[command(flatten)]
        remote: Remote,
    },
    /// Print the channel's info.
    Info {
        #[command(flatten)]
        remote: Remote,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sssn: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sssn tail … | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sssn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Who a client command acts as: the server derives the identity from the token, so this
/// only names the caller locally.
fn me() -> Principal {
    Principal::local("sssn-cli")
}

/// Whether an error is stdout's reader having gone away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints one line to stdout, reporting a closed pipe as an error instead of panicking.
fn print_line(line: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, bind } => serve(config, bind).await,
        Command::Token {
            subject,
            role,
            channels,
            expires_in,
            config,
            secret,
        } => {
            let jwt = match (config, secret) {
                (Some(path), _) => Config::parse(&read_file(&path)?)?
                    .security
                    .jwt(&|v| std::env::var(v).ok())?,
                (None, Some(secret)) => JwtSecurity::new(secret)?,
                (None, None) => bail!("give --config FILE, --secret or SSSN_JWT_SECRET"),
            };
            let role: Role = role.parse()?;
            let token = jwt.generate_token(
                &subject,
                role,
                channels.as_deref(),
                parse_duration(&expires_in)?,
            )?;
            print_line(token)?;
            Ok(())
        }
        Command::Write {
            remote,
            direct,
            content,
            batch,
            data,
        } => {
            let text = match data.as_deref() {
                None | Some("-") => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                Some(t) => t.to_owned(),
            };
            let kind = if direct {
                PayloadKind::Message
            } else if content {
                PayloadKind::Content
            } else {
                PayloadKind::Data
            };
            let payloads: Vec<Payload> = if batch {
                wire::parse_batch(text.as_bytes(), kind)?
            } else {
                vec![wire::parse_write(text.as_bytes(), kind)?]
            };
            let ids = remote.connect()?.write_batch(&me(), payloads).await?;
            for id in ids {
                print_line(id)?;
            }
            Ok(())
        }
        Command::Read {
            remote,
            limit,
            exclusive,
            after,
        } => {
            let options = ReadOptions {
                limit,
                exclusive,
                after,
            };
            for m in remote.connect()?.read(&me(), options).await? {
                print_json(&*m)?;
            }
            Ok(())
        }
        Command::Claim { remote, limit } => {
            for c in remote.connect()?.claim(&me(), limit).await? {
                print_json(&wire::ClaimedMessage {
                    seq: c.seq,
                    attempt: c.attempt,
                    lease_until_ms: c.lease_until_ms,
                    message: &*c.message,
                })?;
            }
            Ok(())
        }
        Command::Ack { remote, ids } => {
            print_line(remote.connect()?.ack(&me(), &ids).await?)?;
            Ok(())
        }
        Command::Nack { remote, delay, ids } => {
            let delay = delay.as_deref().map(parse_duration).transpose()?;
            print_line(remote.connect()?.nack(&me(), &ids, delay).await?)?;
            Ok(())
        }
        Command::Tail {
            remote,
            after,
            count,
        } => {
            let channel = remote.connect()?;
            let mut sub = channel.subscribe(&me(), after).await?;
            let mut seen = 0usize;
            while count.is_none_or(|c| seen < c) {
                let next = tokio::select! {
                    e = sub.next() => e,
                    _ = tokio::signal::ctrl_c() => None,
                };
                let Some(entry) = next else { break };
                print_json(&serde_json::json!({"seq": entry.seq, "message": &*entry.message}))?;
                seen += 1;
            }
            Ok(())
        }
        Command::Stats { remote } => {
            let stats = remote.connect()?.stats(&me()).await?;
            print_line(serde_json::to_string_pretty(&stats)?)?;
            Ok(())
        }
        Command::Info { remote } => {
            let info = remote.connect()?.info(&me()).await?;
            print_line(serde_json::to_string_pretty(&info)?)?;
            Ok(())
        }
    }
}

fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn serve(path: PathBuf, bind: Option<String>) -> anyhow::Result<()> {
    let config =
        Config::parse(&read_file(&path)?).with_context(|| format!("config {}", path.display()))?;
    let built = config.build(&|v| std::env::var(v).ok()).await?;
    for channel in &built.channels {
        match channel.start().await {
            Ok(()) => {}
            // The store is not reachable (yet): serve anyway, degraded (/healthz answers
            // 503 "degraded"), and keep starting the channel in the background.
            Err(e) if e.kind() == sssn::ErrorKind::Store => {
                eprintln!(
                    "sssn: channel '{}' not started yet ({e}); retrying in the background",
                    channel.id()
                );
                tokio::spawn(start_with_backoff(channel.clone()));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("starting channel '{}'", channel.id()));
            }
        }
    }
    let addr = bind.unwrap_or_else(|| config.server.bind.clone());
    let server = built
        .server
        .bind(addr.as_str())
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!(
        "sssn: listening on {} (channels: {})",
        server.url(),
        server.channel_ids().join(", ")
    );
    std::io::stdout().flush()?;
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        shutdown.cancel();
    });
    let served = server.wait().await;
    // Channels the server did not serve (private ones) are drained too.
    for channel in &built.channels {
        if let Err(e) = channel
            .drain(Some(std::time::Duration::from_secs(30)))
            .await
        {
            tracing::warn!(channel = channel.id(), error = %e, "drain failed");
        }
    }
    served?;
    println!("sssn: drained {} channels; bye", built.channels.len());
    Ok(())
}

/// Starts `channel`, retrying with exponential backoff (0.5 s doubling to 10 s) while its
/// store fails.
async fn start_with_backoff(channel: sssn::channel::Channel) {
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        tokio::time::sleep(delay).await;
        match channel.start().await {
            Ok(()) => {
                eprintln!("sssn: channel '{}' started", channel.id());
                return;
            }
            Err(e) => {
                tracing::debug!(channel = channel.id(), error = %e, "channel start failed; retrying");
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
