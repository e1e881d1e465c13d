//! Closing an actor's file with its WAL folded back into the database.
//!
//! Closing skips the checkpoint (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`): a checkpoint syncs the
//! WAL and the database, and on the shard thread that stalled every actor of the shard. But a
//! WAL that is never checkpointed only grows: it costs disk, and every open re-reads it to
//! rebuild the WAL index. So an evicted actor whose WAL has grown past a threshold is
//! checkpointed on a blocking thread, on its own connection (a second connection would be
//! unsafe: `unix-none` takes no locks), while its shard holds its deliveries.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rusqlite::Connection;

use super::Storage;
use super::guard::internally;

/// An actor's connection on its way to be checkpointed and closed, apart from the rest of its
/// [`Storage`] so that it can move to a blocking thread.
pub(crate) struct Closing {
    conn: Connection,
    internal: Arc<AtomicBool>,
}

impl Storage {
    /// The size of the file's WAL in bytes (0 when there is none).
    pub(crate) fn wal_bytes(&self) -> u64 {
        let Some(path) = self.conn.path() else {
            return 0;
        };
        std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len())
    }

    /// The connection alone, to close elsewhere. Between turns nothing else holds it.
    pub(crate) fn into_closing(self) -> Closing {
        #[cfg(feature = "replicated")]
        self.stop_recording();
        let conn = Rc::try_unwrap(self.conn)
            .unwrap_or_else(|_| unreachable!("a recording ends with its turn"));
        Closing {
            conn,
            internal: self.internal,
        }
    }
}

impl Closing {
    /// Copies every WAL frame into the database, truncates the WAL to nothing, and closes the
    /// connection. Blocks (the checkpoint syncs): call it off the shard thread. A checkpoint
    /// that fails leaves the WAL as it was, which the next open replays; nothing is lost.
    pub(crate) fn checkpoint_and_close(self) -> Result<(), rusqlite::Error> {
        crate::faults::checkpoint_delay();
        let (busy, frames, copied): (i64, i64, i64) = internally(&self.internal, || {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
        })?;
        // TRUNCATE leaves -1/-1 once the WAL is gone; exclusive locking means nothing else can
        // hold a read mark, so a busy or partial checkpoint would be a bug.
        debug_assert_eq!(
            busy, 0,
            "an exclusive connection's checkpoint is never busy"
        );
        debug_assert_eq!(frames, copied, "a checkpoint copies every frame");
        Ok(())
    }
}
