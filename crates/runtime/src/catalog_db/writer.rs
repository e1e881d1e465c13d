//! The catalog's writer thread. Writes come from every shard at once; it group-commits them:
//! takes every write waiting, applies them in one transaction, commits, then acknowledges. An
//! actor's creation is acknowledged before its first turn's reply is released, so a crash can
//! never leave an acknowledged actor unknown to the catalog.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::AlarmListener;
use crate::id::ActorId;

/// Writes per group commit at most; more simply wait for the next batch.
const BATCH: usize = 4096;

/// Where the writer reports that a batch committed (or why it did not).
pub(crate) type Ack = oneshot::Sender<Result<(), String>>;

/// A change to the catalog, queued for the writer thread.
pub(crate) enum CatalogWrite {
    /// Records an actor (or, if known, moves its last-active time forward).
    Upsert {
        namespace: Arc<str>,
        id: ActorId,
        name: Option<Arc<str>>,
        created_at_ms: i64,
        last_active_ms: i64,
        ack: Option<Ack>,
    },
    /// Forgets an actor and its alarms.
    Delete {
        namespace: Arc<str>,
        id: ActorId,
        ack: Ack,
    },
    /// Indexes an alarm (replacing one of the same name), before the turn that sets it commits.
    AlarmSet {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        ack: Option<Ack>,
    },
    /// Indexes an alarm the actor holds but this catalog may not know (it ran on another node
    /// of a cluster, or its holder died): a new entry, or one with a new due time; an entry
    /// already due at `due_ms` keeps its attempts, so adopting never resets a failing alarm.
    #[cfg_attr(not(feature = "replicated"), allow(dead_code))]
    AlarmAdopt {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
    },
    /// Drops an alarm's entry if it is still the one due at `due_ms`.
    AlarmDone {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
    },
    /// Drops an alarm's entry whatever its due time (the actor deleted it).
    AlarmDelete {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
    },
    /// Records a failed attempt and when to try again.
    AlarmRetry {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        attempt: u32,
        fire_at_ms: i64,
        backoff_ms: i64,
        error: String,
    },
    /// Records an actor file moved aside.
    Quarantined {
        namespace: Arc<str>,
        id: ActorId,
        reason: String,
        moved_to: String,
        at_ms: i64,
    },
    /// Moves an alarm to the dead-letter list.
    AlarmDead {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        attempts: u32,
        error: String,
        at_ms: i64,
    },
}

/// The writer thread: takes every write waiting, applies them in one transaction, commits,
/// then acknowledges.
pub(super) fn run(
    mut conn: Connection,
    rx: mpsc::Receiver<CatalogWrite>,
    alarm_listener: AlarmListener,
) {
    while let Ok(first) = rx.recv() {
        crate::faults::catalog_delay();
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = apply(&mut conn, &batch).map_err(|e| format!("catalog write failed: {e}"));
        if let Err(e) = &outcome {
            tracing::error!("{e}");
        }
        let alarms_changed = batch
            .iter()
            .any(|op| !matches!(op, CatalogWrite::Upsert { .. }));
        if alarms_changed && let Some(listener) = alarm_listener.get() {
            listener();
        }
        for op in batch {
            let ack = match op {
                CatalogWrite::Upsert { ack, .. } | CatalogWrite::AlarmSet { ack, .. } => ack,
                CatalogWrite::Delete { ack, .. } => Some(ack),
                _ => None,
            };
            if let Some(ack) = ack {
                let _ = ack.send(outcome.clone());
            }
        }
    }
}

