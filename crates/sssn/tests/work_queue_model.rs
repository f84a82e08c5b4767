//! Property test: the work queue against a simple model, under any interleaving of
//! write / claim / ack / nack (with or without delay) / time passing.
//!
//! Checked at every step: each claim returns exactly the messages the model says are
//! claimable (oldest first), so no message is ever held by two live claims at once; acks
//! and nacks succeed exactly when the caller holds a live claim (fencing); attempt numbers
//! match. At the end, after leases run out and everything left is drained, every message is
//! acknowledged or dead-lettered — none is lost.

use std::time::Duration;

use proptest::prelude::*;
use sssn::ErrorKind;
use sssn::channel::WorkQueueChannel;

const LEASE_MS: u64 = 1000;
const MAX_DELIVERIES: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    Write,
    Claim {
        worker: usize,
        limit: usize,
    },
    Ack {
        worker: usize,
        pick: usize,
    },
    Nack {
        worker: usize,
        pick: usize,
        delay_ms: Option<u64>,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Write),
        3 => (0..3usize, 1..4usize).prop_map(|(worker, limit)| Op::Claim { worker, limit }),
        2 => (0..3usize, 0..64usize).prop_map(|(worker, pick)| Op::Ack { worker, pick }),
        1 => (0..3usize, 0..64usize, proptest::option::of(0..1500u64))
            .prop_map(|(worker, pick, delay_ms)| Op::Nack { worker, pick, delay_ms }),
        1 => (0..1500u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Fate {
    Waiting { due: u64 },
    Held { worker: usize, deadline: u64 },
    Acked,
    Dead,
}

#[derive(Debug)]
struct Msg {
    id: String,
    attempts: u32,
    fate: Fate,
}

struct Model {
    now: u64,
    msgs: Vec<Msg>,
}

impl Model {
    /// Leases that ran out: back in line, or dead after the last delivery.
    fn expire(&mut self) {
        for m in &mut self.msgs {
            if let Fate::Held { deadline, .. } = m.fate
                && deadline <= self.now
            {
                m.fate = if m.attempts >= MAX_DELIVERIES {
                    Fate::Dead
                } else {
                    Fate::Waiting { due: 0 }
                };
            }
        }
    }

    fn claim(&mut self, worker: usize, limit: usize) -> Vec<(String, u32)> {
        self.expire();
        let now = self.now;
        let mut out = Vec::new();
        for m in &mut self.msgs {
            if out.len() == limit {
                break;
            }
            if matches!(m.fate, Fate::Waiting { due } if due <= now) {
                m.attempts += 1;
                m.fate = Fate::Held {
                    worker,
                    deadline: now + LEASE_MS,
                };
                out.push((m.id.clone(), m.attempts));
            }
        }
        out
    }

    fn holds_live(&self, i: usize, worker: usize) -> bool {
        matches!(self.msgs[i].fate, Fate::Held { worker: w, deadline } if w == worker && deadline > self.now)
    }
}

fn name(worker: usize) -> String {
    format!("worker-{worker}")
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ch = WorkQueueChannel::new("jobs")
        .claim_timeout(Duration::from_millis(LEASE_MS))
        .max_deliveries(MAX_DELIVERIES)
        .build();
    ch.start().await.unwrap();
    let mut model = Model {
        now: 0,
        msgs: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Write => {
                let id = ch.write("producer", &model.msgs.len()).await.unwrap();
                model.msgs.push(Msg {
                    id,
                    attempts: 0,
                    fate: Fate::Waiting { due: 0 },
                });
            }
            Op::Claim { worker, limit } => {
                let got: Vec<(String, u32)> = ch
                    .claim(name(worker), limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.message.id.clone(), c.attempt))
                    .collect();
                prop_assert_eq!(got, model.claim(worker, limit));
            }
            Op::Ack { worker, pick } | Op::Nack { worker, pick, .. } if model.msgs.is_empty() => {
                let _ = (worker, pick);
            }
            Op::Ack { worker, pick } => {
                let i = pick % model.msgs.len();
                let result = ch
                    .ack(name(worker), std::slice::from_ref(&model.msgs[i].id))
                    .await;
                let settled = result.unwrap();
                if model.holds_live(i, worker) {
                    prop_assert_eq!(settled.done.len(), 1);
                    model.msgs[i].fate = Fate::Acked;
                } else {
                    prop_assert_eq!(settled.stale.len(), 1);
                    prop_assert_eq!(
                        settled.into_result().unwrap_err().kind(),
                        ErrorKind::StaleClaim
                    );
                }
            }
            Op::Nack {
                worker,
                pick,
                delay_ms,
            } => {
                let i = pick % model.msgs.len();
                let ids = std::slice::from_ref(&model.msgs[i].id);
                let result = match delay_ms {
                    Some(ms) => {
                        ch.nack_after(name(worker), ids, Duration::from_millis(ms))
                            .await
                    }
                    None => ch.nack(name(worker), ids).await,
                };
                let settled = result.unwrap();
                if model.holds_live(i, worker) {
                    prop_assert_eq!(settled.done.len(), 1);
                    let m = &mut model.msgs[i];
                    m.fate = if m.attempts >= MAX_DELIVERIES {
                        Fate::Dead
                    } else {
                        Fate::Waiting {
                            due: model.now + delay_ms.unwrap_or(0),
                        }
                    };
                } else {
                    prop_assert_eq!(settled.stale.len(), 1);
                }
            }
            Op::Advance { ms } => {
                tokio::time::advance(Duration::from_millis(ms)).await;
                model.now += ms;
            }
        }
    }
    // Drain: let every lease and delay run out, then take and ack everything left.
    loop {
        tokio::time::advance(Duration::from_millis(2 * LEASE_MS)).await;
        model.now += 2 * LEASE_MS;
        let got = ch.claim("drainer", 1000).await.unwrap();
        let expected = model.claim(99, 1000);
        prop_assert_eq!(got.len(), expected.len());
        if got.is_empty() {
            break;
        }
        let ids: Vec<String> = got.iter().map(|c| c.message.id.clone()).collect();
        prop_assert_eq!(ch.ack("drainer", &ids).await.unwrap().done.len(), ids.len());
        for m in &mut model.msgs {
            if ids.contains(&m.id) {
                m.fate = Fate::Acked;
            }
        }
    }
    let dead = model.msgs.iter().filter(|m| m.fate == Fate::Dead).count();
    prop_assert!(
        model
            .msgs
            .iter()
            .all(|m| matches!(m.fate, Fate::Acked | Fate::Dead)),
        "nothing lost"
    );
    let stats = ch.stats().await.unwrap();
    prop_assert_eq!(stats.stored, 0);
    prop_assert_eq!(stats.dead_lettered as usize, dead);
    prop_assert_eq!(stats.acknowledged as usize, model.msgs.len() - dead);
    let letters = ch.dead_letters("admin", 1000).await.unwrap();
    for letter in letters {
        let m = model
            .msgs
            .iter()
            .find(|m| m.id == letter.message.id)
            .unwrap();
        prop_assert_eq!(&m.fate, &Fate::Dead);
        prop_assert_eq!(letter.attempts, MAX_DELIVERIES);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn work_queue_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(run(ops))?;
    }
}
