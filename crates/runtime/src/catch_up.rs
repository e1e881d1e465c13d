//! Activation in replicated mode: claim the actor in its log, then make its file match the
//! log's head before the first turn.
//!
//! The file records the (sequence, hash) of the last entry it holds, in the same transaction as
//! that entry's changes. Against the head the claim returns:
//!
//! - **equal**: the file is used as it is;
//! - **behind on the same chain** (the entry at the file's sequence has the file's hash): the
//!   missing entries are applied — a crash between the log's commit and the local one leaves
//!   exactly this, and such a file is never quarantined;
//! - **ahead, on another chain, unreadable, or without a position while the log has entries**:
//!   the file is quarantined (moved aside, never deleted) and rebuilt;
//! - **missing**: rebuilt from the latest image and the entries after it.
//!
//! An actor with no log yet starts one with an image of its file (new, or from before
//! replicated mode) as entry 1, fenced like any append.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use crate::durability::Durability;
use crate::error::{CallError, ErrorKind};
use crate::layout::create_actor_dir;
use crate::replication::{apply, image};
use crate::services::ShardServices;
use crate::storage::{Cursor, Storage, record_position, recorded_position};
use crate::turn_log::{AlarmUpdate, Claim, Entry, LogError, LogKey, Payload, Position, TurnLog};

/// What the claim found and did, for the activation that follows.
pub(crate) struct Synced {
    pub(crate) claim: Claim,
    /// The log was empty: the activation writes its first entry.
    pub(crate) start_log: bool,
}

fn log_failure(what: &str, e: LogError) -> CallError {
    match e {
        // A claim refused because another node of the cluster holds the actor.
        LogError::Owned {
            node_id,
            advertise_url,
        } => CallError::active_elsewhere(&node_id, &advertise_url),
        e => CallError::new(ErrorKind::TransientIo, format!("{what}: {e}")),
    }
}

/// Moves the actor's file aside and records that (in the catalog, and beside its log).
fn quarantine_reported(
    path: &Path,
    reason: &'static str,
    services: &ShardServices,
    key: &LogKey,
) -> Result<(), CallError> {
    let moved_to = crate::quarantine::quarantine(path, reason, &services.clock)?;
    services.quarantined(key.namespace.clone(), key.id, reason, &moved_to);
    Ok(())
}

/// Awaits a log operation for at most `timeout`; a timeout leaves its outcome unknown.
async fn within<T>(
    timeout: std::time::Duration,
    what: &str,
    op: crate::turn_log::LogFuture<'_, T>,
) -> Result<T, CallError> {
    tokio::time::timeout(timeout, op)
        .await
        .unwrap_or_else(|_| {
            Err(LogError::Indeterminate(format!(
                "no answer within {timeout:?}"
            )))
        })
        .map_err(|e| log_failure(what, e))
}

/// The error for an image over the log's limit: refused, never truncated.
pub(crate) fn too_large(key: &LogKey, bytes: usize, limit: u64) -> CallError {
    CallError::new(
        ErrorKind::InvalidInput,
        format!(
            "actor {}/{}: its database is {bytes} bytes, over the replicated log's image limit of {limit} bytes (Options::max_image_bytes)",
            key.namespace, key.id
        ),
    )
}

fn local_failure(what: &str, e: impl std::fmt::Display) -> CallError {
    CallError::new(ErrorKind::TransientIo, format!("{what}: {e}"))
}

/// What the actor's file says about itself.
enum Local {
    Missing,
    Unreadable,
    At(Option<Position>),
}

fn local_position(path: &Path, durability: Durability) -> Local {
    if !path.exists() {
        return Local::Missing;
    }
    let read = Storage::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, durability)
        .and_then(|conn| recorded_position(&conn));
    match read {
        Ok(position) => Local::At(position),
        Err(_) => Local::Unreadable,
    }
}

