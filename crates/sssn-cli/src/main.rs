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
//! `SSSN_URL` and `SSSN_TOKEN`. They are generated from the HTTP API's route table
//! (`sssn_http::api::ROUTES`): one subcommand per channel operation (write, read, claim,
//! ack, nack, extend, reject, dead-letters, redrive, clear, evict, remove, info, stats,
//! tail), whose options are the route's parameters, each call going through
//! [`RemoteChannel`]'s `ChannelEndpoint` implementation.

mod config;
mod protected;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Serialize;
use sssn::channel::ReadOptions;
use sssn::security::{JwtSecurity, Principal, Role, Security};
use sssn::store::History;
use sssn::{ChannelEndpoint, ChannelMessage, Content, Payload, Settle};
use sssn_http::api::{self, ChannelOp, CliArg, CliCommand, CliValue, Route};
use sssn_http::wire::{self, PayloadKind};
use sssn_http::{RemoteChannel, Transport};

use crate::config::{Config, parse_duration};

/// The JWT secret `sssn serve` accepts: at least this many bytes.
const MIN_SECRET_BYTES: usize = 32;

/// The commands that run here; the client commands, one per channel operation, are built
/// from the HTTP API's route table ([`api::ROUTES`]).
#[derive(Debug, Parser)]
#[command(
    name = "sssn",
    version,
    about = "Channels over HTTP: serve, issue tokens, read and write remote channels",
    after_help = "Client commands print JSON, one item per line; --url and --token may come from SSSN_URL and SSSN_TOKEN."
)]
struct Cli {
    #[command(subcommand)]
    command: Local,
}

#[derive(Debug, Subcommand)]
enum Local {
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
        /// The HMAC secret (HS256, at least 32 bytes), when no --config is given.
        #[arg(long, env = "SSSN_JWT_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
}

/// The whole command line: the local commands, then a subcommand per channel operation of
/// the route table.
fn command_line() -> clap::Command {
    api::cli_routes().fold(Cli::command(), |cmd, (_, route, shape)| {
        cmd.subcommand(client_command(route, shape))
    })
}

fn client_command(route: &Route, shape: &CliCommand) -> clap::Command {
    let sub = clap::Command::new(shape.name)
        .about(shape.about)
        .long_about(format!("{}\n\n{}", shape.about, route.summary))
        .after_help(format!("HTTP: {} {}", route.method, route.path))
        .arg(
            Arg::new("url")
                .long("url")
                .env("SSSN_URL")
                .required(true)
                .value_name("URL")
                .help("The channel's URL, e.g. http://127.0.0.1:8000/channels/jobs."),
        )
        .arg(
            Arg::new("token")
                .long("token")
                .env("SSSN_TOKEN")
                .hide_env_values(true)
                .required(true)
                .value_name("TOKEN")
                .help("Bearer token (with open or ACL security: your system id)."),
        );
    shape.args.iter().fold(sub, |sub, a| sub.arg(client_arg(a)))
}

fn value_name(a: &CliArg, fallback: &str) -> String {
    if a.value_name.is_empty() {
        fallback.to_owned()
    } else {
        a.value_name.to_owned()
    }
}

fn client_arg(a: &CliArg) -> Arg {
    let arg = Arg::new(a.name)
        .help(a.help)
        .conflicts_with_all(a.conflicts_with);
    match a.value {
        CliValue::Flag => arg.long(a.name).action(ArgAction::SetTrue),
        CliValue::Text => arg
            .long(a.name)
            .value_name(value_name(a, &a.name.to_uppercase().replace('-', "_"))),
        CliValue::Count { default } => {
            let arg = arg
                .long(a.name)
                .value_name(value_name(a, "N"))
                .value_parser(clap::value_parser!(usize));
            match default {
                Some(d) => arg.default_value(d.to_string()),
                None => arg,
            }
        }
        CliValue::Seq => arg
            .long(a.name)
            .value_name(value_name(a, "SEQ"))
            .value_parser(clap::value_parser!(u64)),
        CliValue::Number => arg
            .long(a.name)
            .value_name(value_name(a, "EPOCH_SECS"))
            // NaN and infinities would reach the server as null: refuse them here.
            .value_parser(|text: &str| match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(format!("'{text}' is not a finite number")),
            }),
        CliValue::Duration => arg
            .long(a.name)
            .value_name(value_name(a, "DURATION"))
            .value_parser(|text: &str| parse_duration(text).map_err(|e| e.to_string())),
        CliValue::Ids => arg
            .value_name(value_name(a, "ID"))
            .num_args(1..)
            .required(true),
        CliValue::Json => arg.value_name(value_name(a, "JSON")),
    }
}

