//! A `ChannelClient` wired from a TOML file (`ClientConfig`, `connect_from_config`):
//! remote channels with tokens inline or from the environment, channels the program passes
//! in, channels declared like `sssn serve`'s; then reads and writes through a real server.
//! Bad files, missing environment variables and missing local channels are refused with
//! the file, line and column, and leave the client untouched.

mod common;

use std::sync::Arc;

use common::{serve, started};
use serde_json::json;
use sssn::channel::{BroadcastChannel, ChannelState, WorkQueueChannel};
use sssn::security::AclSecurity;
use sssn::{ChannelClient, ChannelKind, ErrorKind};
use sssn_http::{ClientConfig, ConnectFromConfig, Transport};

/// A guarded work queue on a server: `worker` authenticates only with its secret token.
async fn guarded_jobs() -> (sssn::Channel, common::Harness) {
    let acl = Arc::new(AclSecurity::new(&["worker"], &["worker"], &[] as &[&str]));
    acl.add_token("s3cret-worker-token", "worker");
    let jobs = started(WorkQueueChannel::new("jobs").public().security(acl)).await;
    let h = serve(vec![jobs.clone()]).await;
    (jobs, h)
}

fn env(var: &str) -> Option<String> {
    (var == "JOBS_TOKEN").then(|| "s3cret-worker-token".to_owned())
}

#[tokio::test]
async fn remote_and_local_channels_from_a_file() {
    let (jobs, h) = guarded_jobs().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[remote]]
id = "jobs"
url = "{jobs_url}"
token_env = "JOBS_TOKEN"

[[remote]]
id = "same-jobs"              # the server's URL: the channel is named by `channel`
url = "{server}/channels/jobs"
token = "s3cret-worker-token"
transport = "http"

[[local]]
id = "results"

[[local]]
id = "out"
channel = "results"

[[channel]]
id = "scratch"
kind = "work-queue"
claim_timeout = "30s"
retention = {{ max_count = 100 }}
"#,
            jobs_url = h.server.channel_url("jobs"),
            server = h.server.url().trim_end_matches('/'),
        ),
    )
    .unwrap();
    let results = started(BroadcastChannel::new("results")).await;
    let config = ClientConfig::load(&path).unwrap();
    assert_eq!(
        config.ids(),
        ["jobs", "same-jobs", "results", "out", "scratch"]
    );
    let client = ChannelClient::new("worker");
    let wired = config
        .connect_with_env(&client, std::slice::from_ref(&results), &env)
        .await
        .unwrap();
    assert_eq!(
        client.channel_ids(),
        ["jobs", "out", "results", "same-jobs", "scratch"]
    );
    assert_eq!(wired.remotes.len(), 2);
    assert_eq!(wired.remotes[1].transport_in_use(), Some(Transport::Http));

    // Remote: written through the server with the token from the environment.
    let id = client
        .work_queue("jobs")
        .unwrap()
        .write(&json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(
        jobs.stats().await.unwrap().stored,
        1,
        "stored on the server"
    );
    let claimed = client
        .work_queue("same-jobs")
        .unwrap()
        .claim(5)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, id);
    assert_eq!(claimed[0].message.sender_id, "worker");

    // Local: the passed channel, under its own id and under another.
    client.channel("out").unwrap().write(&"done").await.unwrap();
    let got = client.channel("results").unwrap().read(10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data::<String>().unwrap(), "done");

    // Declared: built from the same table as `sssn serve`'s, started, handed back.
    let scratch = &wired.channels[0];
    assert_eq!(
        (scratch.id(), scratch.kind()),
        ("scratch", ChannelKind::WorkQueue)
    );
    assert_eq!(scratch.state(), ChannelState::Running);
    assert_eq!(scratch.retention().1, Some(100));
    client
        .work_queue("scratch")
        .unwrap()
        .write(&7)
        .await
        .unwrap();
    assert_eq!(
        client
            .work_queue("scratch")
            .unwrap()
            .claim(1)
            .await
            .unwrap()
            .len(),
        1
    );
    wired.stop().await;
    assert_ne!(scratch.state(), ChannelState::Running);
}

