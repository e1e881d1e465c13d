//! What a turn uses from its shard besides its own file: the catalog (its writer, and a reader
//! of the shard's own), the commit hook, the durability mode and how turns are grouped. One per shard thread.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::catalog_db::{CatalogDb, CatalogWrite, open_ro, queries};
use crate::clock::Clock;
use crate::durability::Durability;
use crate::hook::CommitHook;
use crate::id::ActorId;
use crate::turn_log::TurnLog;

pub(crate) struct ShardServices {
    pub(crate) catalog: Arc<CatalogDb>,
    pub(crate) commit_hook: Option<Arc<dyn CommitHook>>,
    pub(crate) durability: Durability,
    pub(crate) clock: Clock,
    /// See [`Options::max_turns_per_commit`](crate::Options::max_turns_per_commit).
    pub(crate) max_turns_per_commit: usize,
    /// The replicated log, in [`Durability::Replicated`] only.
    #[cfg_attr(not(feature = "replicated"), allow(dead_code))]
    pub(crate) log: Option<Arc<dyn TurnLog>>,
    /// See [`Options::append_timeout`](crate::Options::append_timeout).
    #[cfg_attr(not(feature = "replicated"), allow(dead_code))]
    pub(crate) append_timeout: Duration,
    /// See [`Options::snapshot_every`](crate::Options::snapshot_every).
    #[cfg_attr(not(feature = "replicated"), allow(dead_code))]
    pub(crate) snapshots: crate::turn_log::SnapshotPolicy,
    /// The shard's own read connection to the catalog, opened on first use.
    catalog_reader: RefCell<Option<Connection>>,
}

/// What replicated durability needs besides the mode itself.
pub(crate) struct LogSettings {
    pub(crate) log: Option<Arc<dyn TurnLog>>,
    pub(crate) append_timeout: Duration,
    pub(crate) snapshots: crate::turn_log::SnapshotPolicy,
}

impl ShardServices {
    pub(crate) fn new(
        catalog: Arc<CatalogDb>,
        commit_hook: Option<Arc<dyn CommitHook>>,
        durability: Durability,
        clock: Clock,
        max_turns_per_commit: usize,
        log: LogSettings,
    ) -> ShardServices {
        let LogSettings {
            log,
            append_timeout,
            snapshots,
        } = log;
        ShardServices {
            catalog,
            commit_hook,
            log: log.filter(|_| durability == Durability::Replicated),
            durability,
            clock,
            max_turns_per_commit,
            append_timeout,
            snapshots,
            catalog_reader: RefCell::new(None),
        }
    }

    /// Queues a catalog write.
    pub(crate) fn catalog_write(&self, write: CatalogWrite) {
        self.catalog.send(write);
    }

    /// Records that an actor's file was moved aside: in the catalog, and beside its log in
    /// replicated mode (where every node's operators see it).
    pub(crate) fn quarantined(
        &self,
        namespace: Arc<str>,
        id: ActorId,
        reason: &str,
        moved_to: &std::path::Path,
    ) {
        self.catalog_write(CatalogWrite::Quarantined {
            namespace: namespace.clone(),
            id,
            reason: reason.to_owned(),
            moved_to: moved_to.display().to_string(),
            at_ms: self.clock.now_ms(),
        });
        crate::incident::quarantined(self.log.as_ref(), namespace, id, reason, moved_to);
    }

    /// Whether the catalog lists this actor (so a missing file means lost state).
    pub(crate) fn catalog_knows(&self, namespace: &str, id: &ActorId) -> rusqlite::Result<bool> {
        let mut reader = self.catalog_reader.borrow_mut();
        if reader.is_none() {
            *reader = Some(open_ro(self.catalog.path())?);
        }
        let conn = reader.as_ref().expect("opened above");
        queries::get(conn, namespace, id).map(|r| r.is_some())
    }
}
