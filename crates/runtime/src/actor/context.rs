//! What a handler sees besides its message: who it is, its storage, its alarms, and a way to
//! run slow work outside the turn.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::SystemTime;

use super::envelope::{Envelope, ErasedEnvelope, Request};
use super::{Actor, ActorInfo, Handler, Message};
use crate::clock::{from_ms, to_ms};
use crate::commit::{AlarmChanges, commit};
use crate::error::{Abort, CallError};
use crate::id::ActorId;
use crate::services::ShardServices;
use crate::storage::Storage;

/// The longest alarm name, in bytes.
const ALARM_NAME_MAX: usize = 256;

/// What a handler sees besides its message: who it is, its storage, and its alarms.
///
/// ```
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message};
/// struct Greeter;
/// impl Actor for Greeter {}
/// struct Greet;
/// impl Message for Greet { type Reply = String; }
/// impl Handler<Greet> for Greeter {
///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Greet) -> Result<String, Abort> {
///         let visits: i64 = ctx.storage().get("visits")?.unwrap_or(0) + 1;
///         ctx.storage().put("visits", &visits)?;
///         let who = ctx.name().unwrap_or("stranger");
///         Ok(format!("hello {who}, visit {visits} (actor {})", ctx.id()))
///     }
/// }
/// ```
pub struct Context<A: Actor> {
    pub(crate) info: ActorInfo,
    pub(crate) storage: Storage,
    pub(crate) services: Rc<ShardServices>,
    /// Delivers an envelope to this actor (background results, dead-lettered alarms).
    pub(crate) post: Rc<dyn Fn(ErasedEnvelope)>,
    pub(crate) background: Rc<Cell<usize>>,
    /// Alarms set or deleted during this turn.
    pub(crate) alarm_changes: AlarmChanges,
    /// Whether this turn flushed, and whether every flush succeeded: a flush commits the
    /// turns grouped before this one too, so the group must know.
    pub(crate) flushed: Option<Result<(), CallError>>,
    /// Set by [`Context::delete_after_commit`].
    pub(crate) delete_after_commit: bool,
    _actor: PhantomData<fn(A)>,
}

/// What [`Context`] is built from, at activation.
pub(crate) struct ContextParts {
    pub(crate) info: ActorInfo,
    pub(crate) storage: Storage,
    pub(crate) services: Rc<ShardServices>,
    pub(crate) post: Rc<dyn Fn(ErasedEnvelope)>,
    pub(crate) background: Rc<Cell<usize>>,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(parts: ContextParts) -> Context<A> {
        Context {
            info: parts.info,
            storage: parts.storage,
            services: parts.services,
            post: parts.post,
            background: parts.background,
            alarm_changes: AlarmChanges::new(),
            flushed: None,
            delete_after_commit: false,
            _actor: PhantomData,
        }
    }

    /// Who this actor is, including whether its previous state was lost.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// assert_eq!(ctx.info().namespace(), "a");
    /// assert!(ctx.info().lost_state().is_none()); // a new actor lost nothing
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> &ActorInfo {
        &self.info
    }

    /// The actor's id.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// assert_eq!(ctx.id(), ActorId::for_name("a", "x"));
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> ActorId {
        self.info.id
    }

