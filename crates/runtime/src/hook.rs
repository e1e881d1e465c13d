//! The commit hook: a notice after each local commit, awaited before the replies leave.
//!
//! It is not how Burrow replicates: [`Durability::Replicated`](crate::Durability) appends each
//! commit to a fenced log *before* the local commit ([`turn_log`](crate::turn_log)), which a
//! hook that runs after the commit cannot do (a stale activation's local commit would already
//! have happened). Use the hook to mirror commits somewhere best-effort, or to hold replies on
//! something of your own.

use std::future::Future;
use std::pin::Pin;

use crate::id::ActorId;

/// What a commit hook learns about a commit. See [`CommitHook`] for an example.
///
/// ```
/// # use std::sync::Arc;
/// # use std::sync::atomic::{AtomicUsize, Ordering};
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, ctx: &mut Context<Self>, _: Touch) -> Result<(), Abort> {
/// #         ctx.storage().put("touched", &1)?;
/// #         Ok(())
/// #     }
/// # }
/// struct Count(Arc<AtomicUsize>);
/// impl CommitHook for Count {
///     fn committed(&self, info: CommitInfo) -> HookFuture {
///         assert_eq!(&*info.namespace, "lamp");
///         self.0.fetch_add(1, Ordering::SeqCst);
///         Box::pin(async { Ok(()) })
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let commits = Arc::new(AtomicUsize::new(0));
/// let options = Options::new(dir.path()).commit_hook(Arc::new(Count(commits.clone())));
/// let runtime = Runtime::open(options)?;
/// let lamps = runtime.namespace("lamp", |_| A)?;
/// lamps.get_by_name("desk").call(Touch).await?;
/// assert!(commits.load(Ordering::SeqCst) >= 1);
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// The actor's namespace.
    pub namespace: std::sync::Arc<str>,
    /// The actor's id.
    pub id: ActorId,
}

/// The future a [`CommitHook`] returns. See [`CommitHook`] for an example.
///
/// ```
/// # use std::sync::Arc;
/// # use std::sync::atomic::{AtomicUsize, Ordering};
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, ctx: &mut Context<Self>, _: Touch) -> Result<(), Abort> {
/// #         ctx.storage().put("touched", &1)?;
/// #         Ok(())
/// #     }
/// # }
/// /// A replica that is down: nothing it is asked to hold is acknowledged.
/// struct Unreachable;
/// impl CommitHook for Unreachable {
///     fn committed(&self, _: CommitInfo) -> HookFuture {
///         Box::pin(async { Err("the replica did not answer".to_owned()) })
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let runtime = Runtime::open(Options::new(dir.path()).commit_hook(Arc::new(Unreachable)))?;
/// let e = runtime.namespace("lamp", |_| A)?.get_by_name("desk").call(Touch).await.unwrap_err();
/// assert!(e.is_retryable()); // the caller must not take the write as replicated
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Awaited after a turn's local commit (and, in replicated mode, after the log took it) and
/// before its reply is released. An after-commit notice, not the replication seam (see the
/// module's documentation).
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
    /// Called once per local commit: after a turn, after a group of turns that shared one
    /// commit (see [`Options::max_turns_per_commit`](crate::Options::max_turns_per_commit);
    /// every reply of the group waits for this call), and at each explicit
    /// [`flush`](crate::Context::flush).
    fn committed(&self, info: CommitInfo) -> HookFuture;
}
