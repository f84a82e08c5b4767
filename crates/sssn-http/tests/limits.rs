//! Connection limits and timeouts on loopback: slow-header clients (slowloris) are cut off
//! at the header-read timeout, idle keep-alive connections at the idle timeout, slow bodies
//! get 408, event streams outlive every timeout, the connection cap holds clients in the
//! backlog until a slot frees, HTTP/2 with prior knowledge works, and shutdown finishes the
//! requests in flight. Every test uses short timeouts and bounds its own waiting.

mod common;

use std::time::{Duration, Instant};

use common::{serve_with, started};
use sssn::channel::{BroadcastChannel, PassthroughChannel};
use sssn_http::{Server, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn builder() -> ServerBuilder {
    let c = started(PassthroughChannel::new("c").public()).await;
    let feed = started(BroadcastChannel::new("feed").public()).await;
    Server::builder().channels([c, feed])
}

/// Reads until the peer closes (EOF or reset) or `limit` passes; returns what was read and
/// when the connection closed (`None`: still open at `limit`).
async fn read_until_closed(
    stream: &mut TcpStream,
    start: Instant,
    limit: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (out, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, Some(start.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Trickles a request head one byte every `every`, never finishing it; returns how long
/// the connection lived (`None`: still open after `limit`).
async fn slowloris(
    addr: std::net::SocketAddr,
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: sssn\r\nX-Slow: "
        .iter()
        .copied();
    let mut bytes = head.chain(std::iter::repeat(b'a'));
    let mut buf = [0u8; 256];
    while start.elapsed() < limit {
        if stream.write_all(&[bytes.next().unwrap()]).await.is_err() {
            return Some(start.elapsed());
        }
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Err(_) => {} // still open: next byte
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => panic!("the server answered a request it never fully received"),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_at_the_header_read_timeout() {
    let timeout = Duration::from_millis(600);
    let h = serve_with(
        builder()
            .await
            .header_read_timeout(Some(timeout))
            .idle_timeout(Some(Duration::from_secs(30))),
    )
    .await;
    let addr = h.server.local_addr();
    // 100 clients trickling a byte every 100 ms, and 20 that connect and send nothing.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(slowloris(
            addr,
            Duration::from_millis(100),
            Duration::from_secs(5),
        )));
    }
    for _ in 0..20 {
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).await.unwrap();
            read_until_closed(&mut s, start, Duration::from_secs(5))
                .await
                .1
        }));
    }
    let mut lived = Vec::new();
    for t in tasks {
        let life = t
            .await
            .unwrap()
            .expect("a slow client was still connected after 5 s");
        lived.push(life);
    }
    lived.sort();
    let (first, last) = (lived[0], lived[lived.len() - 1]);
    eprintln!(
        "slow-header connections lived {} ms to {} ms (header_read_timeout {} ms)",
        first.as_millis(),
        last.as_millis(),
        timeout.as_millis()
    );
    assert!(
        first >= timeout - Duration::from_millis(50),
        "closed too early: {first:?}"
    );
    assert!(
        last < timeout + Duration::from_millis(900),
        "closed too late: {last:?}"
    );
    // The server still answers.
    h.get("/healthz", "x").await.ok();
}

#[tokio::test]
async fn idle_keep_alive_connections_close_at_the_idle_timeout_not_the_header_timeout() {
    let h = serve_with(
        builder()
            .await
            .header_read_timeout(Some(Duration::from_millis(300)))
            .idle_timeout(Some(Duration::from_millis(1_200))),
    )
    .await;
    let mut s = TcpStream::connect(h.server.local_addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle_from = Instant::now();
    // Longer than the header timeout: still open, and serves a second request.
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "kept alive past the header timeout"
    );
    let idle_from2 = Instant::now();
    let (_, closed) = read_until_closed(&mut s, idle_from2, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle connection stayed open");
    eprintln!(
        "idle keep-alive connection closed after {} ms (idle_timeout 1200 ms)",
        closed.as_millis()
    );
    assert!(closed >= Duration::from_millis(1_150), "{closed:?}");
    assert!(closed < Duration::from_millis(2_500), "{closed:?}");
    assert!(idle_from.elapsed() > Duration::from_millis(1_800));
}

#[tokio::test]
async fn a_slow_body_gets_408_at_the_body_timeout() {
    let h = serve_with(
        builder()
            .await
            .body_timeout(Some(Duration::from_millis(500))),
    )
    .await;
    let start = Instant::now();
    let mut s = TcpStream::connect(h.server.local_addr()).await.unwrap();
    s.write_all(
        b"PUT /channels/c HTTP/1.1\r\nHost: sssn\r\nAuthorization: Bearer me\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n[1,",
    )
    .await
    .unwrap();
    let (reply, closed) = read_until_closed(&mut s, start, Duration::from_secs(5)).await;
    let reply = String::from_utf8_lossy(&reply);
    let elapsed = closed.expect("the connection was closed after the 408");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains(r#""kind":"timeout""#), "{reply}");
    assert!(reply.contains("did not arrive within 500 ms"), "{reply}");
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2_000), "{elapsed:?}");
    // Nothing was written.
    let read = h.get("/channels/c?limit=10", "reader").await.ok();
    assert_eq!(read["messages"].as_array().unwrap().len(), 0);
    // A body that arrives in time, in pieces, is fine.
    let mut s = TcpStream::connect(h.server.local_addr()).await.unwrap();
    s.write_all(
        b"PUT /channels/c HTTP/1.1\r\nHost: sssn\r\nAuthorization: Bearer me\r\nContent-Length: 5\r\nConnection: close\r\n\r\n[1,",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"2]").await.unwrap();
    let (reply, _) = read_until_closed(&mut s, Instant::now(), Duration::from_secs(5)).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test]