#[tokio::test]
async fn connect_from_config_reads_the_environment() {
    let h = serve(vec![started(BroadcastChannel::new("news").public()).await]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    // An environment variable every test process has, as the token: open security
    // takes it as the caller's id.
    std::fs::write(
        &path,
        format!(
            "[[remote]]\nid = \"news\"\nurl = \"{}\"\ntoken_env = \"PATH\"\n",
            h.server.channel_url("news")
        ),
    )
    .unwrap();
    let client = ChannelClient::new("reader");
    let wired = client.connect_from_config(&path, &[]).await.unwrap();
    assert_eq!(wired.remotes.len(), 1);
    client.channel("news").unwrap().write(&1).await.unwrap();
    assert_eq!(
        client.channel("news").unwrap().read(5).await.unwrap().len(),
        1
    );
}

/// The error of wiring `text`, with the client left without channels.
async fn refused(text: &str, local: &[sssn::Channel]) -> sssn::Error {
    let client = ChannelClient::new("worker");
    let err = match ClientConfig::parse("client.toml", text) {
        Ok(config) => config
            .connect_with_env(&client, local, &env)
            .await
            .unwrap_err(),
        Err(e) => e,
    };
    assert!(
        client.channel_ids().is_empty(),
        "nothing is wired on an error: {:?}",
        client.channel_ids()
    );
    err
}

#[tokio::test]
async fn bad_files_are_refused_at_their_line_and_column() {
    let url = "http://127.0.0.1:9/channels/jobs";
    for (text, at, says) in [
        (
            "[[remote]]\nid = \"jobs\"\nurl = ",
            "client.toml:3:",
            "string",
        ),
        (
            "[[remote]]\nid = \"jobs\"\nuri = \"x\"",
            "client.toml:",
            "unknown field",
        ),
        ("[[remote]]\nid = \"jobs\"", "client.toml:1:1", "url"),
        (
            "[[remotes]]\nid = \"jobs\"",
            "client.toml:1:",
            "unknown field",
        ),
        (
            "[[channel]]\nid = \"c\"\nkind = \"periodic\"\nperiod = \"0s\"",
            "client.toml:4:10",
            "longer than zero",
        ),
        (
            "[[channel]]\nid = \"c\"\nkind = \"broadcast\"\nretention = { max_count = -2 }",
            "client.toml:4:",
            "at least 1",
        ),
        (
            &format!("[[remote]]\nid = \"a\"\nurl = \"{url}\"\n\n[[local]]\nid = \"a\""),
            "client.toml:6:6",
            "wired twice (first at client.toml:2:6)",
        ),
        (
            &format!("[[remote]]\nid = \"a\"\nurl = \"{url}\"\ntransport = \"carrier-pigeon\""),
            "client.toml:4:13",
            "unknown transport",
        ),
        (
            &format!(
                "[[remote]]\nid = \"a\"\nurl = \"{url}\"\ntoken = \"t\"\ntoken_env = \"JOBS_TOKEN\""
            ),
            "client.toml:5:13",
            "both token and token_env",
        ),
        (
            "[[remote]]\nid = \"a\"\nurl = \"ftp://somewhere/channels/a\"",
            "client.toml:3:7",
            "remote 'a'",
        ),
        (
            "[[channel]]\nid = \"ok\"\nkind = \"broadcast\"\n\n[[channel]]\nid = \"c\"\nkind = \"carousel\"",
            "client.toml:5:1", // the table of the declared channel
            "channel 'c': unknown channel kind 'carousel'",
        ),
        (
            "[[channel]]\nid = \"c\"\nkind = \"broadcast\"\nclaim_timeout = 5",
            "client.toml:",
            "claim_timeout",
        ),
        (
            "[[channel]]\nid = \"c\"\nkind = \"broadcast\"\nstore = \"redis://x\"",
            "client.toml:",
            "unknown store",
        ),
    ] {
        let err = refused(text, &[]).await;
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{text}: {err}");
        let message = err.message();
        assert!(
            message.starts_with(at),
            "{text}\n  -> {message} (want {at})"
        );
        assert!(
            message.contains(says),
            "{text}\n  -> {message} (want {says})"
        );
    }
}

#[tokio::test]
async fn a_missing_environment_variable_or_local_channel_is_named() {
    let url = "http://127.0.0.1:9/channels/jobs";
    let err = refused(
        &format!("[[remote]]\nid = \"jobs\"\nurl = \"{url}\"\ntoken_env = \"NOT_SET_ANYWHERE\""),
        &[],
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.message(),
        "client.toml:4:13: environment variable NOT_SET_ANYWHERE (the token of remote 'jobs') is not set"
    );
    let other = started(BroadcastChannel::new("other")).await;
    let err = refused(
        "[[channel]]\nid = \"fine\"\nkind = \"broadcast\"\n\n[[local]]\nid = \"results\"",
        &[other],
    )
    .await;
    assert_eq!(
        err.message(),
        "client.toml:6:6: local channel 'results' was not passed in (passed: other)"
    );
    let err = ClientConfig::load("/no/such/dir/client.toml").unwrap_err();
    assert!(err.message().contains("/no/such/dir/client.toml"), "{err}");
}

#[test]
fn the_documented_file_parses() {
    let doc = include_str!("../../../docs/http-api.md");
    let section = &doc[doc.find("#### Wired from a file").expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let config = ClientConfig::parse("http-api.md", text).unwrap();
    assert_eq!(config.ids(), ["jobs", "results", "scratch"]);
}
