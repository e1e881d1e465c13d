//! What the registry's metrics mean: the HELP text an exporter shows.

use metrics::{Unit, describe_counter, describe_histogram};

/// Describes every metric this crate records to the installed recorder (call it once, after
/// installing one).
pub fn describe_metrics() {
    describe_counter!(
        "burrow_registry_operations_total",
        "Registry operations, by operation and outcome."
    );
    describe_histogram!(
        "burrow_registry_operation_seconds",
        Unit::Seconds,
        "Time a registry operation took, by operation."
    );
}
