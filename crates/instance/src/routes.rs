//! The routes of instances as their actors last reported them, so that a proxied request does
//! not wake the instance's actor (a hop to its shard thread) nor ask the provider about the
//! machine (a file read and a `/proc` check) every time.
//!
//! An entry is dropped whenever the actor changes anything a route is made of (status,
//! binding, identity) or its state is reloaded, restored or destroyed, and when the proxy finds
//! the address dead. Correctness does not rest on the cache alone: the gateway token sent with
//! every proxied request is derived from the sandbox id, so a stale address that now belongs
//! to another instance's sandbox refuses the request.

use std::sync::RwLock;
use std::time::Duration;

use burrow_identity::ActorName;

use crate::protocol::Route;

/// Most instances whose routes are kept.
const CAPACITY: u64 = 100_000;
/// A safety net: no route is served from the cache for longer than this.
const TIME_TO_LIVE: Duration = Duration::from_secs(30);

pub(crate) struct RouteCache {
    routes: moka::sync::Cache<ActorName, Route>,
    /// Bumped by every invalidation. A route is inserted under a read lock, and only if no
    /// invalidation happened since the actor was asked: an answer given before a change can
    /// never be cached after it.
    epoch: RwLock<u64>,
}

impl RouteCache {
    pub(crate) fn new() -> RouteCache {
        RouteCache {
            routes: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .build(),
            epoch: RwLock::new(0),
        }
    }

    pub(crate) fn get(&self, name: &ActorName) -> Option<Route> {
        self.routes.get(name)
    }

    /// The epoch to pass to [`insert`](Self::insert), read before asking the actor.
    pub(crate) fn epoch(&self) -> u64 {
        *self.epoch.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Caches `route` unless an invalidation happened since `epoch` was read.
    pub(crate) fn insert(&self, name: &ActorName, route: Route, epoch: u64) {
        let current = self.epoch.read().unwrap_or_else(|p| p.into_inner());
        if *current == epoch {
            self.routes.insert(name.clone(), route);
        }
    }

    pub(crate) fn invalidate(&self, name: &ActorName) {
        let mut epoch = self.epoch.write().unwrap_or_else(|p| p.into_inner());
        *epoch += 1;
        self.routes.invalidate(name);
    }
}
