//! The pattern, written once: one round of one system (producers and consumers, each
//! message consumed exactly once), timed and with its CPU time.

use super::*;

/// The part of every message the consumers check: the index it was sent with.
#[derive(Deserialize)]
pub(crate) struct Index {
    id: u64,
}

impl Index {
    /// The index carried by message JSON `bytes` (a record as [`record`] makes it).
    pub(crate) fn of(bytes: &[u8]) -> anyhow::Result<u64> {
        Ok(serde_json::from_slice::<Self>(bytes)
            .context("decoding a message")?
            .id)
    }

    /// The index.
    pub(crate) fn get(&self) -> u64 {
        self.id
    }
}

/// One round of one system.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// Messages per second.
    pub(super) rate: f64,
    /// This process's CPU time per message.
    pub(super) client_us: f64,
    /// The server's CPU time per message, where it is measured.
    pub(super) server_us: Option<f64>,
    /// Consumer takes per message, and those of them that came back empty.
    pub(super) takes: f64,
    pub(super) empty: f64,
}

/// What the driver saw of a round.
struct Driven {
    /// From the first send to the last acknowledgement.
    elapsed: Duration,
    takes: usize,
    empty: usize,
}

/// Opens a fresh queue of `system`, runs the pattern with `n` messages, closes the queue.
pub(super) async fn round(
    system: &dyn System,
    round: usize,
    n: usize,
) -> anyhow::Result<(Sample, Server)> {
    let queue = system.open(round).await.context("opening the queue")?;
    let mut producers = Vec::with_capacity(PRODUCERS);
    let mut consumers = Vec::with_capacity(CONSUMERS);
    let mut setup = async {
        for _ in 0..PRODUCERS {
            producers.push(queue.producer().await.context("connecting a producer")?);
        }
        for _ in 0..CONSUMERS {
            consumers.push(queue.consumer().await.context("connecting a consumer")?);
        }
        anyhow::Ok(())
    }
    .await;
    let server = queue.server();
    let mut outcome = Err(anyhow::anyhow!("not run"));
    let (mut client, mut server_cpu) = (Duration::ZERO, None);
    if setup.is_ok() {
        let server_before = server.read();
        let client_before = process_cpu_time();
        outcome = drive(producers, consumers, n).await;
        if let (Some(a), Some(b)) = (process_cpu_time(), client_before) {
            client = a.saturating_sub(b);
        }
        // Asked again: a server process started during the round (an autovacuum worker)
        // counts whole.
        if let (Some(b), Some(a)) = (server_before, queue.server().read()) {
            server_cpu = Some(server_delta(&b, &a));
        }
    } else {
        drop((producers, consumers));
    }
    let closed = queue.close().await.context("closing the queue");
    setup = setup.and(closed);
    let driven = outcome?;
    setup?;
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Ok((
        Sample {
            rate: n as f64 / driven.elapsed.as_secs_f64(),
            client_us: per_msg(client),
            server_us: server_cpu.map(per_msg),
            takes: driven.takes as f64 / n as f64,
            empty: driven.empty as f64 / n as f64,
        },
        server,
    ))
}

/// The pattern: producers and consumers at the same time until all `n` messages are
/// acknowledged, each exactly once.
async fn drive(
    producers: Vec<Box<dyn Producer>>,
    consumers: Vec<Box<dyn Consumer>>,
    n: usize,
) -> anyhow::Result<Driven> {
    let stop = CancellationToken::new();
    let takes = Arc::new(AtomicUsize::new(0));
    let empty = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let acked = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    let producer_count = producers.len();
    for (k, mut p) in producers.into_iter().enumerate() {
        tasks.spawn(async move {
            for i in (k..n).step_by(producer_count) {
                p.send(&record(i))
                    .await
                    .with_context(|| format!("producer {k}, message {i}"))?;
            }
            anyhow::Ok(())
        });
    }
    for (k, mut c) in consumers.into_iter().enumerate() {
        let (stop, seen, acked, last) = (stop.clone(), seen.clone(), acked.clone(), last.clone());
        let (takes, empty) = (takes.clone(), empty.clone());
        tasks.spawn(async move {
            let waits = c.waits();
            let combines = c.combines_ack_and_take();
            // How many the last take returned, not acknowledged yet.
            let mut held = 0;
            let count_acked = |held: usize| {
                let total = acked.fetch_add(held, Ordering::AcqRel) + held;
                if total == n {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    stop.cancel();
                }
            };
            loop {
                let taken = if held > 0 && combines {
                    let taken = c
                        .ack_and_take(TAKE)
                        .await
                        .with_context(|| format!("consumer {k}: ack and take"))?;
                    count_acked(std::mem::take(&mut held));
                    taken
                } else {
                    if held > 0 {
                        c.ack()
                            .await
                            .with_context(|| format!("consumer {k}: ack"))?;
                        count_acked(std::mem::take(&mut held));
                    }
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        r = c.take(TAKE) => r.with_context(|| format!("consumer {k}: take"))?,
                    }
                };
                takes.fetch_add(1, Ordering::Relaxed);
                if taken.is_empty() {
                    empty.fetch_add(1, Ordering::Relaxed);
                    if !waits {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                    continue;
                }
                ensure!(
                    taken.len() <= TAKE,
                    "consumer {k} took {} messages, asked for at most {TAKE}",
                    taken.len()
                );
                for &i in &taken {
                    let slot = usize::try_from(i).ok().and_then(|i| seen.get(i));
                    let Some(slot) = slot else {
                        bail!("consumer {k} got message {i}, which was never sent");
                    };
                    ensure!(
                        !slot.swap(true, Ordering::Relaxed),
                        "message {i} was delivered twice"
                    );
                }
                held = taken.len();
            }
        });
    }
    // Generous: far slower than any system here, yet a lost message fails the round
    // instead of the whole scenario's deadline.
    let limit = Duration::from_secs(60).max(Duration::from_millis(n as u64 * 10));
    let joined = tokio::time::timeout(limit, async {
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(anyhow::anyhow!("task panicked: {e}")),
            }
        }
        Ok(())
    })
    .await;
    stop.cancel();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let done = acked.load(Ordering::Acquire);
    match joined {
        Ok(r) => r?,
        Err(_) => bail!(
            "stalled: {done} of {n} messages acknowledged after {} s",
            limit.as_secs()
        ),
    }
    ensure!(done == n, "{done} of {n} messages acknowledged");
    let last = last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .context("no last acknowledgement")?;
    Ok(Driven {
        elapsed: last - t,
        takes: takes.load(Ordering::Relaxed),
        empty: empty.load(Ordering::Relaxed),
    })
}
