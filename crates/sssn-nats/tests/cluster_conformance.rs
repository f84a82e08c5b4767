//! A subset of the store conformance suite, unchanged, on a three-node JetStream cluster
//! on loopback with every stream and claims consumer at three replicas (`?replicas=3`),
//! for nats-server 2.15 (`on_2_15::…`) and 2.9 (`on_2_9::…`). One cluster per release is
//! shared by the tests of this file, each test under its own prefix.
//!
//! The subset: the claim protocol (claim, ack, nack, leases, fencing, delays, dead
//! letters), idempotent appends, fan-out and push. Left out until the store reads its own
//! writes on replicated streams (see "Replicated streams" in the crate README): tests
//! whose last step reads, right after a write, through a replica that may not have applied
//! it yet. Observed on this cluster: `reopen_keeps_contents` (acknowledged count read by
//! direct get from a lagging replica), `periodic_channel_pulls` and
//! `evict_does_not_shift_cursors` (a shared read's R1 consumer on a follower that had not
//! applied the last write), `max_deliveries_dead_letters` (3 runs in 10: the redrive's
//! direct get of the dead letter from a lagging replica found nothing; a claim right after
//! a nack came back empty; a fetch from the new R3 claims consumer got a 503 before its
//! leader was elected).

mod common;

macro_rules! cluster_subset {
    ($release:expr) => {
        sssn::conformance_tests!(@each real_time,
            async { crate::common::try_cluster_store($release, crate::function_name!()).await };
            ack_consumes, claim_order_and_limit, acked_never_reappears, nack_releases_to_others,
            nack_by_non_holder_is_stale, lease_expiry_makes_claimable, ack_after_expiry_is_fenced,
            nack_with_delay, extend_keeps_the_lease, reject_dead_letters, duplicate_ids_are_idempotent, broadcast_readers_see_everything,
            subscribe_and_unsubscribe, lagging_subscriber_catches_up, write_batch_and_entries_after);
    };
}

mod on_2_15 {
    cluster_subset!(crate::common::Release::V2_15);
}

mod on_2_9 {
    cluster_subset!(crate::common::Release::V2_9);
}
