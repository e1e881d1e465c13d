//! [`Context::delete_after_commit`](crate::Context::delete_after_commit): deleting an actor
//! once its turn has committed, before the turn's reply leaves, so that a caller that got the
//! reply never meets the old actor again.

use crate::actor::{Actor, Context};
use crate::catalog_db::CatalogWrite;
use crate::failure::Failure;

/// Deletes the actor's log (replicated mode; first, so that the new epoch fences anyone still
/// appending), its file (unlinked while still open: the instance is dropped right after), and
/// its catalog record and alarms, waiting for the catalog.
pub(crate) async fn delete_committed<A: Actor>(ctx: &Context<A>) -> Result<(), Failure> {
    let (namespace, id) = (&ctx.info.namespace, ctx.info.id);
    #[cfg(feature = "replicated")]
    if let Some(log) = &ctx.services.log {
        let key = crate::turn_log::LogKey {
            namespace: namespace.clone(),
            id,
        };
        log.delete(&key).await.map_err(|e| {
            Failure::transient(format!(
                "the turn committed, but deleting the actor's log failed: {e}"
            ))
        })?;
    }
    if let Some(path) = ctx.storage.sql().path() {
        crate::layout::remove_database(std::path::Path::new(path)).map_err(|e| {
            Failure::transient(format!(
                "the turn committed, but deleting the actor's file failed: {e}"
            ))
        })?;
    }
    let (ack, recorded) = tokio::sync::oneshot::channel();
    ctx.services.catalog_write(CatalogWrite::Delete {
        namespace: namespace.clone(),
        id,
        ack,
    });
    recorded
        .await
        .unwrap_or_else(|_| Err("the catalog writer stopped".into()))
        .map_err(|e| {
            Failure::transient(format!(
                "the turn committed, but deleting the actor from the catalog failed: {e}"
            ))
        })?;
    metrics::counter!("burrow_actors_deleted_total").increment(1);
    Ok(())
}
