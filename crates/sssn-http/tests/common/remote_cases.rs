// The remote client gives the same operations, semantics and error kinds as a local
// channel: each test runs the same steps through a `ChannelClient` wired locally and one
// wired remotely, and compares. Included by `tests/remote.rs` (plain HTTP) and
// `tests/remote_stream.rs` (the stream transport), which set `TRANSPORT`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{serve, started};
use serde_json::json;
use sssn::channel::{
    BroadcastChannel, ChannelState, MailboxChannel, PassthroughChannel, ReadOptions,
    WorkQueueChannel,
};
use sssn::security::{AclSecurity, JwtSecurity, Principal, Role, Security};
use sssn::{Channel, ChannelClient, ChannelEndpoint, ChannelMessage, Content, ErrorKind, Payload};
use sssn_http::RemoteChannel;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// `ConnectRemote::connect_remote`, with the transport under test.
trait ConnectRemote {
    fn connect_remote(
        &self,
        id: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<RemoteChannel, sssn::Error>;
}

impl ConnectRemote for ChannelClient {
    fn connect_remote(
        &self,
        id: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<RemoteChannel, sssn::Error> {
        let remote = RemoteChannel::connect_to(url, id, token)?.transport(TRANSPORT);
        self.connect_endpoint(id, Arc::new(remote.clone()));
        Ok(remote)
    }
}

/// A local client and a remote client (through a server) for the same channel.
async fn pair(
    channel: &Channel,
    system_id: &str,
) -> (ChannelClient, ChannelClient, common::Harness) {
    let h = serve(vec![channel.clone()]).await;
    let local = ChannelClient::new(system_id);
    local.connect(channel.id(), channel.clone());
    let remote = ChannelClient::new(system_id);
    remote
        .connect_remote(channel.id(), &h.server.channel_url(channel.id()), None)
        .unwrap();
    (local, remote, h)
}

#[tokio::test]
async fn write_read_cursor_and_after_like_local() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let (local, remote, _h) = pair(&ch, "sys").await;
    let id1 = remote
        .channel("p")
        .unwrap()
        .write(&json!({"n": 1}))
        .await
        .unwrap();
    let id2 = local
        .channel("p")
        .unwrap()
        .write(&json!({"n": 2}))
        .await
        .unwrap();
    let got = remote.channel("p").unwrap().read(10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [id1.as_str(), id2.as_str()]);
    assert_eq!(got[0].sender_id, "sys", "the caller's id is the sender");
    assert_eq!(got[0].data::<serde_json::Value>().unwrap(), json!({"n": 1}));
    let stored = ch.entries_after("x", 0, 10).await.unwrap();
    assert_eq!(
        *got[1], *stored[1].message,
        "the message read remotely is the one stored"
    );
    // Same identity, same server-side cursor: the local client sees nothing new either.
    assert!(
        local
            .channel("p")
            .unwrap()
            .read(10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        remote
            .channel("p")
            .unwrap()
            .read(10)
            .await
            .unwrap()
            .is_empty()
    );
    let id3 = local.channel("p").unwrap().write(&3).await.unwrap();
    assert_eq!(
        remote.channel("p").unwrap().read(10).await.unwrap()[0].id,
        id3
    );
    let after = remote
        .channel("p")
        .unwrap()
        .read_with(ReadOptions {
            limit: 10,
            exclusive: false,
            after: Some(id1.clone()),
        })
        .await
        .unwrap();
    let after_ids: Vec<&str> = after.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(after_ids, [id2.as_str(), id3.as_str()]);
    let info = remote.channel("p").unwrap().info().await.unwrap();
    assert_eq!(info, ch.info());
    let stats = remote.channel("p").unwrap().stats().await.unwrap();
    assert_eq!(stats.state, ChannelState::Running);
    assert_eq!(stats.writes, 3);
}

#[tokio::test]
async fn typed_content_direct_and_mixed_batches_round_trip() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let (_local, remote, _h) = pair(&ch, "sys").await;
    let content = Content::from_json(r#"{"celsius": 2.5, "sensor": "s1"}"#).unwrap();
    remote
        .channel("p")
        .unwrap()
        .write_content(content.clone())
        .await
        .unwrap();
    let msg = ChannelMessage::with_data("sys", &[1, 2])
        .unwrap()
        .correlation_id("c");
    let id = remote
        .channel("p")
        .unwrap()
        .write_message(msg.clone())
        .await
        .unwrap();
    assert_eq!(id, msg.id);
    let ids = remote
        .channel("p")
        .unwrap()
        .write_batch(vec![
            Payload::Data(json!("d")),
            Payload::Content(content.clone()),
            Payload::Message(ChannelMessage::with_data("sys", &3).unwrap()),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let same = remote
        .channel("p")
        .unwrap()
        .write_batch(vec![Payload::Data(json!(4)), Payload::Data(json!(5))])
        .await
        .unwrap();
    assert_eq!(same.len(), 2);
    let got = remote.channel("p").unwrap().read(100).await.unwrap();
    assert_eq!(got.len(), 7);
    assert_eq!(got[0].content, content, "content text kept exactly");
    assert_eq!(*got[1], msg, "a direct write is stored as sent");
    assert_eq!(got[3].content, content);
    assert_eq!(got[6].data::<i32>().unwrap(), 5);
    assert!(
        remote
            .channel("p")
            .unwrap()
            .write_batch(vec![])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Runs `op` through both clients and checks both fail with `kind`.
macro_rules! same_error {
    ($local:expr, $remote:expr, $kind:expr, |$c:ident| $op:expr) => {{
        let l = {
            let $c = &$local;
            $op.await
        };
        let r = {
            let $c = &$remote;
            $op.await
        };
        let l = l.expect_err("local call should fail");
        let r = r.expect_err("remote call should fail");
        assert_eq!(l.kind(), $kind, "local: {l}");
        assert_eq!(r.kind(), $kind, "remote: {r}");
        (l, r)
    }};
}

#[tokio::test]
async fn errors_have_the_same_kinds_as_local() {
    let q = started(WorkQueueChannel::new("q").public()).await;
    let (local, remote, _h) = pair(&q, "w").await;
    same_error!(local, remote, ErrorKind::UnsupportedOperation, |c| c
        .channel("q")
        .unwrap()
        .read(1));
    // A stale id is reported, the same way, on both paths.
    for c in [&local, &remote] {
        let settled = c.work_queue("q").unwrap().ack(&["nope"]).await.unwrap();
        assert_eq!(settled.stale, ["nope"]);
        let err = settled.into_result().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StaleClaim);
        let err = c.channel("elsewhere").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
    }
    let foreign = ChannelMessage::with_data("someone-else", &1).unwrap();
    same_error!(local, remote, ErrorKind::PermissionDenied, |c| c
        .channel("q")
        .unwrap()
        .write_message(foreign.clone()));

    let b = started(BroadcastChannel::new("b").public()).await;
    let (local, remote, _h2) = pair(&b, "r").await;
    same_error!(local, remote, ErrorKind::UnsupportedOperation, |c| c
        .channel("b")
        .unwrap()
        .claim(1));
    same_error!(local, remote, ErrorKind::InvalidArgument, |c| c
        .channel("b")
        .unwrap()
        .read_with(ReadOptions {
            after: Some("unknown-id".into()),
            ..ReadOptions::default()
        }));

    let acl = Arc::new(AclSecurity::new(&["reader"], &["writer"], &[] as &[&str]));
    let guarded = started(PassthroughChannel::new("g").public().security(acl)).await;
    let (local, remote, _h3) = pair(&guarded, "reader").await;
    same_error!(local, remote, ErrorKind::PermissionDenied, |c| c
        .channel("g")
        .unwrap()
        .write(&1));
    local.channel("g").unwrap().read(1).await.unwrap();
    remote.channel("g").unwrap().read(1).await.unwrap();
}

#[tokio::test]
async fn refused_writes_hand_the_payload_back_like_local() {
    let ingest = common::full_after("ingest", 1).await;
    let (local, remote, _h) = pair(&ingest, "w").await;
    remote.channel("ingest").unwrap().write(&0).await.unwrap();
    let (l, r) = same_error!(local, remote, ErrorKind::Backpressure, |c| c
        .channel("ingest")
        .unwrap()
        .write(&json!({"n": 7})));
    assert_eq!(l.into_rejected(), Some(Payload::Data(json!({"n": 7}))));
    assert_eq!(r.into_rejected(), Some(Payload::Data(json!({"n": 7}))));

    let stopped = started(PassthroughChannel::new("s").public()).await;
    let (local, remote, _h2) = pair(&stopped, "w").await;
    stopped.stop().await;
    let (_, r) = same_error!(local, remote, ErrorKind::ShuttingDown, |c| c
        .channel("s")
        .unwrap()
        .write(&1));
    assert_eq!(r.into_rejected(), Some(Payload::Data(json!(1))));
}

#[tokio::test]
async fn claim_ack_nack_fencing_and_lease_expiry() {
    let q = started(
        WorkQueueChannel::new("jobs")
            .public()
            .claim_timeout(Duration::from_millis(1500))
            .max_deliveries(3),
    )
    .await;
    let h = serve(vec![q.clone()]).await;
    let url = h.server.channel_url("jobs");
    let w1 = ChannelClient::new("w1");
    w1.connect_remote("jobs", &url, None).unwrap();
    let w2 = ChannelClient::new("w2");
    w2.connect_remote("jobs", &url, None).unwrap();

    let ids = w1
        .channel("jobs")
        .unwrap()
        .write_batch((0..4).map(|i| Payload::Data(json!(i))).collect())
        .await
        .unwrap();
    let c1 = w1.channel("jobs").unwrap().claim(2).await.unwrap();
    assert_eq!(c1.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(c1[0].attempt, 1);
    assert_eq!(c1[0].message.id, ids[0]);
    let c2 = w2.channel("jobs").unwrap().claim(10).await.unwrap();
    assert_eq!(c2.len(), 2, "competing consumers get different messages");

    // Fenced: w2 cannot settle w1's claims.
    let err = w2
        .channel("jobs")
        .unwrap()
        .ack(&[ids[0].clone()])
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleClaim);
    assert_eq!(
        w1.channel("jobs")
            .unwrap()
            .ack(&[ids[0].clone()])
            .await
            .unwrap()
            .done
            .len(),
        1
    );
    assert_eq!(
        w1.channel("jobs")
            .unwrap()
            .nack(&[ids[1].clone()])
            .await
            .unwrap()
            .done
            .len(),
        1
    );
    let again = w2.channel("jobs").unwrap().claim(1).await.unwrap();
    assert_eq!(again[0].message.id, ids[1]);
    assert_eq!(again[0].attempt, 2, "a nacked message is delivered again");

    // Renew w2's lease, then let every lease run out.
    assert_eq!(
        w2.channel("jobs")
            .unwrap()
            .extend(&[ids[1].clone()])
            .await
            .unwrap()
            .done
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let reclaimed = w1.channel("jobs").unwrap().claim(10).await.unwrap();
    let mut got: Vec<String> = reclaimed.iter().map(|c| c.message.id.clone()).collect();
    got.sort();
    let mut expected = vec![ids[1].clone(), ids[2].clone(), ids[3].clone()];
    expected.sort();
    assert_eq!(got, expected, "expired leases are claimable again");
    assert!(reclaimed.iter().all(|c| c.attempt >= 2));
    // w2's ack after its lease ran out is refused: w1 holds the message now.
    let err = w2
        .channel("jobs")
        .unwrap()
        .ack(&[ids[2].clone()])
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleClaim);

    // Nack with a delay, reject to the dead letters, redrive (admin, open security).
    assert_eq!(
        w1.channel("jobs")
            .unwrap()
            .nack_after(&[ids[2].clone()], Duration::from_secs(60))
            .await
            .unwrap()
            .done
            .len(),
        1
    );
    assert!(
        w2.channel("jobs")
            .unwrap()
            .claim(10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w1.channel("jobs")
            .unwrap()
            .reject(&[ids[3].clone()], "poison")
            .await
            .unwrap()
            .done
            .len(),
        1
    );
    let remote = RemoteChannel::connect(&url, Some("ops"))
        .unwrap()
        .transport(TRANSPORT);
    let admin = Principal::local("ignored: the token is the identity");
    let letters = remote.dead_letters(&admin, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "poison");
    assert_eq!(letters[0].message.id, ids[3]);
    assert_eq!(remote.redrive(&admin, &[ids[3].as_str()]).await.unwrap(), 1);
    let back = w2.channel("jobs").unwrap().claim(10).await.unwrap();
    assert_eq!(back[0].message.id, ids[3]);
    let stats = w1.channel("jobs").unwrap().stats().await.unwrap();
    assert_eq!(stats.acks, 1);
    assert_eq!(stats.dead_lettered, 0);
}

#[tokio::test]
async fn exclusive_read_is_a_claim_like_local() {
    let p = started(PassthroughChannel::new("p").public()).await;
    let (local, remote, _h) = pair(&p, "w").await;
    local.channel("p").unwrap().write(&1).await.unwrap();
    local.channel("p").unwrap().write(&2).await.unwrap();
    let opts = ReadOptions {
        limit: 1,
        exclusive: true,
        after: None,
    };
    let a = local
        .channel("p")
        .unwrap()
        .read_with(opts.clone())
        .await
        .unwrap();
    let b = remote.channel("p").unwrap().read_with(opts).await.unwrap();
    assert_ne!(a[0].id, b[0].id);
    assert_eq!(
        remote
            .channel("p")
            .unwrap()
            .ack(&[b[0].id.clone()])
            .await
            .unwrap()
            .done
            .len(),
        1
    );
}

#[tokio::test]
async fn jwt_tokens_identify_remote_callers() {
    let jwt = Arc::new(JwtSecurity::new("a-test-secret-that-is-32-bytes-long!").unwrap());
    let q = started(WorkQueueChannel::new("q").public().security(jwt.clone())).await;
    let h = serve(vec![q]).await;
    let url = h.server.channel_url("q");
    let token = jwt
        .generate_token(
            "worker-7",
            Role::Write,
            Some(&["q".to_owned()]),
            Duration::from_secs(60),
        )
        .unwrap();
    let client = ChannelClient::new("local-name");
    // v1's docs passed "Bearer <token>": accepted.
    let remote = client
        .connect_remote("q", &url, Some(&format!("Bearer {token}")))
        .unwrap();
    client.channel("q").unwrap().write(&1).await.unwrap();
    assert_eq!(remote.transport_in_use(), Some(TRANSPORT));
    let c = client.channel("q").unwrap().claim(1).await.unwrap();
    assert_eq!(
        c[0].message.sender_id, "worker-7",
        "the token's subject, not the client's id"
    );
    let reader = jwt
        .generate_token("dash", Role::Read, None, Duration::from_secs(60))
        .unwrap();
    let ro = ChannelClient::new("dash");
    ro.connect_remote("q", &url, Some(&reader)).unwrap();
    assert_eq!(
        ro.channel("q").unwrap().write(&1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let bad = ChannelClient::new("x");
    bad.connect_remote("q", &url, Some("forged")).unwrap();
    assert_eq!(
        bad.channel("q")
            .unwrap()
            .write(&1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unauthenticated
    );
    let err = bad.channel("q").unwrap().subscribe().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
}

#[tokio::test]
async fn unreachable_servers_and_unknown_channels() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = ChannelClient::new("x");
    client
        .connect_remote("c", &format!("http://{addr}/channels/c"), None)
        .unwrap();
    assert_eq!(
        client
            .channel("c")
            .unwrap()
            .read(1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Remote
    );

    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve(vec![ch]).await;
    // Server URL form: the channel id is the connection id.
    client.connect_remote("p", &h.server.url(), None).unwrap();
    client.channel("p").unwrap().write(&1).await.unwrap();
    client
        .connect_remote("missing", &h.server.url(), None)
        .unwrap();
    assert_eq!(
        client
            .channel("missing")
            .unwrap()
            .read(1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn remote_subscriptions_deliver_in_order_and_filter_mailboxes() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let (local, remote, _h) = pair(&feed, "dash").await;
    let mut rsub = remote.channel("feed").unwrap().subscribe().await.unwrap();
    let mut lsub = local.channel("feed").unwrap().subscribe().await.unwrap();
    for i in 0..20 {
        feed.write("sensor", &i).await.unwrap();
    }
    for i in 0..20 {
        let r = rsub.recv().await.unwrap();
        let l = lsub.recv().await.unwrap();
        assert_eq!(r.seq, l.seq);
        assert_eq!(r.message, l.message);
        assert_eq!(r.message.data::<i32>().unwrap(), i);
    }
    assert_eq!(rsub.position(), 20);
    // subscribe_after replays from a sequence.
    let mut replay = remote
        .channel("feed")
        .unwrap()
        .subscribe_after(17)
        .await
        .unwrap();
    assert_eq!(replay.recv().await.unwrap().seq, 18);
    // Unsubscribe closes remote subscriptions.
    remote.channel("feed").unwrap().unsubscribe().await;
    assert!(rsub.next().await.is_none());
    assert!(replay.next().await.is_none());

    let mail = started(MailboxChannel::new("mail").public()).await;
    let (_l, remote, _h2) = pair(&mail, "alice").await;
    let mut sub = remote.channel("mail").unwrap().subscribe().await.unwrap();
    for to in ["bob", "alice"] {
        let m = ChannelMessage::with_data("post", &to)
            .unwrap()
            .recipient(to);
        mail.write_message("post", m).await.unwrap();
    }
    let got = sub.recv().await.unwrap();
    assert_eq!(got.message.data::<String>().unwrap(), "alice");
    assert_eq!(got.seq, 2);
}

/// A TCP proxy whose connections can all be cut at once.
struct Proxy {
    addr: SocketAddr,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = broadcast::channel(4);
        let cut2 = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut on_cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = on_cut.recv() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn cut_all(&self) {
        let _ = self.cut.send(());
    }
}

#[tokio::test]
async fn remote_subscription_resumes_after_a_dropped_connection() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let h = serve(vec![feed.clone()]).await;
    let proxy = Proxy::start(h.server.local_addr()).await;
    let client = ChannelClient::new("dash");
    client
        .connect_remote(
            "feed",
            &format!("http://{}/channels/feed", proxy.addr),
            None,
        )
        .unwrap();
    let mut sub = client.channel("feed").unwrap().subscribe().await.unwrap();
    let mut seen = Vec::new();
    for round in 0..3u64 {
        for i in 0..50 {
            feed.write("sensor", &(round * 50 + i)).await.unwrap();
        }
        // Read part of the round, cut every connection, write more while disconnected.
        for _ in 0..25 {
            seen.push(sub.recv().await.unwrap().seq);
        }
        proxy.cut_all();
        for i in 0..10 {
            feed.write("sensor", &(1_000 + round * 10 + i))
                .await
                .unwrap();
        }
        while seen.len() < ((round + 1) * 60) as usize {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .expect("the subscription resumed")
                .unwrap();
            seen.push(e.seq);
        }
    }
    assert_eq!(seen, (1..=180).collect::<Vec<_>>(), "no gap, no duplicate");
}

#[tokio::test]
async fn ack_and_claim_like_local() {
    let local = started(WorkQueueChannel::new("local").public()).await;
    let served = started(WorkQueueChannel::new("served").public()).await;
    let h = serve(vec![served.clone()]).await;
    let remote = RemoteChannel::connect(&h.server.channel_url("served"), None)
        .unwrap()
        .transport(TRANSPORT);
    let endpoints: [(&str, &dyn ChannelEndpoint); 2] = [("local", &local), ("remote", &remote)];
    let me = Principal::local("w1");
    let other = Principal::local("w2");
    let mut outcomes = Vec::new();
    for (name, ep) in endpoints {
        let payloads = (0..5).map(|i| Payload::Data(json!(i))).collect();
        let ids = ep.write_batch(&me, payloads).await.unwrap();
        let first = ep.claim(&me, 2).await.unwrap();
        let first: Vec<&str> = first.iter().map(|c| c.message.id.as_str()).collect();
        let (settled, next) = ep
            .settle_and_claim(&me, &first, sssn::store::Settle::Ack, 2)
            .await
            .unwrap();
        assert_eq!(settled.done, ids[..2], "{name}");
        let next_ids: Vec<&str> = next.iter().map(|c| c.message.id.as_str()).collect();
        assert_eq!(next_ids, ids[2..4], "{name}");
        // One stale id, acknowledged by another caller: reported, and nothing claimed.
        let stale = [next_ids[0], ids[0].as_str()];
        let (fenced, none) = ep
            .settle_and_claim(&other, &stale, sssn::store::Settle::Ack, 0)
            .await
            .unwrap();
        assert!(none.is_empty(), "{name}");
        let (settled, last) = ep
            .settle_and_claim(&me, &next_ids, sssn::store::Settle::Ack, 10)
            .await
            .unwrap();
        outcomes.push((
            fenced.stale.len(),
            settled.done.len(),
            last.iter().map(|c| (c.seq, c.attempt)).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(outcomes[0], (2, 2, vec![(5, 1)]));
    assert_eq!(outcomes[0], outcomes[1], "remote answers as local");
    let s = served.stats().await.unwrap();
    assert_eq!((s.acknowledged, s.in_flight), (4, 1));
}
