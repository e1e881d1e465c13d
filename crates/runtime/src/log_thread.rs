//! A thread of its own, with a current-thread tokio executor, for work against the log that
//! belongs to no shard (rebuilding the catalog, adopting orphaned alarms): its connections
//! then never live on a shard's executor.

/// Runs `work` with an executor on a new thread named `name`. A thread that cannot build its
/// executor logs why (`what` says what it was for) and ends.
pub(crate) fn spawn(
    name: &str,
    what: &'static str,
    work: impl FnOnce(&tokio::runtime::Runtime) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(executor) => work(&executor),
                Err(e) => tracing::error!("{what}: {e}"),
            }
        })
        .map(drop)
}
