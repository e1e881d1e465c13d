//! The commit hook: a seam for a replicator to hold replies until writes are durable elsewhere.

use std::future::Future;
use std::pin::Pin;

use crate::id::ActorId;

/// What a commit hook learns about a commit. See [`CommitHook`] for an example.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// The actor's namespace.
    pub namespace: std::sync::Arc<str>,
    /// The actor's id.
    pub id: ActorId,
}

/// The future a [`CommitHook`] returns. See [`CommitHook`] for an example.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Awaited after a turn's local commit and before its reply is released.
///
/// If the hook fails, the write stays committed locally but the caller receives a retryable
/// error instead of the reply, so it must not assume the write is durable elsewhere.
///
/// ```
/// use std::sync::Arc;
/// use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
///
/// struct LogCommits;
/// impl CommitHook for LogCommits {
///     fn committed(&self, info: CommitInfo) -> HookFuture {
///         Box::pin(async move {
///             println!("committed {}/{}", info.namespace, info.id);
///             Ok(())
///         })
///     }
/// }
/// let options = burrow_runtime::Options::new("data").commit_hook(Arc::new(LogCommits));
/// ```
pub trait CommitHook: Send + Sync + 'static {
    /// Called once per committed turn (and per explicit flush).
    fn committed(&self, info: CommitInfo) -> HookFuture;
}
