//! Giving a closed actor's claim back to its log, so that in a cluster another node may claim
//! it at once instead of forwarding to this one. Best effort: a release that does not land
//! leaves the claim to this node, which still serves the actor, until its lease ends.

use std::sync::Arc;

use crate::id::ActorId;
use crate::services::ShardServices;
use crate::turn_log::LogKey;

/// Releases the claim taken at `epoch`, in the background of the shard's executor.
pub(crate) fn release_claim(
    services: &ShardServices,
    namespace: Arc<str>,
    id: ActorId,
    epoch: u64,
) {
    let Some(log) = services.log.clone() else {
        return;
    };
    let timeout = services.append_timeout;
    tokio::task::spawn_local(async move {
        let key = LogKey { namespace, id };
        match tokio::time::timeout(timeout, log.release(&key, epoch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(namespace = %key.namespace, id = %key.id, "releasing the claim failed: {e}")
            }
            Err(_) => {
                tracing::debug!(namespace = %key.namespace, id = %key.id, "releasing the claim timed out")
            }
        }
    });
}