async fn event_streams_outlive_every_timeout() {
    let short = Some(Duration::from_millis(200));
    let h = serve_with(
        builder()
            .await
            .header_read_timeout(short)
            .body_timeout(short)
            .idle_timeout(short)
            .sse_keep_alive(Duration::from_secs(30)),
    )
    .await;
    let mut events = h.events("feed", "dash", None).await;
    events.next().await.expect("ready event");
    // Quiet for five times every timeout, then a message still arrives.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    h.put("/channels/feed", "writer", r#"{"late": true}"#)
        .await
        .ok();
    let (_, message) = events.next_message().await;
    assert_eq!(message["content"]["data"]["late"], true);
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_until_a_slot_frees() {
    let h = serve_with(
        builder()
            .await
            .max_connections(2)
            .header_read_timeout(Some(Duration::from_secs(30))),
    )
    .await;
    let addr = h.server.local_addr();
    let hold1 = TcpStream::connect(addr).await.unwrap();
    let hold2 = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third client connects (the backlog holds it) but is not served.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served over the cap: {early:?}");
    // One held connection closes: the waiting client is served at once.
    drop(hold1);
    let freed = Instant::now();
    let (reply, _) = read_until_closed(&mut waiting, freed, Duration::from_secs(5)).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(freed.elapsed() < Duration::from_secs(2));
    drop(hold2);
}

#[tokio::test]
async fn http2_with_prior_knowledge_still_works() {
    let h = serve_with(
        builder()
            .await
            .body_timeout(Some(Duration::from_millis(300))),
    )
    .await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let r = h2
        .put(h.url("/channels/c"))
        .header("authorization", "Bearer me")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h2
        .get(h.url("/channels/c"))
        .header("authorization", "Bearer reader")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["messages"][0]["content"]["data"],
        serde_json::json!([1, 2])
    );
    // A slow body on an HTTP/2 stream: 408 too, and the connection serves on.
    use futures::StreamExt as _;
    let slow = futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("[1,")) })
        .chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(bytes::Bytes::from("2]"))
        }));
    let start = Instant::now();
    let r = h2
        .put(h.url("/channels/c"))
        .header("authorization", "Bearer me")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 408);
    assert!(start.elapsed() < Duration::from_millis(1_500));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "timeout");
    let r = h2.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn shutdown_finishes_the_requests_in_flight_then_stops() {
    let h = serve_with(builder().await).await;
    let addr = h.server.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"PUT /channels/c HTTP/1.1\r\nHost: sssn\r\nAuthorization: Bearer me\r\nContent-Length: 5\r\n\r\n[1,",
    )
    .await
    .unwrap();
    // An idle kept-alive connection and a slow-header one do not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\nX-Slow: a")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(h.server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "waits for the request in flight");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    s.write_all(b"2]").await.unwrap();
    let (reply, _) = read_until_closed(&mut s, Instant::now(), Duration::from_secs(5)).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Well within the 10 s header-read timeout the slow client would otherwise get.
    tokio::time::timeout(Duration::from_secs(3), stopping)
        .await
        .expect("shutdown completes")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_slow_head_on_a_kept_alive_connection_is_cut_off_at_the_header_timeout() {
    let h = serve_with(
        builder()
            .await
            .header_read_timeout(Some(Duration::from_millis(400)))
            .idle_timeout(Some(Duration::from_secs(30))),
    )
    .await;
    let mut s = TcpStream::connect(h.server.local_addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: sssn\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Idle for longer than the header timeout (idle is not a slow head), then trickle.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let start = Instant::now();
    let mut closed = None;
    for &b in b"GET /healthz HTTP/1.1\r\nHost: sssn\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[b]).await.is_err() {
            closed = Some(start.elapsed());
            break;
        }
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = Some(start.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("answered an incomplete request"),
        }
    }
    let closed = closed.expect("the slow head was not cut off");
    assert!(closed >= Duration::from_millis(350), "{closed:?}");
    assert!(closed < Duration::from_millis(1_200), "{closed:?}");
}