/// Claims the actor and brings its file to the log's head (see the module's rules).
pub(crate) async fn claim_and_catch_up(
    log: &Arc<dyn TurnLog>,
    key: &LogKey,
    name: Option<&str>,
    path: &Path,
    services: &ShardServices,
) -> Result<Synced, CallError> {
    let (durability, timeout) = (services.durability, services.append_timeout);
    let claim = within(
        timeout,
        "claiming the actor in its log",
        log.claim(key, name),
    )
    .await?;
    let head = claim.head;
    let local = local_position(path, durability);
    if head == Position::GENESIS {
        if let Local::At(Some(position)) = local {
            // The file holds entries of a log that is gone (deleted, or a store restored
            // from an older backup): keep it aside, start over.
            tracing::warn!(namespace = %key.namespace, id = %key.id, ?position, "the actor's file is ahead of an empty log");
            quarantine_reported(path, "ahead_of_log", services, key)?;
        }
        return Ok(Synced {
            claim,
            start_log: true,
        });
    }
    if let Local::At(Some(position)) = local {
        if position == head {
            return Ok(Synced {
                claim,
                start_log: false,
            });
        }
        if position.seq < head.seq {
            // Entries the file needs may have been compacted away: then it is rebuilt.
            let entries =
                match tokio::time::timeout(timeout, log.read(key, position.seq, head.seq)).await {
                    Ok(Err(LogError::Corrupt(_))) => Vec::new(),
                    other => other
                        .unwrap_or_else(|_| {
                            Err(LogError::Indeterminate(format!(
                                "no answer within {timeout:?}"
                            )))
                        })
                        .map_err(|e| log_failure("reading the actor's log", e))?,
                };
            if let Some(missing) = behind_on_chain(position, head, &entries) {
                match apply_entries(path, durability, missing) {
                    Ok(()) => {
                        metrics::counter!("burrow_log_catch_ups_total").increment(1);
                        return Ok(Synced {
                            claim,
                            start_log: false,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %key.namespace, id = %key.id, "applying the log to the actor's file failed: {e}");
                    }
                }
            }
        }
    }
    if !matches!(local, Local::Missing) {
        quarantine_reported(path, "diverged_from_log", services, key)?;
    }
    rebuild(log, key, path, durability, head, timeout).await?;
    metrics::counter!("burrow_log_rebuilds_total").increment(1);
    Ok(Synced {
        claim,
        start_log: false,
    })
}

/// The entries after `position`, if `entries` (read from `position.seq`) continue the file's
/// chain up to `head`.
pub(crate) fn behind_on_chain(
    position: Position,
    head: Position,
    entries: &[Entry],
) -> Option<&[Entry]> {
    let rest = if position.seq == 0 {
        entries
    } else {
        let (at, rest) = entries.split_first()?;
        if at.position() != position {
            return None;
        }
        rest
    };
    let mut previous = position;
    for entry in rest {
        if !entry.follows(previous) {
            return None;
        }
        previous = entry.position();
    }
    (previous == head).then_some(rest)
}

/// Applies `entries` in order to the file at `path`, each in one transaction with the
/// position it leads to, so that a crash leaves the file at an entry boundary.
pub(crate) fn apply_entries(
    path: &Path,
    durability: Durability,
    entries: &[Entry],
) -> Result<(), String> {
    let open = || -> Result<Connection, String> {
        let conn = Storage::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, durability)
            .map_err(|e| e.to_string())?;
        apply::replay_mode(&conn).map_err(|e| e.to_string())?;
        Ok(conn)
    };
    let mut conn: Option<Connection> = None;
    for entry in entries {
        if let Payload::Image(bytes) = &entry.payload {
            drop(conn.take());
            image::install(path, bytes).map_err(|e| e.to_string())?;
        }
        if conn.is_none() {
            conn = Some(open()?);
        }
        let c = conn.as_ref().expect("opened above");
        c.execute_batch("BEGIN").map_err(|e| e.to_string())?;
        let applied = match &entry.payload {
            Payload::Patchset(bytes) => {
                apply::apply_in_replay_mode(c, bytes).map_err(|e| e.to_string())
            }
            Payload::Image(_) => Ok(()),
        }
        .and_then(|()| record_position(c, entry.position()).map_err(|e| e.to_string()))
        .and_then(|()| c.execute_batch("COMMIT").map_err(|e| e.to_string()));
        if let Err(e) = applied {
            let _ = c.execute_batch("ROLLBACK");
            return Err(format!("entry {}: {e}", entry.seq));
        }
    }
    Ok(())
}

