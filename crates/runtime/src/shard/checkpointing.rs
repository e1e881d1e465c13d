//! Evicted actors whose files are checkpointed off the shard thread
//! ([`Options::checkpoint_above`](crate::Options::checkpoint_above)), and what waits for them:
//! until such a file is closed, requests for its actor and admin work on it are held, so that
//! the file is never open twice.

use std::sync::Arc;

use super::{AdminTask, ErasedNamespace, Key, Shard};
use crate::actor::envelope::ErasedEnvelope;
use crate::id::ActorId;
use crate::storage::Storage;

/// A request held while its actor's file is checkpointed.
type HeldDelivery = (Arc<dyn ErasedNamespace>, Option<Arc<str>>, ErasedEnvelope);

/// What waits for an actor whose file is being checkpointed.
#[derive(Default)]
pub(super) struct Held {
    pub(super) deliveries: Vec<HeldDelivery>,
    admin: Vec<AdminTask>,
}

impl Shard {
    /// Checkpoints and closes an evicted actor's file on a blocking thread, holding what arrives
    /// for the actor until the file is closed.
    pub(super) fn checkpoint(&self, index: u32, id: ActorId, storage: Storage) {
        let key = (index, id);
        let previous = self.checkpointing.borrow_mut().insert(key, Held::default());
        debug_assert!(previous.is_none(), "a file is checkpointed once at a time");
        let shard = self.me.clone();
        tokio::task::spawn_local(async move {
            let closing = storage.into_closing();
            match tokio::task::spawn_blocking(move || closing.checkpoint_and_close()).await {
                Ok(Ok(())) => metrics::counter!("burrow_checkpoints_total").increment(1),
                Ok(Err(e)) => tracing::warn!(%id, "checkpointing an evicted actor: {e}"),
                Err(e) => tracing::warn!(%id, "checkpointing an evicted actor: {e}"),
            }
            if let Some(shard) = shard.upgrade() {
                shard.checkpointed(key);
            }
        });
    }

    /// Releases what waited for a checkpoint: admin work first, then deliveries in order.
    fn checkpointed(&self, key: Key) {
        let held = self
            .checkpointing
            .borrow_mut()
            .remove(&key)
            .unwrap_or_default();
        for task in held.admin {
            task(self);
        }
        for (namespace, name, envelope) in held.deliveries {
            self.deliver(namespace, key.1, name, envelope);
        }
    }

    /// Runs `task` once the file of `key` is closed: now, unless it is being checkpointed.
    pub(crate) fn when_closed(&self, key: Key, task: AdminTask) {
        match self.checkpointing.borrow_mut().get_mut(&key) {
            Some(held) => held.admin.push(task),
            None => task(self),
        }
    }
}
