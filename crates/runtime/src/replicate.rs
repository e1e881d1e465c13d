//! Step 2 of a commit in replicated mode: the transaction's changes go to the log, fenced,
//! before the local `COMMIT`. Nothing is committed locally that the log refused, and nothing
//! the log took is ever acknowledged by a stale activation.

use std::sync::Arc;

use crate::error::{CallError, ErrorKind};
use crate::failure::Failure;
use crate::id::ActorId;
use crate::replication::ReplicationError;
use crate::services::ShardServices;
use crate::storage::{Cursor, Storage};
use crate::turn_log::{Entry, LogError, LogKey, Payload};

/// Appends what the open transaction changed as the next entry of the actor's log, and
/// records the new position in the file (in the same transaction). Does nothing outside
/// replicated mode, or when the transaction changed nothing.
///
/// On failure the caller rolls the transaction back, and the instance is discarded: after a
/// refused append the actor was claimed by someone else; after a lost answer the entry may
/// have landed, and the next activation learns which from the log.
pub(crate) async fn append_changes(
    storage: &mut Storage,
    services: &ShardServices,
    namespace: &Arc<str>,
    id: ActorId,
) -> Result<(), Failure> {
    let Some(log) = &services.log else {
        return Ok(());
    };
    let Some(cursor) = storage.cursor() else {
        return Err(Failure::transient(
            "a replicated actor committed without a claim on its log".into(),
        ));
    };
    let policy = &services.snapshots;
    let image_due = cursor.since_image.0 + 1 >= policy.every_entries
        || cursor.since_image.1 >= policy.every_bytes;
    let (payload, alarms) = match storage.take_changes(image_due, policy.max_image_bytes) {
        Ok(Some(changes)) => changes,
        Err(ReplicationError::ImageTooLarge(bytes)) => {
            let key = LogKey {
                namespace: namespace.clone(),
                id,
            };
            return Err(Failure {
                error: crate::catch_up::too_large(&key, bytes, policy.max_image_bytes),
                corrupt: None,
                discard: true,
            });
        }
        Ok(None) => return Ok(()),
        Err(e @ ReplicationError::UnreplicableTable { .. }) => {
            return Err(Failure {
                error: CallError::new(ErrorKind::InvalidInput, e.to_string()),
                corrupt: None,
                discard: true,
            });
        }
        Err(ReplicationError::Sqlite(e)) => {
            return Err(Failure::storage("capturing the turn's changes", &e));
        }
        Err(e) => {
            return Err(Failure::transient(format!(
                "capturing the turn's changes: {e}"
            )));
        }
    };
    let entry = Entry::after(cursor.position, cursor.epoch, payload);
    if let Err(e) = storage.record_position(entry.position()) {
        return Err(Failure::storage("recording the log position", &e));
    }
    let key = LogKey {
        namespace: namespace.clone(),
        id,
    };
    if let Some(pause) = crate::faults::pause_before_append() {
        tokio::time::sleep(pause).await;
    }
    let started = std::time::Instant::now();
    let appended = tokio::time::timeout(
        services.append_timeout,
        log.append(
            &key,
            cursor.epoch,
            cursor.position,
            std::slice::from_ref(&entry),
            &alarms,
        ),
    )
    .await
    .unwrap_or_else(|_| {
        Err(LogError::Indeterminate(format!(
            "no answer within {:?}",
            services.append_timeout
        )))
    });
    metrics::histogram!("burrow_log_append_seconds").record(started.elapsed().as_secs_f64());
    match appended {
        Ok(head) => {
            let since_image = match &entry.payload {
                Payload::Image(_) => (0, 0),
                Payload::Patchset(bytes) => (
                    cursor.since_image.0 + 1,
                    cursor.since_image.1 + bytes.len() as u64,
                ),
            };
            if entry.payload.is_image() {
                metrics::counter!("burrow_log_images_total").increment(1);
            }
            storage.set_cursor(Cursor {
                generation: cursor.generation,
                epoch: cursor.epoch,
                position: head,
                since_image,
            });
            if let Some(pause) = crate::faults::pause_after_append() {
                tokio::time::sleep(pause).await;
            }
            Ok(())
        }
        Err(e @ LogError::Fenced { .. }) => {
            metrics::counter!("burrow_log_fenced_total").increment(1);
            Err(Failure {
                error: CallError::new(
                    ErrorKind::ActorReset,
                    format!(
                        "the actor was claimed by a newer activation; nothing was written ({e})"
                    ),
                ),
                corrupt: None,
                discard: true,
            })
        }
        Err(e) => {
            metrics::counter!("burrow_log_append_failures_total").increment(1);
            Err(Failure::transient(format!(
                "the replicated log did not take the turn, so it was rolled back: {e}"
            )))
        }
    }
}
