//! Errors: what a call can fail with, how a turn aborts, and what opening a runtime can fail
//! with.

use std::fmt;
use std::path::PathBuf;

/// What kind of failure a [`CallError`] is, which decides whether to retry.
///
/// ```
/// use burrow_runtime::{CallError, ErrorKind};
/// assert!(CallError::new(ErrorKind::TransientIo, "disk hiccup").is_retryable());
/// assert!(!CallError::new(ErrorKind::Overloaded, "mailbox full").is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The actor was reset (its instance was discarded, or it went away while the call
    /// waited). Retryable: the next call activates it afresh.
    ActorReset,
    /// The runtime is shutting down or has shut down. Retryable, elsewhere or later.
    ShuttingDown,
    /// A transient storage failure (I/O error, busy file). Retryable.
    TransientIo,
    /// The disk (or the file system's quota) is full: nothing was written. Not retryable at
    /// once — it succeeds again only after space is freed.
    StorageFull,
    /// The actor's mailbox is full. Not retryable: retrying adds to the overload.
    Overloaded,
    /// The request itself was refused as invalid. Not retryable.
    InvalidInput,
    /// The actor's own code failed: it panicked, aborted the turn, or hit a storage error it
    /// could not handle. Not retryable.
    ActorFailed,
    /// In a cluster, the actor is active on another node, whose lease still runs
    /// ([`CallError::holder`] says which and where): the call belongs there. Retryable here
    /// once that node lets the actor go or its lease ends.
    ActiveElsewhere,
}

/// Why a call did not return the actor's response.
///
/// ```
/// use burrow_runtime::{CallError, ErrorKind};
/// let e = CallError::new(ErrorKind::ActorReset, "the actor went away");
/// assert_eq!(e.kind(), ErrorKind::ActorReset);
/// assert_eq!(e.message(), "the actor went away");
/// assert_eq!(e.to_string(), "actor reset: the actor went away");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind_text}: {message}", kind_text = self.kind.describe())]
pub struct CallError {
    kind: ErrorKind,
    message: String,
    /// For [`ErrorKind::ActiveElsewhere`]: the holding node's id and advertised URL.
    holder: Option<Box<(String, String)>>,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::ActorReset => "actor reset",
            ErrorKind::ShuttingDown => "runtime shutting down",
            ErrorKind::TransientIo => "transient storage error",
            ErrorKind::StorageFull => "storage full",
            ErrorKind::Overloaded => "actor overloaded",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::ActorFailed => "actor failed",
            ErrorKind::ActiveElsewhere => "active on another node",
        }
    }
}

impl CallError {
    /// An error of `kind`: for code that wraps calls and passes their errors on.
    ///
    /// ```
    /// use burrow_runtime::{CallError, ErrorKind};
    /// let e = CallError::new(ErrorKind::TransientIo, "the disk hiccuped");
    /// assert_eq!((e.kind(), e.message()), (ErrorKind::TransientIo, "the disk hiccuped"));
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CallError {
        CallError {
            kind,
            message: message.into(),
            holder: None,
        }
    }

    /// [`ErrorKind::ActiveElsewhere`]: the actor is active on node `node_id`, which takes
    /// calls from other nodes at `advertise_url`.
    ///
    /// ```
    /// use burrow_runtime::{CallError, ErrorKind};
    /// let e = CallError::active_elsewhere("node-2", "http://10.0.0.2:7000");
    /// assert_eq!(e.kind(), ErrorKind::ActiveElsewhere);
    /// assert_eq!(e.holder(), Some(("node-2", "http://10.0.0.2:7000")));
    /// assert!(e.to_string().contains("node-2"));
    /// ```
    pub fn active_elsewhere(node_id: &str, advertise_url: &str) -> CallError {
        CallError {
            kind: ErrorKind::ActiveElsewhere,
            message: format!("the actor is active on node {node_id} ({advertise_url})"),
            holder: Some(Box::new((node_id.to_owned(), advertise_url.to_owned()))),
        }
    }

    /// For [`ErrorKind::ActiveElsewhere`]: the holding node's id and advertised URL.
    pub fn holder(&self) -> Option<(&str, &str)> {
        self.holder
            .as_deref()
            .map(|(id, url)| (id.as_str(), url.as_str()))
    }

