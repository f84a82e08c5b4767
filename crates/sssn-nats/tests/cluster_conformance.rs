//! The store on a three-node JetStream cluster on loopback with `?replicas=3`, for
//! nats-server 2.15 (`on_2_15::…`) and 2.9 (`on_2_9::…`); one cluster per release, shared
//! by the tests of this file, each under its own prefix.
//!
//! * `replicas_everywhere`: every stream the store creates is R3, and so is the claims
//!   consumer.
//! * `conformance::*`: the whole store conformance suite, unchanged, at R3: every read
//!   sees the writes confirmed before it (lookups through the stream leader, reads that
//!   wait for a lagging replica, claims that wait for work; crate README, "Reads see the
//!   writes confirmed before them"). `cluster_faults.rs` and `cluster_netns.rs` check
//!   the claim protocol on the cluster while nodes fail.

mod common;

macro_rules! cluster_conformance {
    ($release:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                match crate::common::try_cluster_store($release, stringify!($name)).await {
                    Ok(h) => sssn::conformance::$name(&h).await,
                    Err(reason) => crate::common::skip(stringify!($name), &reason),
                }
            }
        )*
    };
}

macro_rules! on_cluster {
    ($release:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn replicas_everywhere() {
            crate::replicas_everywhere($release).await
        }

        mod conformance {
            cluster_conformance!($release;
                shared_reads_follow_the_cursor, read_after_id, independent_cursors,
                claims_do_not_hide_from_shared_readers, ack_consumes, claim_order_and_limit,
                acked_never_reappears, nack_releases_to_others, nack_by_non_holder_is_stale,
                lease_expiry_makes_claimable, ack_after_expiry_is_fenced, nack_with_delay,
                extend_keeps_the_lease, max_deliveries_dead_letters, reject_dead_letters,
                work_queue_refuses_shared_reads, broadcast_refuses_claims,
                broadcast_readers_see_everything, subscribe_and_unsubscribe,
                lagging_subscriber_catches_up, subscribe_after_resumes,
                mailbox_delivers_every_addressed_message, evict_does_not_shift_cursors,
                remove_and_clear_keep_cursors_valid, retention_runs_on_every_kind,
                duplicate_ids_are_idempotent, stats_reflect_state, discovery_registry,
                periodic_channel_pulls, security_on_every_operation,
                write_batch_and_entries_after, direct_writes_cannot_spoof, lifecycle_and_drain,
                reopen_keeps_contents, ack_and_claim_takes_the_next_batch,
                subscribers_are_told_of_removed_messages, count_retention_follows_the_writes,
                history_by_id_time_and_latest, history_respects_mailboxes_and_rights);
        }
    };
}

mod on_2_15 {
    on_cluster!(crate::common::Release::V2_15);
}

mod on_2_9 {
    on_cluster!(crate::common::Release::V2_9);
}

/// Every stream a store with `?replicas=3` creates (channel, dead letters, state) has
/// three replicas, and the claims consumer follows its stream (three peers).
async fn replicas_everywhere(release: common::Release) {
    let ts = match common::try_cluster_store(release, "replicas_everywhere").await {
        Ok(ts) => ts,
        Err(reason) => return common::skip("replicas_everywhere", &reason),
    };
    assert_eq!(ts.store.options().replicas, 3);
    let jobs = sssn::channel::WorkQueueChannel::new("jobs")
        .store(ts.store.clone())
        .build();
    jobs.start().await.unwrap();
    let id = jobs.write("p", &1).await.unwrap();
    // The claims consumer may sit on a replica that applies the write a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let claimed = jobs.claim("w", 1).await.unwrap();
        if let Some(c) = claimed.first() {
            assert_eq!(c.message.id, id);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never became claimable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(jobs.ack("w", &[id]).await.unwrap().all_done());
    let js = async_nats::jetstream::new(ts.store.client().clone());
    let prefix = format!("{}_", ts.store.options().prefix);
    let mut names = js.stream_names();
    let mut ours = Vec::new();
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        let name = name.unwrap();
        if name.starts_with(&prefix) {
            ours.push(name);
        }
    }
    ours.sort();
    assert_eq!(ours.len(), 3, "channel, dead letters and state: {ours:?}");
    for name in &ours {
        let mut s = js.get_stream(name).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{name}");
        let peers = info.cluster.as_ref().map_or(0, |c| c.replicas.len() + 1);
        assert_eq!(peers, 3, "{name}: {:?}", info.cluster);
    }
    let stream = js.get_stream(ts.store.stream_name("jobs")).await.unwrap();
    let mut claims: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("claims").await.unwrap();
    let info = claims.info().await.unwrap();
    let peers = info.cluster.as_ref().map_or(0, |c| c.replicas.len() + 1);
    assert_eq!(peers, 3, "the claims consumer: {:?}", info.cluster);
}
