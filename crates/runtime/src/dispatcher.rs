//! The dispatcher: how work reaches the shard that owns an actor. It holds the shards' inboxes,
//! the registry of namespaces (by name, for alarms and the catalog) and the closing flag that
//! turns new calls away once a shutdown has begun.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::delivery::Delivery;
use crate::error::{CallError, RuntimeError};
use crate::id::ActorId;
use crate::shard::{AdminTask, ErasedNamespace, ShardMsg};

pub(crate) struct Dispatcher {
    shards: Vec<mpsc::UnboundedSender<ShardMsg>>,
    closing: AtomicBool,
    namespaces: Mutex<HashMap<String, Arc<dyn ErasedNamespace>>>,
}

impl Dispatcher {
    pub(crate) fn new(shards: Vec<mpsc::UnboundedSender<ShardMsg>>) -> Dispatcher {
        Dispatcher {
            shards,
            closing: AtomicBool::new(false),
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a namespace under `name`, built by `build` with its index, while no other
    /// registration can take the name.
    pub(crate) fn register<T: ErasedNamespace>(
        &self,
        name: &str,
        build: impl FnOnce(u32) -> Result<Arc<T>, RuntimeError>,
    ) -> Result<Arc<T>, RuntimeError> {
        let mut namespaces = self.namespaces.lock().expect("not poisoned");
        if namespaces.contains_key(name) {
            return Err(RuntimeError::DuplicateNamespace {
                name: name.to_owned(),
            });
        }
        let index = u32::try_from(namespaces.len()).expect("fewer than 2^32 namespaces");
        let namespace = build(index)?;
        debug_assert_eq!(namespace.index(), index);
        namespaces.insert(name.to_owned(), namespace.clone());
        Ok(namespace)
    }

    /// The type-erased face of a registered namespace.
    pub(crate) fn registered(&self, name: &str) -> Option<Arc<dyn ErasedNamespace>> {
        self.namespaces
            .lock()
            .expect("not poisoned")
            .get(name)
            .cloned()
    }

    /// The index of a registered namespace.
    pub(crate) fn namespace_index(&self, name: &str) -> Option<u32> {
        self.registered(name).map(|n| n.index())
    }

    /// The number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Turns new calls away from now on.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Sends `msg` to the shard that owns `id`.
    pub(crate) fn send(&self, id: ActorId, msg: ShardMsg) -> Result<(), CallError> {
        if self.is_closing() {
            return Err(CallError::shutting_down());
        }
        self.shards[id.shard(self.shards.len())]
            .send(msg)
            .map_err(|_| CallError::shutting_down())
    }

    /// Sends an alarm delivery to the shard of its actor.
    pub(crate) fn deliver_alarm(
        &self,
        namespace: &Arc<dyn ErasedNamespace>,
        delivery: Delivery,
    ) -> Result<(), CallError> {
        let id = delivery.id;
        let envelope = namespace.alarm_envelope(delivery);
        self.send(
            id,
            ShardMsg::Deliver {
                namespace: namespace.clone(),
                id,
                name: None,
                envelope,
            },
        )
    }

    /// Runs `task` on the shard that owns `id`, between turns.
    pub(crate) fn on_shard(&self, id: ActorId, task: AdminTask) -> Result<(), CallError> {
        self.send(id, ShardMsg::Admin(task))
    }

    /// Every shard's inbox, for shutdown (which goes out whether or not the flag is set).
    pub(crate) fn inboxes(&self) -> &[mpsc::UnboundedSender<ShardMsg>] {
        &self.shards
    }
}