    /// The actor's name, if it was addressed by one.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// assert_eq!(ctx.name(), Some("x"));
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.info.name()
    }

    /// The time now, on the runtime's [`Clock`](crate::clock::Clock): use it for alarm due
    /// times, so that a test's manual clock governs them too.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// let due = ctx.now() + Duration::from_secs(60);
    /// ctx.set_alarm("later", due)?;
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn now(&self) -> SystemTime {
        self.services.clock.now()
    }

    /// The actor's database. All a turn writes here commits together.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// ctx.storage().put("greeting", "hello")?;
    /// assert_eq!(ctx.storage().get::<String>("greeting")?.as_deref(), Some("hello"));
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// In replicated mode, where this turn's changes land in the actor's log if it commits
    /// and changes something: the epoch this activation claimed the actor under — a fencing
    /// token, larger for every newer activation, that an actor may hand to outside systems —
    /// and the entry's sequence number. `None` outside replicated mode. Turns grouped into one
    /// commit (calls queued for the actor) share their group's entry; a turn that changes
    /// nothing appends nothing, and its slot stays free for the next one.
    pub fn log_slot(&self) -> Option<crate::turn_log::LogSlot> {
        #[cfg(feature = "replicated")]
        {
            self.storage.cursor().map(|c| crate::turn_log::LogSlot {
                epoch: c.epoch,
                seq: c.position.seq + 1,
            })
        }
        #[cfg(not(feature = "replicated"))]
        {
            None
        }
    }

    /// Deletes the actor once this turn has committed: its file, its catalog record and
    /// alarms, and in replicated mode its log. The reply still leaves after the commit; the
    /// instance is dropped, and the next call starts a new, empty actor. A turn that fails
    /// deletes nothing.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
    /// struct Note;
    /// impl Actor for Note {}
    /// /// Writes, or deletes the whole actor.
    /// enum Op { Write, Forget }
    /// impl Message for Op { type Reply = Option<i64>; }
    /// impl Handler<Op> for Note {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, op: Op) -> Result<Option<i64>, Abort> {
    ///         let before = ctx.storage().get::<i64>("n")?;
    ///         match op {
    ///             Op::Write => ctx.storage().put("n", &1)?,
    ///             Op::Forget => ctx.delete_after_commit(),
    ///         }
    ///         Ok(before)
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let note = runtime.namespace("note", |_| Note)?.get_by_name("a");
    /// note.call(Op::Write).await?;
    /// assert_eq!(note.call(Op::Forget).await?, Some(1));
    /// assert_eq!(note.call(Op::Write).await?, None); // a new, empty actor
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn delete_after_commit(&mut self) {
        self.delete_after_commit = true;
    }

    /// Commits what the turn has written so far (and awaits the commit hook, if any), so that
    /// it is durable before the turn performs an external side effect. An abort later in the
    /// turn rolls back only what was written after the flush.
    ///
    /// ```
    /// # use burrow_runtime::{Abort, Context, Handler, Message, Actor};
    /// # struct Payments; impl Actor for Payments {}
    /// # struct Charge(i64); impl Message for Charge { type Reply = (); }
    /// # async fn call_the_bank(_: i64) -> Result<(), String> { Ok(()) }
    /// impl Handler<Charge> for Payments {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, Charge(cents): Charge) -> Result<(), Abort> {
    ///         ctx.storage().put("intent", &cents)?;
    ///         ctx.flush().await?; // the intent is durable before the bank hears of it
    ///         call_the_bank(cents).await.map_err(Abort::new)?;
    ///         ctx.storage().put("charged", &cents)?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub async fn flush(&mut self) -> Result<(), Abort> {
        let alarms = std::mem::take(&mut self.alarm_changes);
        let committed = commit(
            &mut self.storage,
            &self.services,
            &self.info.namespace,
            self.info.id,
            alarms,
        )
        .await;
        if !matches!(self.flushed, Some(Err(_))) {
            self.flushed = Some(committed.as_ref().map(drop).map_err(|f| f.error.clone()));
        }
        self.storage.begin()?;
        committed.map_err(|f| Abort::new(format!("flush failed: {}", f.error)))
    }

    /// Sets the alarm `name` to fire at `due` (replacing an alarm of that name). Part of the
    /// turn: an aborted turn sets nothing. The alarm fires whether or not the actor is
    /// resident, and after restarts; [`Actor::alarm`] handles it.
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use burrow_runtime::{Abort, Context, Handler, Message, Actor, alarm::Alarm};
    /// # struct Reminder; impl Message for Reminder { type Reply = (); }
    /// struct Nag;
    /// impl Actor for Nag {
    ///     async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
    ///         // Set again under the same name: a recurring alarm.
    ///         ctx.set_alarm(&alarm.name, SystemTime::now() + Duration::from_secs(3600))
    ///     }
    /// }
    /// impl Handler<Reminder> for Nag {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Reminder) -> Result<(), Abort> {
    ///         ctx.set_alarm("nag", SystemTime::now() + Duration::from_secs(60))
    ///     }
    /// }
    /// ```
    pub fn set_alarm(&mut self, name: &str, due: SystemTime) -> Result<(), Abort> {
        if name.is_empty() || name.len() > ALARM_NAME_MAX {
            return Err(Abort::invalid_input(format!(
                "alarm names are 1 to {ALARM_NAME_MAX} bytes; got {} bytes",
                name.len()
            )));
        }
        let due_ms = to_ms(due);
        if due_ms < 0 {
            return Err(Abort::invalid_input(format!(
                "alarm {name:?} is due before 1970"
            )));
        }
        self.storage.set_alarm_row(name, due_ms)?;
        self.alarm_changes.insert(name.to_owned(), Some(due_ms));
        Ok(())
    }

    /// Deletes the alarm `name`; returns whether there was one.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// let soon = ctx.now() + Duration::from_secs(60);
    /// ctx.set_alarm("reminder", soon)?;
    /// assert!(ctx.delete_alarm("reminder")?);
    /// assert!(!ctx.delete_alarm("reminder")?); // already gone
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn delete_alarm(&mut self, name: &str) -> Result<bool, Abort> {
        let existed = self.storage.delete_alarm_row(name)?;
        self.alarm_changes.insert(name.to_owned(), None);
        Ok(existed)
    }

    /// This actor's pending alarms: name and due time, by name.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # struct M; impl Message for M { type Reply = (); }
    /// # impl Handler<M> for A {
    /// # async fn handle(&mut self, ctx: &mut Context<Self>, _: M) -> Result<(), Abort> {
    /// let now = ctx.now();
    /// ctx.set_alarm("b", now + Duration::from_secs(60))?;
    /// ctx.set_alarm("a", now + Duration::from_secs(30))?;
    /// let pending = ctx.alarms()?;
    /// let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// // Due times are kept to the millisecond.
    /// let in_30s = now + Duration::from_secs(30);
    /// assert!(pending[0].1 <= in_30s && pending[0].1 > in_30s - Duration::from_millis(1));
    /// # Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// # runtime.namespace("a", |_| A)?.get_by_name("x").call(M).await?;
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn alarms(&self) -> Result<Vec<(String, SystemTime)>, Abort> {
        Ok(self
            .storage
            .alarm_rows()?
            .into_iter()
            .map(|(name, due_ms)| (name, from_ms(due_ms)))
            .collect())
    }

    /// Runs `work` outside any turn, and delivers its output to this actor as a message of
    /// its own (a turn whose reply is dropped).
    ///
    /// For slow external work — a provider call, a health wait — that must not hold up the
    /// mailbox. The work cannot touch the actor's storage; it runs on the actor's shard thread
    /// (so it should await, not block), and the actor stays resident until it has finished.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Abort, Context, Handler, Message, Actor};
    /// struct Fetcher;
    /// impl Actor for Fetcher {}
    /// struct Fetch;
    /// impl Message for Fetch { type Reply = (); }
    /// struct Fetched(String);
    /// impl Message for Fetched { type Reply = (); }
    ///
    /// impl Handler<Fetch> for Fetcher {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Fetch) -> Result<(), Abort> {
    ///         ctx.spawn_background(async {
    ///             tokio::time::sleep(Duration::from_millis(10)).await; // slow work
    ///             Fetched("body".into())
    ///         });
    ///         Ok(()) // the turn ends now; the mailbox moves on
    ///     }
    /// }
    /// impl Handler<Fetched> for Fetcher {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, Fetched(body): Fetched) -> Result<(), Abort> {
    ///         ctx.storage().put("body", body.as_str())?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn spawn_background<M: Message>(&self, work: impl Future<Output = M> + 'static)
    where
        A: Handler<M>,
    {
        let background = self.background.clone();
        background.set(background.get() + 1);
        let post = self.post.clone();
        tokio::task::spawn_local(async move {
            let message = work.await;
            post(Envelope::<A>::call(Request::unanswered(message)));
            debug_assert!(background.get() > 0, "background work is counted once");
            background.set(background.get() - 1);
        });
    }
}
