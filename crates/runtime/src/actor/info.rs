//! Who an actor is, as its factory and handlers see it, and what it is told when its previous
//! state was lost.

use std::path::PathBuf;
use std::sync::Arc;

use crate::id::ActorId;

/// Why an actor's state was lost, as told to the actor at activation (see [`ActorInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The catalog lists the actor but its file is gone.
    Missing,
    /// The file was there but empty.
    Empty,
    /// The file held no identity record (a creation interrupted before it committed, or a file
    /// that is not Burrow's).
    NoIdentity,
    /// The file records another actor.
    WrongIdentity(String),
    /// SQLite reported the file as corrupt or not a database.
    Corrupt(String),
}

/// An actor whose previous state could not be used: what was found, and where it was moved
/// (see [`ActorInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostState {
    /// Why the state could not be used.
    pub reason: LostReason,
    /// Where the damaged file now is (`None` when there was no file). The runtime never
    /// deletes it.
    pub quarantined_to: Option<PathBuf>,
}

/// Who an actor is, handed to the namespace's factory.
///
/// ```
/// # use burrow_runtime::{Actor, ActorInfo, Options, Runtime};
/// struct Named(String);
/// impl Actor for Named {}
/// # fn demo(runtime: &Runtime) -> Result<(), burrow_runtime::RuntimeError> {
/// let namespace = runtime.namespace("named", |info: &ActorInfo| {
///     if let Some(lost) = info.lost_state() {
///         eprintln!("{} lost its state: {:?}", info.id(), lost.reason);
///     }
///     Named(info.name().unwrap_or("anonymous").to_owned())
/// })?;
/// # let _ = namespace; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ActorInfo {
    pub(crate) namespace: Arc<str>,
    pub(crate) id: ActorId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) lost: Option<LostState>,
}

impl ActorInfo {
    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The name the actor was addressed by (`None` for actors addressed only by unique id).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Set when the actor's previous state was found unusable and moved aside: the actor starts
    /// empty, and can restore itself from elsewhere.
    pub fn lost_state(&self) -> Option<&LostState> {
        self.lost.as_ref()
    }
}
