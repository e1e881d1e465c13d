//! The end of a turn: everything that must happen, in order, between "the handler finished"
//! and "the reply may leave".
//!
//! 1. **Index the alarms the turn set**, and wait until the catalog has them: the index must
//!    never miss an alarm an actor holds.
//! 2. **Before the commit**, in replicated mode: append the transaction's changes to the log,
//!    fenced ([`replicate`](crate::replicate)), so that nothing is committed locally that the
//!    log refused.
//! 3. **COMMIT** the actor's transaction.
//! 4. **Drop the index entries of alarms the turn deleted** (after the commit: until then the
//!    actor still holds them).
//! 5. **The commit hook**, awaited.
//!
//! Only then is the reply released (by the caller of [`commit`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::catalog_db::CatalogWrite;
use crate::failure::Failure;
use crate::hook::CommitInfo;
use crate::id::ActorId;
use crate::services::ShardServices;
use crate::storage::Storage;

/// Alarms set (`Some(due ms)`) or deleted (`None`) during a turn, by name.
pub(crate) type AlarmChanges = BTreeMap<String, Option<i64>>;

/// Ends the turn's transaction (see the module's steps). On failure the transaction is rolled
/// back unless it had already committed.
pub(crate) async fn commit(
    storage: &mut Storage,
    services: &ShardServices,
    namespace: &Arc<str>,
    id: ActorId,
    alarms: AlarmChanges,
) -> Result<(), Failure> {
    if let Err(failure) = index_alarms_set(services, namespace, id, &alarms).await {
        let _ = storage.rollback();
        return Err(failure);
    }
    #[cfg(feature = "replicated")]
    if let Err(failure) = crate::replicate::append_changes(storage, services, namespace, id).await {
        let _ = storage.rollback();
        return Err(failure);
    }
    if let Err(e) = storage.commit() {
        let _ = storage.rollback();
        return Err(Failure::storage("committing the turn", &e));
    }
    for (name, due) in alarms {
        if due.is_none() {
            services.catalog_write(CatalogWrite::AlarmDelete {
                namespace: namespace.clone(),
                id,
                name,
            });
        }
    }
    if let Some(hook) = &services.commit_hook {
        let info = CommitInfo {
            namespace: namespace.clone(),
            id,
        };
        if let Err(e) = hook.committed(info).await {
            return Err(Failure {
                discard: false,
                ..Failure::transient(format!(
                    "committed locally, but the commit hook failed: {e}"
                ))
            });
        }
    }
    Ok(())
}

/// Indexes every alarm the turn set and waits until the catalog has committed them.
async fn index_alarms_set(
    services: &ShardServices,
    namespace: &Arc<str>,
    id: ActorId,
    alarms: &AlarmChanges,
) -> Result<(), Failure> {
    let mut acks = Vec::new();
    for (name, due) in alarms {
        if let Some(due_ms) = due {
            let (ack, done) = oneshot::channel();
            services.catalog_write(CatalogWrite::AlarmSet {
                namespace: namespace.clone(),
                id,
                name: name.clone(),
                due_ms: *due_ms,
                ack: Some(ack),
            });
            acks.push(done);
        }
    }
    for done in acks {
        done.await
            .unwrap_or_else(|_| Err("the catalog writer stopped".into()))
            .map_err(|e| {
                Failure::transient(format!(
                    "the catalog could not index the turn's alarms: {e}"
                ))
            })?;
    }
    Ok(())
}
