//! Namespaces (one per actor type), ids, and stubs.

use std::any::Any;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::actor::{Actor, ActorInfo, Envelope, Work};
use crate::alarm::Delivery;
use crate::error::{CallError, ErrorKind};
use crate::id::{ActorId, InvalidActorId};
use crate::options::Durability;
use crate::runtime::Runtime;
use crate::shard::{Boxed, Shard, ShardMsg, Slot, run_actor};

/// A namespace's type-specific parts, as the shards see them.
pub(crate) struct NamespaceInner<A: Actor> {
    pub(crate) name: Arc<str>,
    pub(crate) index: u32,
    dir: PathBuf,
    pub(crate) factory: Box<dyn Fn(&ActorInfo) -> A + Send + Sync>,
}

/// What a shard needs of a namespace without knowing its actor type.
pub(crate) trait ErasedNamespace: Send + Sync + 'static {
    fn index(&self) -> u32;
    fn name(&self) -> &Arc<str>;
    /// Answers a request with an error.
    fn fail(&self, envelope: Boxed, error: CallError);
    /// Wraps an alarm delivery for this namespace's actors.
    fn alarm_envelope(&self, delivery: Delivery) -> Boxed;
    /// Spawns the task that runs one actor of this namespace on `shard`.
    fn start(
        self: Arc<Self>,
        shard: Rc<Shard>,
        id: ActorId,
        name: Option<Arc<str>>,
        mailbox: mpsc::Receiver<Boxed>,
        slot: Rc<Slot>,
    );
}

impl<A: Actor> ErasedNamespace for NamespaceInner<A> {
    fn index(&self) -> u32 {
        self.index
    }

    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn fail(&self, envelope: Boxed, error: CallError) {
        Envelope::<A>::fail(envelope, error);
    }

    fn alarm_envelope(&self, delivery: Delivery) -> Boxed {
        Box::new(Envelope::<A> {
            work: Work::Alarm(delivery),
            reply: None,
        })
    }

    fn start(
        self: Arc<Self>,
        shard: Rc<Shard>,
        id: ActorId,
        name: Option<Arc<str>>,
        mailbox: mpsc::Receiver<Boxed>,
        slot: Rc<Slot>,
    ) {
        tokio::task::spawn_local(run_actor(self, shard, id, name, mailbox, slot));
    }
}

impl<A: Actor> NamespaceInner<A> {
    pub(crate) fn new(
        name: &str,
        index: u32,
        dir: PathBuf,
        factory: Box<dyn Fn(&ActorInfo) -> A + Send + Sync>,
    ) -> Self {
        NamespaceInner {
            name: Arc::from(name),
            index,
            dir,
            factory,
        }
    }

    /// `<namespace dir>/<first two hex digits>/<64 hex digits>.db`: 256 sub-folders keep each
    /// folder small (about 4,000 files at a million actors).
    pub(crate) fn path_for(&self, id: &ActorId) -> PathBuf {
        actor_path(&self.dir, id)
    }

    /// Creates the sub-folder a new actor's file goes in; in machine mode, makes the new
    /// folder's entry durable too.
    pub(crate) fn ensure_dir_for(&self, path: &Path, durability: Durability) -> io::Result<()> {
        let dir = path.parent().expect("actor paths have a folder");
        match std::fs::create_dir(dir) {
            Ok(()) if durability == Durability::Machine => {
                std::fs::File::open(&self.dir)?.sync_all()
            }
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `<namespace dir>/<first two hex digits>/<64 hex digits>.db`.
pub(crate) fn actor_path(namespace_dir: &Path, id: &ActorId) -> PathBuf {
    let hex = id.to_string();
    namespace_dir.join(&hex[..2]).join(format!("{hex}.db"))
}

/// The actors of one type, under one name. Cheap to clone.
///
/// Created by [`Runtime::namespace`]. Gives out ids and the stubs that call actors.
pub struct Namespace<A: Actor> {
    inner: Arc<NamespaceInner<A>>,
    runtime: Runtime,
}

impl<A: Actor> Clone for Namespace<A> {
    fn clone(&self) -> Self {
        Namespace {
            inner: self.inner.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Namespace<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl<A: Actor> Namespace<A> {
    pub(crate) fn new(inner: Arc<NamespaceInner<A>>, runtime: Runtime) -> Self {
        Namespace { inner, runtime }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The id of the actor called `name`: SHA-256 of the namespace's name, a NUL byte and
    /// `name`. The same name always gives the same id.
    pub fn id_from_name(&self, name: &str) -> ActorId {
        ActorId::for_name(&self.inner.name, name)
    }

    /// A new random id, for an actor that has no natural name.
    pub fn new_unique_id(&self) -> ActorId {
        ActorId::random()
    }

    /// Parses an id shown earlier by [`ActorId`]'s `Display` (64 lower-case hex digits).
    pub fn id_from_string(&self, text: &str) -> Result<ActorId, InvalidActorId> {
        text.parse()
    }

    /// A stub for the actor with this id.
    pub fn get(&self, id: ActorId) -> Stub<A> {
        self.stub(id, None)
    }

    /// A stub for the actor called `name`; the actor can read the name.
    pub fn get_by_name(&self, name: &str) -> Stub<A> {
        self.stub(self.id_from_name(name), Some(Arc::from(name)))
    }

    /// The path of an actor's database file (which may not exist yet).
    pub fn path_of(&self, id: &ActorId) -> PathBuf {
        self.inner.path_for(id)
    }

    fn stub(&self, id: ActorId, name: Option<Arc<str>>) -> Stub<A> {
        Stub {
            namespace: self.inner.clone(),
            runtime: self.runtime.clone(),
            id,
            name,
        }
    }
}

/// A handle for calling one actor. Cheap to clone and to create; creating one activates
/// nothing.
pub struct Stub<A: Actor> {
    namespace: Arc<NamespaceInner<A>>,
    runtime: Runtime,
    id: ActorId,
    name: Option<Arc<str>>,
}

impl<A: Actor> Clone for Stub<A> {
    fn clone(&self) -> Self {
        Stub {
            namespace: self.namespace.clone(),
            runtime: self.runtime.clone(),
            id: self.id,
            name: self.name.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Stub<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("namespace", &self.namespace.name)
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl<A: Actor> Stub<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Sends `request` to the actor and returns a future of its response.
    ///
    /// The request is queued when `call` is called, not when the future is first polled, so
    /// the order of `call`s is the order the actor sees. Dropping the future does not withdraw
    /// the request.
    pub fn call(
        &self,
        request: A::Request,
    ) -> impl Future<Output = Result<A::Response, CallError>> + Send + use<A> {
        let (reply, response) = oneshot::channel();
        let sent = self.runtime.send(
            self.id,
            ShardMsg::Deliver {
                namespace: self.namespace.clone(),
                id: self.id,
                name: self.name.clone(),
                envelope: Box::new(Envelope::<A> {
                    work: Work::Request(request),
                    reply: Some(reply),
                }) as Box<dyn Any + Send>,
            },
        );
        let runtime = self.runtime.clone();
        async move {
            sent?;
            match response.await {
                Ok(outcome) => outcome,
                Err(_) if runtime.is_closing() => Err(CallError::new(
                    ErrorKind::ShuttingDown,
                    "the runtime shut down before the actor answered",
                )),
                Err(_) => Err(CallError::new(
                    ErrorKind::ActorReset,
                    "the actor went away before answering",
                )),
            }
        }
    }
}