    /// The runtime is shutting down (or has shut down) and takes no new calls.
    pub(crate) fn shutting_down() -> CallError {
        CallError::new(
            ErrorKind::ShuttingDown,
            "the runtime is shutting down and takes no new requests",
        )
    }

    /// The kind of failure.
    ///
    /// ```
    /// use burrow_runtime::{CallError, ErrorKind};
    /// fn status(e: &CallError) -> u16 {
    ///     match e.kind() {
    ///         ErrorKind::Overloaded => 429,
    ///         ErrorKind::InvalidInput => 400,
    ///         ErrorKind::StorageFull => 507,
    ///         _ if e.is_retryable() => 503,
    ///         _ => 500,
    ///     }
    /// }
    /// assert_eq!(status(&CallError::new(ErrorKind::Overloaded, "mailbox full")), 429);
    /// assert_eq!(status(&CallError::new(ErrorKind::ActorReset, "reset")), 503);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same call may succeed if tried again (with a fresh stub).
    ///
    /// ```
    /// use burrow_runtime::{CallError, ErrorKind};
    /// assert!(CallError::new(ErrorKind::ShuttingDown, "closing").is_retryable());
    /// assert!(!CallError::new(ErrorKind::ActorFailed, "a handler refused").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ActorReset
                | ErrorKind::ShuttingDown
                | ErrorKind::TransientIo
                | ErrorKind::ActiveElsewhere
        )
    }

    /// The details.
    ///
    /// ```
    /// use burrow_runtime::{CallError, ErrorKind};
    /// let e = CallError::new(ErrorKind::InvalidInput, "name is empty");
    /// assert_eq!(e.message(), "name is empty");
    /// assert!(e.to_string().contains("name is empty"));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Whether a storage error means the file is damaged (corrupt, or not a database).
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The kind a storage error gives a failed turn.
pub(crate) fn storage_error_kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => ErrorKind::StorageFull,
        Some(SystemIoFailure | DatabaseBusy | DatabaseLocked | OutOfMemory | CannotOpen) => {
            ErrorKind::TransientIo
        }
        Some(DatabaseCorrupt | NotADatabase) => ErrorKind::ActorReset,
        _ => ErrorKind::ActorFailed,
    }
}

/// A turn that gives up: everything it wrote since the turn began (or since its last
/// [`flush`](crate::Context::flush)) is rolled back, the actor instance is discarded, and the
/// caller receives a [`CallError`].
///
/// Handlers return `Err(Abort)` to abort; `?` on a storage error does so too. Ordinary
/// application outcomes (not found, refused…) should be ordinary responses instead: they
/// commit normally.
///
/// ```
/// use burrow_runtime::{Abort, Actor, Context, Handler, Message};
/// struct Account;
/// impl Actor for Account {}
/// struct Withdraw(i64);
/// impl Message for Withdraw { type Reply = Result<i64, String>; }
/// impl Handler<Withdraw> for Account {
///     async fn handle(&mut self, ctx: &mut Context<Self>, Withdraw(n): Withdraw) -> Result<Result<i64, String>, Abort> {
///         if n <= 0 {
///             return Err(Abort::invalid_input(format!("cannot withdraw {n}"))); // the call fails
///         }
///         let balance: i64 = ctx.storage().get("balance")?.unwrap_or(0); // `?` aborts on storage errors
///         if balance < n {
///             return Ok(Err("insufficient funds".into())); // an answer, which commits
///         }
///         ctx.storage().put("balance", &(balance - n))?;
///         Ok(Ok(balance - n))
///     }
/// }
/// ```
pub struct Abort {
    kind: ErrorKind,
    message: String,
    storage: Option<rusqlite::Error>,
}

