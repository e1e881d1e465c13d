//! What the runtime's metrics mean: the HELP text an exporter shows beside each series.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every metric the runtime records to the installed recorder (call it once, after
/// installing one: a description given before is lost).
pub fn describe_metrics() {
    describe_counter!(
        "burrow_activations_total",
        "Actors opened, by kind: cold (from its file or the log) or warm."
    );
    describe_counter!(
        "burrow_activations_outlived_total",
        "Activations closed because they were claimed under an earlier incarnation of this node in the cluster."
    );
    describe_counter!(
        "burrow_evictions_total",
        "Actors closed, by reason: idle, capacity (the resident limit), admin or shutdown."
    );
    describe_counter!(
        "burrow_idle_trims_total",
        "Idle actors whose caches were trimmed without closing them."
    );
    describe_counter!(
        "burrow_overloaded_total",
        "Calls refused as overloaded (a full mailbox or shard queue)."
    );
    describe_counter!(
        "burrow_quarantines_total",
        "Actor files moved aside as damaged, by reason."
    );
    describe_counter!(
        "burrow_actors_deleted_total",
        "Actors deleted with their files."
    );
    describe_counter!("burrow_checkpoints_total", "WAL checkpoints completed.");
    describe_counter!(
        "burrow_alarms_dead_total",
        "Alarms given up after their last retry (dead letters)."
    );
    describe_counter!(
        "burrow_alarm_retries_total",
        "Alarm deliveries retried after a failure."
    );
    describe_counter!(
        "burrow_cluster_alarms_adopted_total",
        "Alarms of actors whose node left, adopted by this node."
    );
    describe_counter!(
        "burrow_log_images_total",
        "Full images of an actor written to the replicated log."
    );
    describe_counter!(
        "burrow_log_images_skipped_total",
        "Images due but not written because they exceeded the largest image the log takes (the turn's changes are appended instead)."
    );
    describe_counter!(
        "burrow_log_fenced_total",
        "Appends to the replicated log refused because another activation holds the actor."
    );
    describe_counter!(
        "burrow_log_append_failures_total",
        "Appends to the replicated log that failed (the turn was not acknowledged)."
    );
    describe_counter!(
        "burrow_log_catch_ups_total",
        "Actor files brought up to date from the replicated log on activation."
    );
    describe_counter!(
        "burrow_log_rebuilds_total",
        "Actor files rebuilt entirely from the replicated log."
    );
    describe_gauge!("burrow_resident_actors", "Actors open now.");
    describe_histogram!(
        "burrow_turn_seconds",
        Unit::Seconds,
        "Time from a turn's start to its commit."
    );
    describe_histogram!("burrow_turns_per_commit", "Turns grouped into one commit.");
    describe_histogram!(
        "burrow_mailbox_depth",
        "Calls waiting in an actor's mailbox when one arrives."
    );
    describe_histogram!(
        "burrow_log_append_seconds",
        Unit::Seconds,
        "Time to append a commit to the replicated log."
    );
}
