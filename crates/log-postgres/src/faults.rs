//! The log's fault switch for the cluster fault run (cargo feature `faults`): without the
//! feature the append is always fenced.

/// `BURROW_FAULT_UNFENCED_APPEND=1`: appends drop their epoch and head conditions (a mutant
/// the checkers must catch), and all go alone (the grouped statement of `batch.rs` keeps its
/// fence). Read once.
#[cfg(feature = "faults")]
pub(crate) fn unfenced_append() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = std::env::var("BURROW_FAULT_UNFENCED_APPEND").is_ok_and(|v| v == "1");
        if on {
            tracing::error!(
                "BURROW_FAULT_UNFENCED_APPEND=1: appends are NOT fenced (a test mutant)"
            );
        }
        on
    })
}

#[cfg(not(feature = "faults"))]
pub(crate) fn unfenced_append() -> bool {
    false
}