impl Abort {
    /// Aborts as the actor's own failure ([`ErrorKind::ActorFailed`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, Context, ErrorKind, Handler, Message, Options, Runtime};
    /// struct Withdraw(i64);
    /// impl Message for Withdraw { type Reply = i64; }
    /// struct Account;
    /// impl Actor for Account {}
    /// impl Handler<Withdraw> for Account {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, Withdraw(cents): Withdraw) -> Result<i64, Abort> {
    ///         let balance: i64 = ctx.storage().get("balance")?.unwrap_or(0) - cents;
    ///         ctx.storage().put("balance", &balance)?;
    ///         if balance < 0 {
    ///             return Err(Abort::new("insufficient funds")); // the write above is rolled back
    ///         }
    ///         Ok(balance)
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let accounts = runtime.namespace("account", |_| Account)?;
    /// let e = accounts.get_by_name("ada").call(Withdraw(5)).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::ActorFailed);
    /// assert!(e.message().contains("insufficient funds"));
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn new(message: impl Into<String>) -> Abort {
        Abort {
            kind: ErrorKind::ActorFailed,
            message: message.into(),
            storage: None,
        }
    }

    /// Aborts because the request was invalid ([`ErrorKind::InvalidInput`]); nothing the turn
    /// wrote is kept.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, Context, ErrorKind, Handler, Message, Options, Runtime};
    /// struct Rename(String);
    /// impl Message for Rename { type Reply = (); }
    /// struct Profile;
    /// impl Actor for Profile {}
    /// impl Handler<Rename> for Profile {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, Rename(name): Rename) -> Result<(), Abort> {
    ///         if name.trim().is_empty() {
    ///             return Err(Abort::invalid_input("the name is empty"));
    ///         }
    ///         ctx.storage().put("name", name.as_str())?;
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let profiles = runtime.namespace("profile", |_| Profile)?;
    /// let e = profiles.get_by_name("ada").call(Rename(" ".into())).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidInput);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn invalid_input(message: impl Into<String>) -> Abort {
        Abort {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
            storage: None,
        }
    }

    pub(crate) fn into_call_error(self) -> CallError {
        CallError::new(self.kind, self.message)
    }

    /// The storage error behind this abort, if it came from one.
    ///
    /// ```
    /// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
    /// # struct M; impl Message for M { type Reply = (); }
    /// # struct A; impl Actor for A {}
    /// impl Handler<M> for A {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    ///         ctx.storage().put("count", "not a number")?;
    ///         let abort = Abort::from(ctx.storage().get::<i64>("count").unwrap_err());
    ///         assert!(abort.storage_error().is_some()); // a wrong type is an error, never a default
    ///         assert!(Abort::new("mine").storage_error().is_none());
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn storage_error(&self) -> Option<&rusqlite::Error> {
        self.storage.as_ref()
    }
}

impl fmt::Debug for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Abort")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Abort {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.storage
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<rusqlite::Error> for Abort {
    fn from(e: rusqlite::Error) -> Abort {
        Abort {
            kind: storage_error_kind(&e),
            message: format!("storage: {e}"),
            storage: Some(e),
        }
    }
}

/// Why a runtime could not be opened or a namespace registered.
///
/// ```
/// use burrow_runtime::{Actor, Options, Runtime, RuntimeError};
/// struct A;
/// impl Actor for A {}
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let runtime = Runtime::open(Options::new(dir.path()))?;
/// let err = runtime.namespace("Not Valid", |_| A).unwrap_err();
/// assert!(matches!(err, RuntimeError::InvalidNamespace { .. }), "{err}");
/// runtime.namespace("a", |_| A)?;
/// assert!(matches!(runtime.namespace("a", |_| A), Err(RuntimeError::DuplicateNamespace { .. })));
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another runtime has the data directory open.
    #[error("data directory {path} is in use by another runtime (its lock file is held)")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// A namespace name that cannot be used.
    #[error("invalid namespace name {name:?}: {reason}")]
    InvalidNamespace {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace was already registered in this runtime.
    #[error("namespace {name:?} is already registered")]
    DuplicateNamespace {
        /// The name given.
        name: String,
    },
    /// The catalog could not be opened, rebuilt or reconciled.
    #[error("catalog {path}: {source}")]
    Catalog {
        /// The catalog's file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shard thread could not be started.
    #[error("starting shard thread: {0}")]
    Thread(std::io::Error),
    /// The options do not work together; the message says which and why.
    #[error("invalid options: {0}")]
    Options(&'static str),
}