fn apply(conn: &mut Connection, batch: &[CatalogWrite]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO actors (namespace, id, name, created_at_ms, last_active_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (namespace, id) DO UPDATE SET
               name = coalesce(name, excluded.name),
               last_active_ms = max(last_active_ms, excluded.last_active_ms)",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM actors WHERE namespace = ?1 AND id = ?2")?;
        let mut delete_alarms =
            tx.prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2")?;
        let mut alarm_set = tx.prepare_cached(
            "INSERT OR REPLACE INTO alarms (namespace, id, name, due_ms, attempts, fire_at_ms)
             VALUES (?1, ?2, ?3, ?4, 0, ?4)",
        )?;
        let mut alarm_adopt = tx.prepare_cached(
            "INSERT INTO alarms (namespace, id, name, due_ms, attempts, fire_at_ms)
             VALUES (?1, ?2, ?3, ?4, 0, ?4)
             ON CONFLICT (namespace, id, name) DO UPDATE SET
               due_ms = excluded.due_ms, attempts = 0, fire_at_ms = excluded.due_ms,
               backoff_ms = 0, last_error = NULL
             WHERE alarms.due_ms <> excluded.due_ms",
        )?;
        let mut alarm_done = tx.prepare_cached(
            "DELETE FROM alarms WHERE namespace = ?1 AND id = ?2 AND name = ?3 AND due_ms = ?4",
        )?;
        let mut alarm_delete =
            tx.prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2 AND name = ?3")?;
        let mut alarm_retry = tx.prepare_cached(
            "UPDATE alarms SET attempts = ?5, fire_at_ms = ?6, last_error = ?7, backoff_ms = ?8
             WHERE namespace = ?1 AND id = ?2 AND name = ?3 AND due_ms = ?4",
        )?;
        let mut alarm_dead = tx.prepare_cached(
            "INSERT INTO dead_alarms (namespace, id, name, due_ms, attempts, last_error, dead_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut quarantined = tx.prepare_cached(
            "INSERT INTO quarantined (namespace, id, reason, moved_to, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for op in batch {
            match op {
                CatalogWrite::Quarantined {
                    namespace,
                    id,
                    reason,
                    moved_to,
                    at_ms,
                } => {
                    quarantined.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        reason,
                        moved_to,
                        at_ms
                    ])?;
                }
                CatalogWrite::Upsert {
                    namespace,
                    id,
                    name,
                    created_at_ms,
                    last_active_ms,
                    ..
                } => {
                    upsert.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name.as_deref(),
                        created_at_ms,
                        last_active_ms
                    ])?;
                }
                CatalogWrite::Delete { namespace, id, .. } => {
                    delete.execute(params![&**namespace, id.as_bytes().as_slice()])?;
                    delete_alarms.execute(params![&**namespace, id.as_bytes().as_slice()])?;
                }
                CatalogWrite::AlarmSet {
                    namespace,
                    id,
                    name,
                    due_ms,
                    ..
                } => {
                    alarm_set.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms
                    ])?;
                }
                CatalogWrite::AlarmAdopt {
                    namespace,
                    id,
                    name,
                    due_ms,
                } => {
                    alarm_adopt.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms
                    ])?;
                }
                CatalogWrite::AlarmDone {
                    namespace,
                    id,
                    name,
                    due_ms,
                } => {
                    alarm_done.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms
                    ])?;
                }
                CatalogWrite::AlarmDelete {
                    namespace,
                    id,
                    name,
                } => {
                    alarm_delete.execute(params![&**namespace, id.as_bytes().as_slice(), name])?;
                }
                CatalogWrite::AlarmRetry {
                    namespace,
                    id,
                    name,
                    due_ms,
                    attempt,
                    fire_at_ms,
                    backoff_ms,
                    error,
                } => {
                    alarm_retry.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms,
                        attempt,
                        fire_at_ms,
                        error,
                        backoff_ms
                    ])?;
                }
                CatalogWrite::AlarmDead {
                    namespace,
                    id,
                    name,
                    due_ms,
                    attempts,
                    error,
                    at_ms,
                } => {
                    let key = params![&**namespace, id.as_bytes().as_slice(), name, due_ms];
                    alarm_done.execute(key)?;
                    alarm_dead.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms,
                        attempts,
                        error,
                        at_ms
                    ])?;
                }
            }
        }
    }
    tx.commit()
}
