//! Tutorial 3 · Work Queue (sssn 0.0.1's `tutorials/03-work-queue.md`): competing
//! workers, claim → process → acknowledge or nack, and the reclaim of a lapsed claim.
//!
//! ```text
//! cargo run --example tutorial_03_work_queue -- [--store URL]
//! ```
//!
//! Prints what the Python prints (the two workers' lines interleave as they run). Where
//! the Python reached into the store to age a claim, this waits out a short
//! `claim_timeout`, and says what the rescuer got. Retries need no hand-made copies here:
//! a nacked message is claimed again with its attempt number, and `max_deliveries` turns
//! the last failure into a dead letter. The complete program's workers stop when nothing
//! is left to claim and nothing is in flight, so a job nacked by a worker that is about to
//! stop is still processed (the Python could end with fewer than 10).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::WorkQueueChannel;
use sssn::{Error, ErrorKind, Result};
use sssn_examples::{Out, say};

/// Command-line options.
#[derive(Parser)]
#[command(about = "Tutorial 3: a work queue with competing workers, acknowledgements and reclaim.")]
pub struct Args {
    /// Where the channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

async fn do_resize(job: &Value, out: &Out) {
    tokio::time::sleep(Duration::from_millis(10)).await; // simulate work
    say!(
        out,
        "  resized {} to {}px",
        job["file"].as_str().unwrap_or_default(),
        job["size"]
    );
}

async fn worker(queue: WorkQueueChannel, worker_id: &'static str, out: Out) -> Result<()> {
    loop {
        // Claim up to 2 jobs exclusively.
        let claims = queue.claim(worker_id, 2).await?;
        if claims.is_empty() {
            return Ok(()); // no more work
        }
        for claim in claims {
            let job: Value = claim.message.data()?;
            let file = job["file"].as_str().unwrap_or_default();
            say!(out, "[{worker_id}] processing {file}");
            do_resize(&job, &out).await;
            // Mark as done: the job leaves the queue.
            let settled = queue.ack(worker_id, &[claim.message.id.as_str()]).await?;
            if settled.done.is_empty() {
                say!(out, "[{worker_id}] failed: the claim lapsed before the ack");
            } else {
                say!(out, "[{worker_id}] done: {file}");
            }
        }
    }
}

/// Runs the tutorial, printing to `out`.
pub async fn run(args: Args, out: &Out) -> Result<()> {
    let store = sssn_examples::open_store(&args.store).await?;

    // Step 1 — create the queue.
    let queue = WorkQueueChannel::new("resize-jobs")
        .name("Image Resize Jobs")
        .claim_timeout(Duration::from_secs(60))
        .store(store.clone())
        .build();
    queue.start().await?;

    // Step 2 — enqueue jobs.
    let jobs = [
        json!({"file": "photo-1.jpg", "size": 1024}),
        json!({"file": "photo-2.jpg", "size": 800}),
        json!({"file": "photo-3.jpg", "size": 2048}),
        json!({"file": "photo-4.jpg", "size": 512}),
    ];
    for job in &jobs {
        queue.write("scheduler", job).await?;
    }
    say!(out, "Queued {} jobs", jobs.len());

    // Step 3 — two workers claim and process concurrently.
    let one = tokio::spawn(worker(queue.clone(), "worker-1", out.clone()));
    let two = tokio::spawn(worker(queue.clone(), "worker-2", out.clone()));
    for w in [one, two] {
        w.await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("worker: {e}")))??;
    }
    queue.stop().await;

    // Step 4 — a claim nobody settles is released after claim_timeout.
    let lease = Duration::from_millis(200);
    let queue = WorkQueueChannel::new("resize-jobs-reclaim")
        .claim_timeout(lease)
        .store(store.clone())
        .build();
    queue.start().await?;
    queue
        .write("scheduler", &json!({"file": "photo-5.jpg", "size": 640}))
        .await?;
    let stuck = queue.claim("stuck-worker", 1).await?;
    let rescued = queue.claim("rescue-worker", 10).await?;
    say!(
        out,
        "[rescue-worker] claimed {} while stuck-worker holds its claim",
        rescued.len()
    );
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let rescued = queue.claim("rescue-worker", 10).await?;
    match (stuck.first(), rescued.first()) {
        (Some(s), Some(r)) if s.message.id == r.message.id => {
            say!(
                out,
                "[rescue-worker] reclaimed {} after the claim lapsed (attempt {})",
                r.message.data::<Value>()?["file"]
                    .as_str()
                    .unwrap_or_default(),
                r.attempt
            );
            let _ = queue.ack("rescue-worker", &[r.message.id.as_str()]).await?;
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Internal,
                "the lapsed claim was not released",
            ));
        }
    }
    queue.stop().await;

    // The complete program: ten tasks, three workers, one in five attempts fails.
    let queue = WorkQueueChannel::new("tasks")
        .name("Task Queue")
        .claim_timeout(Duration::from_secs(30))
        .store(store)
        .build();
    queue.start().await?;
    for i in 0..10 {
        queue
            .write(
                "producer",
                &json!({"task_id": i, "payload": format!("data-{i}")}),
            )
            .await?;
    }
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for wid in ["worker-a", "worker-b", "worker-c"] {
        let (queue, results) = (queue.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let claims = queue.claim(wid, 3).await?;
                if claims.is_empty() {
                    let stats = queue.stats().await?;
                    if stats.backlog == 0 && stats.in_flight == 0 {
                        return Ok::<_, Error>(());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                for claim in claims {
                    // Simulate a random failure.
                    if uuid::Uuid::new_v4().as_bytes()[0] < 51 {
                        let _ = queue.nack(wid, &[claim.message.id.as_str()]).await?;
                        continue;
                    }
                    let task: Value = claim.message.data()?;
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(format!("{wid}:{}", task["task_id"]));
                    let _ = queue.ack(wid, &[claim.message.id.as_str()]).await?;
                }
            }
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("worker: {e}")))??;
    }
    let processed = results
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    say!(out, "Processed {processed} tasks");
    queue.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