fn main() -> ExitCode {
    let matches = command_line().get_matches();
    let client = matches.subcommand().and_then(|(name, sub)| {
        api::cli_routes()
            .find(|(_, _, shape)| shape.name == name)
            .map(|(op, _, _)| (op, sub.clone()))
    });
    let job = match client {
        Some(client) => Job::Client(client.0, client.1),
        None => match Cli::from_arg_matches(&matches) {
            Ok(cli) => Job::Local(cli.command),
            Err(e) => e.exit(),
        },
    };
    let default_level = if matches!(job, Job::Local(Local::Serve { .. })) {
        "info"
    } else {
        "warn"
    };
    let _otlp = init_logging(default_level);
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
    let outcome = runtime.block_on(async move {
        match job {
            Job::Local(command) => run_local(command).await,
            Job::Client(op, sub) => run_client(op, &sub).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sssn tail … | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // A configuration `sssn serve` will not run as it stands (protected mode).
        Err(e) if e.downcast_ref::<protected::Refusal>().is_some() => {
            eprintln!("sssn: error: {}", describe(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sssn: error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

enum Job {
    Local(Local),
    Client(ChannelOp, ArgMatches),
}

/// An error and its causes, each said once: a cause whose text an outer layer already
/// printed (an `sssn::Error` prints its source; some messages embed their cause) is not
/// repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<sssn::Error>() {
            // Its own words; its source comes next in the chain.
            Some(s) => format!("{}: {}", s.kind(), s.message()),
            None => cause.to_string(),
        };
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
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

/// Prints one JSON value on one line, fields in their declared order (as `read` prints).
fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// One line of `sssn tail`.
#[derive(Serialize)]
struct Tailed<'a> {
    seq: u64,
    message: &'a ChannelMessage,
}

/// Resolves once stdout's reader is gone (a closed pipe), so a follower such as
/// `sssn tail | head -1` ends without waiting for another message. A watcher thread polls
/// stdout for an error or hang-up (what a pipe reports once its read end is closed); it
/// never resolves where stdout cannot close that way (a regular file).
async fn stdout_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    #[cfg(unix)]
    {
        let spawned = std::thread::Builder::new()
            .name("stdout-watch".into())
            .spawn(move || {
                use rustix::event::{PollFd, PollFlags, poll};
                let stdout = std::io::stdout();
                loop {
                    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                    match poll(&mut fds, None) {
                        Ok(_) => {
                            let got = fds[0].revents();
                            if got.intersects(PollFlags::ERR | PollFlags::HUP) {
                                let _ = tx.send(());
                                return;
                            }
                            if got.contains(PollFlags::NVAL) {
                                return; // not a descriptor poll can watch
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return,
                    }
                }
            });
        if spawned.is_err() {
            std::future::pending::<()>().await;
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    if rx.await.is_err() {
        // The watcher gave up: stdout cannot be watched.
        std::future::pending::<()>().await;
    }
}

async fn run_local(command: Local) -> anyhow::Result<()> {
    match command {
        Local::Serve { config, bind } => serve(config, bind).await,
        Local::Token {
            subject,
            role,
            channels,
            expires_in,
            config,
            secret,
        } => {
            // Refuse what a server would refuse, before signing anything.
            if subject.trim().is_empty() {
                bail!("--subject is empty: a server refuses a token without a subject");
            }
            let role: Role = role.parse()?;
            let lifetime = parse_duration(&expires_in)?;
            if lifetime.is_zero() {
                bail!("--expires-in must be positive: a token that expires at once is refused");
            }
            let jwt = match (config, secret) {
                (Some(path), _) => Config::parse(&read_file(&path)?)
                    .with_context(|| format!("config {}", path.display()))?
                    .security
                    .context("the config has no [security] table (kind = \"jwt\" signs tokens)")?
                    .jwt(&|v| std::env::var(v).ok())?,
                (None, Some(secret)) => {
                    if secret.len() < MIN_SECRET_BYTES {
                        bail!(
                            "the secret is {} bytes; at least {MIN_SECRET_BYTES} are needed (sssn serve refuses shorter ones)",
                            secret.len()
                        );
                    }
                    JwtSecurity::new(secret)?
                }
                (None, None) => bail!("give --config FILE, --secret or SSSN_JWT_SECRET"),
            };
            let token = jwt.generate_token(&subject, role, channels.as_deref(), lifetime)?;
            print_line(token)?;
            Ok(())
        }
    }
}

fn text(m: &ArgMatches, a: &CliArg) -> Option<String> {
    m.get_one::<String>(a.name).cloned()
}

fn count(m: &ArgMatches, a: &CliArg) -> Option<usize> {
    m.get_one::<usize>(a.name).copied()
}

fn ids(m: &ArgMatches) -> Vec<String> {
    m.get_many::<String>(api::ARG_IDS.name)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// The option of a query parameter, as the table shapes it.
fn param_arg(p: api::Param) -> CliArg {
    CliArg::param(p)
}

/// Runs one channel operation through the remote channel's [`ChannelEndpoint`].
async fn run_client(op: ChannelOp, m: &ArgMatches) -> anyhow::Result<()> {
    let url = m.get_one::<String>("url").cloned().unwrap_or_default();
    let token = m.get_one::<String>("token").cloned().unwrap_or_default();
    // One operation per process: a plain request costs less than a stream's upgrade.
    let channel = RemoteChannel::connect(&url, Some(&token))?.transport(Transport::Http);
    let settle = |how: Settle| {
        let channel = channel.clone();
        let ids = ids(m);
        async move {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let settled = channel.settle(&me(), &ids, how).await?;
            print_line(settled.into_result()?)
        }
    };
    match op {
        ChannelOp::Write | ChannelOp::WriteBatch => write(&channel, m).await,
        ChannelOp::Read => {
            let options = ReadOptions {
                limit: count(m, &param_arg(api::READ_LIMIT.param()))
                    .unwrap_or(api::READ_LIMIT.default),
                exclusive: m.get_flag(api::READ_EXCLUSIVE.name),
                after: text(m, &param_arg(api::READ_AFTER.param())),
            };
            for message in channel.read(&me(), options).await? {
                print_json(&*message)?;
            }
            Ok(())
        }
        ChannelOp::Claim => {
            let limit =
                count(m, &param_arg(api::CLAIM_LIMIT.param())).unwrap_or(api::CLAIM_LIMIT.default);
            for c in channel.claim(&me(), limit).await? {
                print_json(&wire::ClaimedMessage {
                    seq: c.seq,
                    attempt: c.attempt,
                    lease_until_ms: c.lease_until_ms,
                    message: &*c.message,
                })?;
            }
            Ok(())
        }
        ChannelOp::Ack => settle(Settle::Ack).await,
        ChannelOp::AckAndClaim => {
            let limit =
                count(m, &param_arg(api::CLAIM_LIMIT.param())).unwrap_or(api::CLAIM_LIMIT.default);
            let ids = ids(m);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (settled, claimed) = channel
                .settle_and_claim(&me(), &ids, Settle::Ack, limit)
                .await?;
            for c in claimed {
                print_json(&wire::ClaimedMessage {
                    seq: c.seq,
                    attempt: c.attempt,
                    lease_until_ms: c.lease_until_ms,
                    message: &*c.message,
                })?;
            }
            // The new claims are printed (they are the caller's now) before a stale id fails.
            settled.into_result()?;
            Ok(())
        }
        ChannelOp::Nack => {
            let delay = m.get_one::<Duration>(api::ARG_DELAY.name).copied();
            settle(Settle::Nack { delay }).await
        }
        ChannelOp::Extend => settle(Settle::Extend).await,
        ChannelOp::Reject => {
            let reason = text(m, &api::ARG_REASON).unwrap_or_else(|| "rejected".to_owned());
            settle(Settle::Reject { reason }).await
        }
        ChannelOp::DeadLetters => {
            let limit = count(m, &param_arg(api::DEAD_LETTER_LIMIT.param()))
                .unwrap_or(api::DEAD_LETTER_LIMIT.default);
            for letter in channel.dead_letters(&me(), limit).await? {
                print_json(&letter)?;
            }
            Ok(())
        }
        ChannelOp::Redrive => {
            let ids = ids(m);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            print_line(channel.redrive(&me(), &ids).await?)
        }
        ChannelOp::Clear => print_line(ChannelEndpoint::clear(&channel, &me()).await?),
        ChannelOp::Evict => {
            let before = m.get_one::<f64>(api::ARG_BEFORE.name).copied();
            let max_count = count(m, &api::ARG_MAX_COUNT);
            if before.is_none() && max_count.is_none() {
                bail!("give --before EPOCH_SECS, --max-count N or both");
            }
            print_line(ChannelEndpoint::evict(&channel, &me(), before, max_count).await?)
        }
        ChannelOp::Remove => {
            let ids = ids(m);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            print_line(ChannelEndpoint::remove(&channel, &me(), &ids).await?)
        }
        ChannelOp::Info => print_json(&channel.info(&me()).await?),
        ChannelOp::Stats => print_json(&channel.stats(&me()).await?),
        ChannelOp::History => {
            let limit = count(m, &param_arg(api::HISTORY_LIMIT.param()))
                .unwrap_or(api::HISTORY_LIMIT.default);
            let start = m.get_one::<f64>(api::HISTORY_START.name).copied();
            let end = m.get_one::<f64>(api::HISTORY_END.name).copied();
            let query = match text(m, &api::ARG_MESSAGE_ID) {
                Some(id) => History::Id(id),
                None if start.is_none() && end.is_none() => History::Latest { limit },
                None => History::Between {
                    start: start.unwrap_or(0.0),
                    end: end.unwrap_or(f64::MAX),
                    limit,
                },
            };
            for e in channel.history(&me(), &query).await? {
                print_json(&wire::StoredMessage {
                    seq: e.seq,
                    message: &*e.message,
                })?;
            }
            Ok(())
        }
        ChannelOp::Events => {
            let after = m.get_one::<u64>(api::EVENTS_AFTER.name).copied();
            let limit = count(m, &api::ARG_COUNT);
            tail(&channel, after, limit).await
        }
    }
}

async fn write(channel: &RemoteChannel, m: &ArgMatches) -> anyhow::Result<()> {
    let text_arg = text(m, &api::ARG_DATA);
    let body = match text_arg.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
        Some(t) => t.to_owned(),
    };
    let kind = if m.get_flag(api::ARG_DIRECT.name) {
        PayloadKind::Message
    } else if m.get_flag(api::ARG_CONTENT.name) {
        PayloadKind::Content
    } else {
        PayloadKind::Data
    };
    let mut payloads: Vec<Payload> = if m.get_flag(api::ARG_BATCH.name) {
        wire::parse_batch(body.as_bytes(), kind)?
    } else {
        vec![wire::parse_write(body.as_bytes(), kind)?]
    };
    if let Some(to) = text(m, &api::ARG_TO) {
        // A message addressed to `to`, in the caller's name (the server fills the sender).
        payloads = payloads
            .into_iter()
            .map(|p| {
                let content = match p {
                    Payload::Data(v) => Content::data(&v)?,
                    Payload::Content(c) => c,
                    Payload::Message(m) => return Ok(Payload::Message(m.recipient(to.clone()))),
                };
                Ok(Payload::Message(
                    ChannelMessage::new("", content).recipient(to.clone()),
                ))
            })
            .collect::<sssn::Result<_>>()?;
    }
    for id in channel.write_batch(&me(), payloads).await? {
        print_line(id)?;
    }
    Ok(())
}

async fn tail(
    channel: &RemoteChannel,
    after: Option<u64>,
    count: Option<usize>,
) -> anyhow::Result<()> {
    let mut sub = channel.subscribe(&me(), after).await?;
    let closed = stdout_closed();
    tokio::pin!(closed);
    let mut seen = 0usize;
    while count.is_none_or(|c| seen < c) {
        let next = tokio::select! {
            e = sub.next() => e,
            _ = tokio::signal::ctrl_c() => None,
            () = &mut closed => None,
        };
        let Some(entry) = next else { break };
        print_json(&Tailed {
            seq: entry.seq,
            message: &entry.message,
        })?;
        seen += 1;
    }
    Ok(())
}

fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn serve(path: PathBuf, bind: Option<String>) -> anyhow::Result<()> {
    let mut config =
        Config::parse(&read_file(&path)?).with_context(|| format!("config {}", path.display()))?;
    // A relative `sqlite:` path means next to the config file, wherever the server starts.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    config.resolve_paths(&dir);
    let addr = bind.unwrap_or_else(|| config.server.bind.clone());
    // Before anything is opened: a non-loopback address needs a chosen security.
    if let protected::Verdict::Warn(warning) =
        protected::check(config.security.as_ref(), &addr).await?
    {
        tracing::warn!("{warning}");
    }
    let built = config.build(&|v| std::env::var(v).ok()).await?;
    for channel in &built.channels {
        match channel.start().await {
            Ok(()) => {}
            // The store is not reachable (yet): serve anyway, degraded (/healthz answers
            // 503 "degraded"), and keep starting the channel in the background.
            Err(e) if e.kind() == sssn::ErrorKind::Store => {
                // The library's cause chain is at debug level; this line says what matters.
                tracing::debug!(channel = channel.id(), error = %e, "channel start failed");
                eprintln!(
                    "sssn: channel '{}' not started yet: its store {} did not answer ({}); retrying in the background",
                    channel.id(),
                    channel.store_description(),
                    e.message()
                );
                tokio::spawn(start_with_backoff(channel.clone()));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("starting channel '{}'", channel.id()));
            }
        }
    }
    let server = built
        .server
        .bind(addr.as_str())
        .await
        .with_context(|| format!("binding {addr}"))?;
    // Say why a declared channel is not reachable, instead of leaving every request to 404.
    for channel in &built.channels {
        if !server.channel_ids().iter().any(|id| id == channel.id()) {
            tracing::warn!(
                "channel '{}' is not served: it is private (visibility = \"private\"); \
                 set [server] serve_private = true to serve private channels",
                channel.id()
            );
        }
    }
    if server.channel_ids().is_empty() {
        tracing::warn!("no channel is served: every channel request will get 404");
    }
    let names = if server.channel_ids().is_empty() {
        "none".to_owned()
    } else {
        server.channel_ids().join(", ")
    };
    // The handlers are in place before anyone is told where to connect: a SIGTERM right
    // after the listening line drains instead of killing the process.
    let signalled = wait_for_signal();
    println!("sssn: listening on {} (channels: {names})", server.url());
    std::io::stdout().flush()?;
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        signalled.await;
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

/// Installs the SIGINT/SIGTERM handlers now and resolves at the first signal.
fn wait_for_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let next = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = next(term) => {}
                () = next(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs to stderr (`RUST_LOG`, else `default_level`). With the `otlp` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans also go to that OTLP collector, the channel
/// operations' spans included (they are DEBUG, below the log's usual level, so the
/// exporter has its own filter); the guard returned sends the last ones at exit.
fn init_logging(default_level: &str) -> Box<dyn std::any::Any> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| default_level.to_owned());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(EnvFilter::new(&directives));
    #[cfg(feature = "otlp")]
    {
        let (otlp, guard) = sssn_http::otlp::from_env("sssn").unzip();
        let export = format!("{directives},{}=debug", sssn::trace::CHANNEL_SPAN_TARGET);
        let otlp = otlp.map(|layer| layer.with_filter(EnvFilter::new(export)));
        tracing_subscriber::registry().with(fmt).with(otlp).init();
        Box::new(guard)
    }
    #[cfg(not(feature = "otlp"))]
    {
        tracing_subscriber::registry().with(fmt).init();
        Box::new(())
    }
}
