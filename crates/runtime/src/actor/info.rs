//! Who an actor is, as its factory and handlers see it, and what it is told when its previous
//! state was lost.

use std::path::PathBuf;
use std::sync::Arc;

use crate::id::ActorId;

/// Why an actor's state was lost, as told to the actor at activation (see [`ActorInfo`]).
///
/// ```
/// use burrow_runtime::LostReason;
/// fn describe(reason: &LostReason) -> &'static str {
///     match reason {
///         LostReason::Missing => "the file is gone",
///         LostReason::Corrupt(_) => "the file is damaged",
///         _ => "the file is not this actor's",
///     }
/// }
/// assert_eq!(describe(&LostReason::Missing), "the file is gone");
/// ```
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
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, LostReason, Message, Options, Runtime};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let runtime = Runtime::open(Options::new(dir.path()))?;
/// let ns = runtime.namespace("a", |_| A)?;
/// ns.get_by_name("x").call(Touch).await?;
/// let file = ns.path_of(&ns.id_from_name("x"));
/// runtime.shutdown(Duration::from_secs(5)).await;
/// std::fs::remove_file(&file)?; // the disk lost it
///
/// let runtime = Runtime::open(Options::new(dir.path()))?;
/// let told = Arc::new(Mutex::new(None));
/// let seen = told.clone();
/// let ns = runtime.namespace("a", move |info| {
///     *seen.lock().unwrap() = info.lost_state().cloned();
///     A
/// })?;
/// ns.get_by_name("x").call(Touch).await?;
/// let lost = told.lock().unwrap().clone().expect("told");
/// assert_eq!(lost.reason, LostReason::Missing);
/// assert_eq!(lost.quarantined_to, None); // nothing to move aside
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
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
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let record = seen.clone();
    /// let ns = runtime.namespace("lamps", move |info| {
    ///     record.lock().unwrap().push(info.namespace().to_owned());
    ///     A
    /// })?;
    /// ns.get_by_name("desk").call(Touch).await?;
    /// assert_eq!(*seen.lock().unwrap(), ["lamps"]);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The actor's id.
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
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let record = seen.clone();
    /// let ns = runtime.namespace("lamps", move |info| {
    ///     record.lock().unwrap().push(info.id());
    ///     A
    /// })?;
    /// ns.get_by_name("desk").call(Touch).await?;
    /// assert_eq!(*seen.lock().unwrap(), [ns.id_from_name("desk")]);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The name the actor was addressed by (`None` for actors addressed only by unique id).
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
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let record = seen.clone();
    /// let ns = runtime.namespace("lamps", move |info| {
    ///     record.lock().unwrap().push(info.name().map(str::to_owned));
    ///     A
    /// })?;
    /// ns.get_by_name("desk").call(Touch).await?;
    /// ns.get(ns.new_unique_id()).call(Touch).await?;
    /// assert_eq!(*seen.lock().unwrap(), [Some("desk".to_owned()), None]);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Set when the actor's previous state was found unusable and moved aside: the actor starts
    /// empty, and can restore itself from elsewhere.
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
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let record = seen.clone();
    /// let ns = runtime.namespace("lamps", move |info| {
    ///     record.lock().unwrap().push(info.lost_state().is_some());
    ///     A
    /// })?;
    /// ns.get_by_name("desk").call(Touch).await?;
    /// assert_eq!(*seen.lock().unwrap(), [false]); // see LostState for one that was lost
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn lost_state(&self) -> Option<&LostState> {
        self.lost.as_ref()
    }
}
