//! What an acknowledged write survives.

/// What an acknowledged write survives. Chosen once per runtime.
///
/// Both modes keep each actor's file in SQLite's WAL mode with exclusive locking, and commit a
/// turn's writes before its reply is released. They differ in when the WAL reaches the disk.
///
/// ```
/// use burrow_runtime::{Durability, Options};
/// let options = Options::new("data").durability(Durability::Machine);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a crash of the process (`kill -9`, a panic that aborts, an OOM kill): nothing
    /// acknowledged is lost, because a commit is in the operating system's page cache before the
    /// reply leaves. An OS crash or power loss may lose the last moments of acknowledged writes
    /// (never leaving a file inconsistent). SQLite `synchronous = NORMAL`: the WAL is fsynced at
    /// checkpoints only.
    #[default]
    Process,
    /// Survives an OS crash or power loss as well: every commit fsyncs the WAL before the reply
    /// leaves, and a new actor's file and directory entry are fsynced before its first turn is
    /// acknowledged. SQLite `synchronous = FULL`. Costs an fsync per turn that writes.
    Machine,
    /// Survives the loss of the disk or the whole host: every commit that changed something is
    /// appended to a fenced log off the machine ([`Options::turn_log`](crate::Options::turn_log),
    /// PostgreSQL in `burrow-log-postgres`) before the local commit, and only then is the reply
    /// released. An actor whose file is lost, damaged or behind is rebuilt from the log at its
    /// next activation. Locally the file runs as in `Process` mode (`synchronous = NORMAL`):
    /// the log, not the file, is what makes a turn durable. Needs the runtime's `replicated`
    /// feature and a log; costs a round trip to the log per commit that writes.
    Replicated,
}

impl Durability {
    /// The mode's name as operators write it: `process`, `machine` or `replicated`.
    ///
    /// ```
    /// use burrow_runtime::Durability;
    /// assert_eq!(Durability::Machine.name(), "machine");
    /// assert_eq!(Durability::default().name(), "process");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::Machine => "machine",
            Durability::Replicated => "replicated",
        }
    }

    /// The `synchronous` pragma that gives this durability.
    pub(crate) fn synchronous_pragma(self) -> &'static str {
        match self {
            Durability::Process | Durability::Replicated => "PRAGMA synchronous = NORMAL",
            Durability::Machine => "PRAGMA synchronous = FULL",
        }
    }
}
