//! Namespaces (one per actor type): ids, and the stubs that call actors.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::actor::envelope::{Envelope, Request};
use crate::actor::{Actor, Handler, Message};
use crate::actor_type::ActorType;
use crate::dispatcher::Dispatcher;
use crate::error::{CallError, ErrorKind};
use crate::id::{ActorId, InvalidActorId};
use crate::shard::ShardMsg;

/// The actors of one type, under one name. Cheap to clone.
///
/// Created by [`Runtime::namespace`](crate::Runtime::namespace). Gives out ids and the stubs
/// that call actors.
///
/// ```
/// # use burrow_runtime::{Actor, Options, Runtime};
/// # struct A; impl Actor for A {}
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// let users = runtime.namespace("user", |_| A)?;
/// let id = users.id_from_name("alice"); // the same name always gives the same id
/// assert_eq!(id, users.id_from_name("alice"));
/// assert_eq!(users.id_from_string(&id.to_string())?, id);
/// assert_ne!(users.new_unique_id(), users.new_unique_id());
/// let stub = users.get(id); // activates nothing until called
/// assert_eq!(stub.id(), id);
/// # Ok(()) }
/// ```
pub struct Namespace<A: Actor> {
    inner: Arc<ActorType<A>>,
    dispatcher: Arc<Dispatcher>,
}

impl<A: Actor> Clone for Namespace<A> {
    fn clone(&self) -> Self {
        Namespace {
            inner: self.inner.clone(),
            dispatcher: self.dispatcher.clone(),
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
    pub(crate) fn new(inner: Arc<ActorType<A>>, dispatcher: Arc<Dispatcher>) -> Self {
        Namespace { inner, dispatcher }
    }

    /// The namespace's name.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// assert_eq!(users.name(), "user");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The id of the actor called `name`: SHA-256 of the namespace's name, a NUL byte and
    /// `name`. The same name always gives the same id.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// use burrow_runtime::ActorId;
    /// let users = runtime.namespace("user", |_| A)?;
    /// assert_eq!(users.id_from_name("alice"), ActorId::for_name("user", "alice"));
    /// assert_ne!(users.id_from_name("alice"), users.id_from_name("bob"));
    /// # Ok(()) }
    /// ```
    pub fn id_from_name(&self, name: &str) -> ActorId {
        ActorId::for_name(&self.inner.name, name)
    }

    /// A new random id, for an actor that has no natural name.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let sessions = runtime.namespace("session", |_| A)?;
    /// let (a, b) = (sessions.new_unique_id(), sessions.new_unique_id());
    /// assert_ne!(a, b);
    /// # Ok(()) }
    /// ```
    pub fn new_unique_id(&self) -> ActorId {
        ActorId::random()
    }

    /// Parses an id shown earlier by [`ActorId`]'s `Display` (64 lower-case hex digits).
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// let id = users.id_from_name("alice");
    /// assert_eq!(users.id_from_string(&id.to_string())?, id);
    /// assert!(users.id_from_string("not an id").is_err());
    /// # Ok(()) }
    /// ```
    pub fn id_from_string(&self, text: &str) -> Result<ActorId, InvalidActorId> {
        text.parse()
    }

    /// A stub for the actor with this id.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let sessions = runtime.namespace("session", |_| A)?;
    /// let id = sessions.new_unique_id();
    /// let stub = sessions.get(id); // nothing is activated until it is called
    /// assert_eq!(stub.id(), id);
    /// assert!(!sessions.path_of(&id).exists());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, id: ActorId) -> Stub<A> {
        self.stub(id, None)
    }

    /// A stub for the actor called `name`; the actor can read the name.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// let stub = users.get_by_name("alice");
    /// assert_eq!(stub.id(), users.id_from_name("alice"));
    /// # Ok(()) }
    /// ```
    pub fn get_by_name(&self, name: &str) -> Stub<A> {
        self.stub(self.id_from_name(name), Some(Arc::from(name)))
    }

    /// The path of an actor's database file (which may not exist yet).
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// let path = users.path_of(&users.id_from_name("alice"));
    /// assert!(path.starts_with(dir.path()));
    /// assert_eq!(path.extension().and_then(|e| e.to_str()), Some("db"));
    /// # Ok(()) }
    /// ```
    pub fn path_of(&self, id: &ActorId) -> PathBuf {
        self.inner.path_for(id)
    }

    fn stub(&self, id: ActorId, name: Option<Arc<str>>) -> Stub<A> {
        Stub {
            namespace: self.inner.clone(),
            dispatcher: self.dispatcher.clone(),
            id,
            name,
        }
    }
}

/// A handle for calling one actor. Cheap to clone and to create; creating one activates
/// nothing. See [`Stub::call`] for an example.
///
/// ```
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// let lamps = runtime.namespace("lamp", |_| A)?;
/// let desk = lamps.get_by_name("desk");
/// let again = desk.clone(); // the same actor
/// desk.call(Touch).await?;
/// again.call(Touch).await?;
/// assert_eq!(runtime.catalog().count("lamp").await?, 1);
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Stub<A: Actor> {
    namespace: Arc<ActorType<A>>,
    dispatcher: Arc<Dispatcher>,
    id: ActorId,
    name: Option<Arc<str>>,
}

impl<A: Actor> Clone for Stub<A> {
    fn clone(&self) -> Self {
        Stub {
            namespace: self.namespace.clone(),
            dispatcher: self.dispatcher.clone(),
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
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// let id = users.new_unique_id();
    /// assert_eq!(users.get(id).id(), id);
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Sends `message` to the actor and returns a future of its reply. The actor must have a
    /// [`Handler`] for the message's type, and the reply is the message's
    /// [`Reply`](Message::Reply): a mismatch does not compile.
    ///
    /// The message is queued when `call` is called, not when the future is first polled, so
    /// the order of `call`s is the order the actor sees. Dropping the future does not withdraw
    /// the message.
    ///
    /// ```
    /// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
    /// struct Echo;
    /// impl Actor for Echo {}
    /// struct Say(String);
    /// impl Message for Say { type Reply = String; }
    /// impl Handler<Say> for Echo {
    ///     async fn handle(&mut self, _: &mut Context<Self>, Say(s): Say) -> Result<String, Abort> {
    ///         Ok(s)
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let echoes = runtime.namespace("echo", |_| Echo)?;
    /// let stub = echoes.get_by_name("one");
    /// let first = stub.call(Say("a".into())); // queued now...
    /// let second = stub.call(Say("b".into()));
    /// assert_eq!(second.await?, "b"); // ...so awaited in any order, handled in call order
    /// assert_eq!(first.await?, "a");
    /// # runtime.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn call<M: Message>(
        &self,
        message: M,
    ) -> impl Future<Output = Result<M::Reply, CallError>> + Send + use<A, M>
    where
        A: Handler<M>,
    {
        let (request, response) = Request::new(message);
        let sent = self.dispatcher.send(
            self.id,
            ShardMsg::Deliver {
                namespace: self.namespace.clone(),
                id: self.id,
                name: self.name.clone(),
                envelope: Envelope::<A>::call(request),
            },
        );
        let dispatcher = self.dispatcher.clone();
        async move {
            sent?;
            match response.await {
                Ok(outcome) => outcome,
                Err(_) if dispatcher.is_closing() => Err(CallError::new(
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
