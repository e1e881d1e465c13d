//! A registered actor type: its namespace's name, index and folder, and the factory that builds
//! its actors.

use std::path::PathBuf;
use std::sync::Arc;

use crate::actor::{Actor, ActorInfo};
use crate::id::ActorId;
use crate::layout::actor_path;

/// A namespace's type-specific parts, shared by its [`Namespace`](crate::Namespace) handles,
/// its stubs and the shards that run its actors.
pub(crate) struct ActorType<A: Actor> {
    pub(crate) name: Arc<str>,
    /// The namespace's position in the runtime's registry: part of each resident actor's key.
    pub(crate) index: u32,
    pub(crate) dir: PathBuf,
    pub(crate) factory: Box<dyn Fn(&ActorInfo) -> A + Send + Sync>,
}

impl<A: Actor> ActorType<A> {
    /// The path of an actor's database file (which may not exist yet).
    pub(crate) fn path_for(&self, id: &ActorId) -> PathBuf {
        actor_path(&self.dir, id)
    }
}
