//! An actor's database as it was at an entry of its log: the latest image at or before the
//! entry, and the entries after it up to the entry, applied to a new file. What compaction
//! removed is gone: a point older than the retention window is refused, never guessed.

use std::path::Path;

use crate::catch_up::{apply_entries, behind_on_chain};
use crate::durability::Durability;
use crate::turn_log::{LogError, LogKey, Position, TurnLog};

/// Why [`export_at`] could not write the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The log holds nothing for this actor.
    #[error("the log knows no actor {0}")]
    UnknownActor(String),
    /// The entry is past the log's head.
    #[error("entry {asked} is past the actor's last entry ({head})")]
    NotYet {
        /// The entry asked for.
        asked: u64,
        /// The last entry.
        head: u64,
    },
    /// The entry is older than what the log keeps (compacted away).
    #[error("entry {0} is outside the log's retention")]
    OutsideRetention(u64),
    /// `dest` exists already.
    #[error("{0} exists; an export never overwrites")]
    Exists(String),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing the file failed.
    #[error("writing the export: {0}")]
    File(String),
}

/// Writes to `dest` (which must not exist) the actor's database as it was right after entry
/// `seq`, and returns that entry's position.
///
/// ```no_run
/// # async fn demo(log: &dyn burrow_runtime::turn_log::TurnLog) -> Result<(), Box<dyn std::error::Error>> {
/// use burrow_runtime::ActorId;
/// use burrow_runtime::point_in_time::export_at;
/// use burrow_runtime::turn_log::LogKey;
/// let key = LogKey { namespace: "counter".into(), id: ActorId::for_name("counter", "alice") };
/// export_at(log, &key, 42, std::path::Path::new("/tmp/alice-at-42.db")).await?;
/// # Ok(()) }
/// ```
pub async fn export_at(
    log: &dyn TurnLog,
    key: &LogKey,
    seq: u64,
    dest: &Path,
) -> Result<Position, ExportError> {
    if dest.exists() {
        return Err(ExportError::Exists(dest.display().to_string()));
    }
    let label = || format!("{}/{}", key.namespace, key.id);
    let Some((_, head)) = log.head(key).await? else {
        return Err(ExportError::UnknownActor(label()));
    };
    if head.seq == 0 {
        return Err(ExportError::UnknownActor(label()));
    }
    if seq > head.seq {
        return Err(ExportError::NotYet {
            asked: seq,
            head: head.seq,
        });
    }
    let image = log
        .image_at(key, seq)
        .await?
        .ok_or(ExportError::OutsideRetention(seq))?;
    let mut entries = vec![image];
    if entries[0].seq < seq {
        match log.read(key, entries[0].seq + 1, seq).await {
            Ok(more) => entries.extend(more),
            Err(LogError::Corrupt(_)) => return Err(ExportError::OutsideRetention(seq)),
            Err(e) => return Err(e.into()),
        }
    }
    let last = entries.last().expect("the image at least").position();
    if last.seq != seq || behind_on_chain(entries[0].position(), last, &entries).is_none() {
        return Err(ExportError::OutsideRetention(seq));
    }
    apply_entries(dest, Durability::Process, &entries).map_err(ExportError::File)?;
    // One self-contained file: the WAL folded in and dropped.
    rusqlite::Connection::open(dest)
        .and_then(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE")
        })
        .map_err(|e| ExportError::File(e.to_string()))?;
    Ok(last)
}
