//! What the log's and the cluster's metrics mean: the HELP text an exporter shows.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every metric this crate records to the installed recorder (call it once, after
/// installing one).
pub fn describe_metrics() {
    describe_counter!(
        "burrow_cluster_fenced_appends_total",
        "Appends refused by the log's fence (a stale epoch or head): a superseded holder tried to write."
    );
    describe_counter!(
        "burrow_cluster_claims_total",
        "Actors claimed by this node."
    );
    describe_counter!(
        "burrow_cluster_takeovers_total",
        "Claims that took an actor from another node."
    );
    describe_counter!(
        "burrow_cluster_leases_lost_total",
        "Times this node's membership lease expired before it was renewed."
    );
    describe_counter!(
        "burrow_log_compacted_entries_total",
        "Log entries removed by compaction."
    );
    describe_gauge!("burrow_log_entries", "Entries in the log, by namespace.");
    describe_gauge!(
        "burrow_log_bytes",
        Unit::Bytes,
        "Bytes of entries in the log, by namespace."
    );
    describe_gauge!("burrow_log_images", "Images in the log, by namespace.");
    describe_gauge!(
        "burrow_log_oldest_entry_seconds",
        Unit::Seconds,
        "Age of the oldest entry in the log."
    );
    describe_histogram!("burrow_log_batch_size", "Appends written by one statement.");
    describe_histogram!(
        "burrow_log_claim_batch_size",
        "Claims made by one statement."
    );
}