/// Writes the file anew from the latest image at or before `head` and the entries after it.
async fn rebuild(
    log: &Arc<dyn TurnLog>,
    key: &LogKey,
    path: &Path,
    durability: Durability,
    head: Position,
    timeout: std::time::Duration,
) -> Result<(), CallError> {
    let image = within(
        timeout,
        "reading the actor's latest image",
        log.image_at(key, head.seq),
    )
    .await?
    .ok_or_else(|| {
        log_failure(
            "rebuilding the actor",
            LogError::Corrupt(format!("the log reaches {head:?} but holds no image")),
        )
    })?;
    let entries = if image.seq < head.seq {
        within(
            timeout,
            "reading the actor's log",
            log.read(key, image.seq + 1, head.seq),
        )
        .await?
    } else {
        Vec::new()
    };
    let mut all = Vec::with_capacity(entries.len() + 1);
    all.push(image);
    all.extend(entries);
    if behind_on_chain(all[0].position(), head, &all).is_none() {
        return Err(log_failure(
            "rebuilding the actor",
            LogError::Corrupt(format!(
                "the entries after image {} do not lead to the head {head:?}",
                all[0].seq
            )),
        ));
    }
    create_actor_dir(path, durability)
        .map_err(|e| local_failure("creating the actor's folder", e))?;
    apply_entries(path, durability, &all)
        .map_err(|e| local_failure("rebuilding the actor's file", e))
}

/// Starts the log of an actor that has none with an image of its file as entry 1, and sets the
/// cursor the activation's turns append from.
pub(crate) async fn start_or_resume(
    storage: &mut Storage,
    log: &Arc<dyn TurnLog>,
    key: &LogKey,
    synced: &Synced,
    timeout: std::time::Duration,
    max_image_bytes: u64,
    generation: u64,
) -> Result<(), CallError> {
    let epoch = synced.claim.epoch;
    if !synced.start_log {
        let since = synced.claim.head.seq - synced.claim.snapshot.unwrap_or(0);
        storage.set_cursor(Cursor {
            generation,
            epoch,
            position: synced.claim.head,
            since_image: (since, 0),
        });
        return Ok(());
    }
    storage
        .begin_unrecorded()
        .map_err(|e| local_failure("starting the actor's log", e))?;
    let started = async {
        let image = storage
            .image()
            .map_err(|e| local_failure("imaging the actor's file", e))?;
        if image.len() as u64 > max_image_bytes {
            return Err(too_large(key, image.len(), max_image_bytes));
        }
        let rows = storage
            .alarm_rows()
            .map_err(|e| local_failure("reading the actor's alarms", e))?;
        // The first claim ever (epoch 1) has no alarms in the log to replace: without any to
        // write, the start goes out as a plain append, which shares a statement with other
        // actors' appends instead of taking a transaction of its own.
        let alarms = if rows.is_empty() && epoch == 1 {
            AlarmUpdate::Unchanged
        } else {
            AlarmUpdate::Replace(rows)
        };
        let entry = Entry::after(Position::GENESIS, epoch, Payload::Image(image));
        storage
            .record_position(entry.position())
            .map_err(|e| local_failure("recording the log position", e))?;
        let head = within(
            timeout,
            "starting the actor's log",
            log.append(
                key,
                epoch,
                Position::GENESIS,
                std::slice::from_ref(&entry),
                &alarms,
            ),
        )
        .await?;
        storage
            .commit()
            .map_err(|e| local_failure("committing the log's start", e))?;
        Ok::<_, CallError>(head)
    }
    .await;
    match started {
        Ok(head) => {
            storage.set_cursor(Cursor {
                generation,
                epoch,
                position: head,
                since_image: (0, 0),
            });
            Ok(())
        }
        Err(e) => {
            let _ = storage.rollback();
            Err(e)
        }
    }
}
