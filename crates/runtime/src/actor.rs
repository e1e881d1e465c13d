//! What an actor is, what it sees during a turn, and how a turn runs.

use std::any::Any;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::oneshot;

use crate::alarm::{Alarm, Delivery, Sink};
use crate::catalog::{Op, now_ms};
use crate::error::{Abort, CallError, ErrorKind, storage_error_kind};
use crate::hook::CommitInfo;
use crate::id::ActorId;
use crate::namespace::NamespaceInner;
use crate::runtime::Runtime;
use crate::shard::Shard;
use crate::storage::{Identity, Storage, Unusable};

/// An actor: state and code behind one key, handling one request at a time.
///
/// The runtime creates the actor (with the namespace's factory) when the first request for its
/// id arrives, hands it each request in arrival order, and never starts a request before the
/// previous one has finished — even while a handler awaits. Everything the handler writes
/// through [`Context::storage`] is committed before its response is delivered.
///
/// The handler's future need not be `Send`: it runs on the actor's shard thread.
pub trait Actor: Sized + 'static {
    /// The requests the actor handles.
    type Request: Send + 'static;
    /// The responses it gives.
    type Response: Send + 'static;

    /// Handles one request as one turn.
    ///
    /// Returning `Err` (or panicking) aborts the turn: its writes are rolled back, the actor
    /// instance is discarded and re-created for the next request, and the caller gets a
    /// [`CallError`]. Outcomes the caller should see as answers — not found, refused — belong
    /// in `Response`; they commit like any other.
    #[allow(async_fn_in_trait)]
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        request: Self::Request,
    ) -> Result<Self::Response, Abort>;

    /// Handles an alarm that came due, as a turn of its own (see [`Context::set_alarm`]).
    ///
    /// Delivery is at least once: an `Err` or a panic rolls the turn back and the alarm is
    /// retried with backoff ([`AlarmPolicy`](crate::AlarmPolicy)), `alarm.attempt` counting
    /// up; after the last attempt it goes to the catalog's dead-letter list. On success the
    /// alarm is removed — unless the handler set one of the same name again, which is how a
    /// recurring alarm is written. The default handler fails: an actor that sets alarms must
    /// handle them.
    #[allow(async_fn_in_trait)]
    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        let _ = ctx;
        Err(Abort::new(format!(
            "alarm {:?} fired, but this actor type does not implement Actor::alarm",
            alarm.name
        )))
    }
}

/// Why an actor's state was lost, as told to the actor at activation.
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

/// An actor whose previous state could not be used: what was found, and where it was moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostState {
    /// Why the state could not be used.
    pub reason: LostReason,
    /// Where the damaged file now is (`None` when there was no file). The runtime never
    /// deletes it.
    pub quarantined_to: Option<PathBuf>,
}

/// Who an actor is, handed to the namespace's factory.
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

/// What a handler sees besides its request: who it is, its storage, and the runtime.
pub struct Context<A: Actor> {
    info: ActorInfo,
    storage: Storage,
    shard: Rc<Shard>,
    namespace: Arc<NamespaceInner<A>>,
    background: Rc<Cell<usize>>,
    /// Alarms set (`Some(due)`) or deleted (`None`) during this turn, by name.
    alarm_changes: BTreeMap<String, Option<i64>>,
}

/// Why the end of a turn failed.
pub(crate) struct Failure {
    error: CallError,
    corrupt: Option<String>,
    /// Whether the actor instance must go (it stays when only the commit hook failed).
    discard: bool,
}

impl Failure {
    fn storage(what: &str, e: &rusqlite::Error) -> Failure {
        Failure {
            error: storage_failure(what, e),
            corrupt: corruption(Some(e)),
            discard: true,
        }
    }

    fn of_handler(outcome: std::thread::Result<Abort>) -> Failure {
        match outcome {
            Ok(abort) => Failure {
                corrupt: corruption(abort.storage_error()),
                error: abort.into_call_error(),
                discard: true,
            },
            Err(panic) => Failure {
                error: CallError::new(
                    ErrorKind::ActorFailed,
                    format!("the actor panicked: {}", panic_message(&*panic)),
                ),
                corrupt: None,
                discard: true,
            },
        }
    }
}

/// The longest alarm name, in bytes.
const ALARM_NAME_MAX: usize = 256;

impl<A: Actor> Context<A> {
    /// Who this actor is, including whether its previous state was lost.
    pub fn info(&self) -> &ActorInfo {
        &self.info
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.info.id
    }

    /// The actor's name, if it was addressed by one.
    pub fn name(&self) -> Option<&str> {
        self.info.name()
    }

    /// The actor's database. All a turn writes here commits together.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The runtime, to call other actors. A turn awaiting a call to an actor that (directly
    /// or not) calls this one back deadlocks: this actor handles one request at a time.
    ///
    /// Actors hold no handle of their own (so that dropping every handle stops the runtime);
    /// this makes one.
    pub fn runtime(&self) -> Runtime {
        self.shard.runtime()
    }

    /// Commits what the turn has written so far (and awaits the commit hook, if any), so that
    /// it is durable before the turn performs an external side effect. An abort later in the
    /// turn rolls back only what was written after the flush.
    pub async fn flush(&mut self) -> Result<(), Abort> {
        let committed = self.commit().await;
        self.storage.begin()?;
        committed.map_err(|f| Abort::new(format!("flush failed: {}", f.error)))
    }

    /// Sets the alarm `name` to fire at `due` (replacing an alarm of that name). Part of the
    /// turn: an aborted turn sets nothing. The alarm fires whether or not the actor is
    /// resident, and after restarts; [`Actor::alarm`] handles it.
    pub fn set_alarm(&mut self, name: &str, due: std::time::SystemTime) -> Result<(), Abort> {
        let due_ms = due
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Abort::invalid_input(format!("alarm {name:?} is due before 1970")))?
            .as_millis();
        self.set_alarm_ms(name, i64::try_from(due_ms).unwrap_or(i64::MAX))
    }

    /// [`set_alarm`](Context::set_alarm) with the due time in milliseconds since the epoch.
    pub fn set_alarm_ms(&mut self, name: &str, due_ms: i64) -> Result<(), Abort> {
        if name.is_empty() || name.len() > ALARM_NAME_MAX {
            return Err(Abort::invalid_input(format!(
                "alarm names are 1 to {ALARM_NAME_MAX} bytes; got {} bytes",
                name.len()
            )));
        }
        self.storage.set_alarm_row(name, due_ms)?;
        self.alarm_changes.insert(name.to_owned(), Some(due_ms));
        Ok(())
    }

    /// Deletes the alarm `name`; returns whether there was one.
    pub fn delete_alarm(&mut self, name: &str) -> Result<bool, Abort> {
        let existed = self.storage.delete_alarm_row(name)?;
        self.alarm_changes.insert(name.to_owned(), None);
        Ok(existed)
    }

    /// This actor's pending alarms: name and due time (ms since the epoch), by name.
    pub fn alarms(&self) -> Result<Vec<(String, i64)>, Abort> {
        Ok(self.storage.alarm_rows()?)
    }

    /// Ends the turn's transaction: indexes the alarms it set (before the commit, so the index
    /// never misses an alarm the actor holds), commits, drops the index entries of alarms it
    /// deleted, and awaits the commit hook.
    pub(crate) async fn commit(&mut self) -> Result<(), Failure> {
        let changes = std::mem::take(&mut self.alarm_changes);
        let mut acks = Vec::new();
        for (name, due) in &changes {
            if let Some(due_ms) = due {
                let (ack, done) = oneshot::channel();
                self.shard.catalog.send(Op::AlarmSet {
                    namespace: self.info.namespace.clone(),
                    id: self.info.id,
                    name: name.clone(),
                    due_ms: *due_ms,
                    ack: Some(ack),
                });
                acks.push(done);
            }
        }
        for done in &mut acks {
            let indexed = done
                .await
                .unwrap_or_else(|_| Err("the catalog writer stopped".into()));
            if let Err(e) = indexed {
                let _ = self.storage.rollback();
                return Err(Failure {
                    error: CallError::new(
                        ErrorKind::TransientIo,
                        format!("the catalog could not index the turn's alarms: {e}"),
                    ),
                    corrupt: None,
                    discard: true,
                });
            }
        }
        if let Err(e) = self.storage.commit() {
            let _ = self.storage.rollback();
            return Err(Failure::storage("committing the turn", &e));
        }
        for (name, due) in changes {
            if due.is_none() {
                self.shard.catalog.send(Op::AlarmDelete {
                    namespace: self.info.namespace.clone(),
                    id: self.info.id,
                    name,
                });
            }
        }
        if let Some(hook) = self.shard.commit_hook()
            && let Err(e) = hook.committed(self.commit_info()).await
        {
            return Err(Failure {
                error: CallError::new(
                    ErrorKind::TransientIo,
                    format!("committed locally, but the commit hook failed: {e}"),
                ),
                corrupt: None,
                discard: false,
            });
        }
        Ok(())
    }

    /// Runs `work` outside any turn, and delivers its output to this actor as an ordinary
    /// request (a turn of its own, whose response is dropped).
    ///
    /// For slow external work — a provider call, a health wait — that must not hold up the
    /// mailbox. The work cannot touch the actor's storage; it runs on the actor's shard thread
    /// (so it should await, not block), and the actor stays resident until it has finished.
    pub fn spawn_background(&self, work: impl Future<Output = A::Request> + 'static) {
        let background = self.background.clone();
        background.set(background.get() + 1);
        let shard = self.shard.clone();
        let namespace = self.namespace.clone();
        let (id, name) = (self.info.id, self.info.name.clone());
        tokio::task::spawn_local(async move {
            let request = work.await;
            let envelope = Envelope::<A> {
                work: Work::Request(request),
                reply: None,
            };
            shard.deliver(namespace, id, name, Box::new(envelope));
            background.set(background.get() - 1);
        });
    }

    fn commit_info(&self) -> CommitInfo {
        CommitInfo {
            namespace: self.info.namespace.clone(),
            id: self.info.id,
        }
    }
}

/// What a turn is for.
pub(crate) enum Work<A: Actor> {
    Request(A::Request),
    Alarm(Delivery),
}

/// Work on its way to an actor, with where its response goes (nowhere for background results
/// and alarms).
pub(crate) struct Envelope<A: Actor> {
    pub work: Work<A>,
    pub reply: Option<oneshot::Sender<Result<A::Response, CallError>>>,
}

impl<A: Actor> Envelope<A> {
    pub(crate) fn fail(envelope: Box<dyn Any + Send>, error: CallError) {
        let Ok(envelope) = envelope.downcast::<Envelope<A>>() else {
            return;
        };
        if let Work::Alarm(delivery) = &envelope.work {
            delivery.sink.not_delivered(delivery, error.message());
        }
        if let Some(reply) = envelope.reply {
            let _ = reply.send(Err(error));
        }
    }
}

/// A live actor: the value and its context.
pub(crate) struct Live<A: Actor> {
    actor: A,
    ctx: Context<A>,
    /// For a new actor, the catalog's acknowledgement of its creation, which the first
    /// turn's reply waits for.
    catalog_ack: Option<oneshot::Receiver<Result<(), String>>>,
}

/// Whether the actor instance survives the turn.
pub(crate) enum Fate {
    Keep,
    /// Discard the instance; `corrupt` says why if its file turned out to be damaged.
    Discard {
        corrupt: Option<String>,
    },
}

/// Moves a damaged file (with its -wal and -shm) aside under a timestamped name. Never deletes.
pub(crate) fn quarantine(path: &Path, reason: &'static str) -> Result<PathBuf, CallError> {
    metrics::counter!("burrow_quarantines_total", "reason" => reason).increment(1);
    let stamp = now_ms();
    let mut target = path.with_extension(format!("db.quarantined-{stamp}"));
    let mut n = 0;
    while target.exists() {
        n += 1;
        target = path.with_extension(format!("db.quarantined-{stamp}-{n}"));
    }
    let io = |e: std::io::Error| {
        CallError::new(
            ErrorKind::TransientIo,
            format!("quarantining {}: {e}", path.display()),
        )
    };
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{suffix}", target.display())).map_err(io)?;
        }
    }
    std::fs::rename(path, &target).map_err(io)?;
    tracing::warn!(from = %path.display(), to = %target.display(), reason, "quarantined actor file");
    Ok(target)
}

fn storage_failure(what: &str, e: &rusqlite::Error) -> CallError {
    CallError::new(storage_error_kind(e), format!("{what}: {e}"))
}

/// The description of a storage error that means the file is damaged.
fn corruption(e: Option<&rusqlite::Error>) -> Option<String> {
    e.filter(|e| storage_error_kind(e) == ErrorKind::ActorReset)
        .map(|e| e.to_string())
}

impl<A: Actor> Live<A> {
    /// Opens (or creates) the actor's file and builds the actor with the namespace's factory.
    pub(crate) fn activate(
        namespace: &Arc<NamespaceInner<A>>,
        shard: &Rc<Shard>,
        id: ActorId,
        name: Option<Arc<str>>,
        background: Rc<Cell<usize>>,
    ) -> Result<Live<A>, CallError> {
        let _span = tracing::debug_span!("activate", namespace = %namespace.name, %id).entered();
        let path = namespace.path_for(&id);
        let durability = shard.durability();
        let identity = Identity {
            namespace: namespace.name.clone(),
            id,
            name: name.clone(),
        };
        let create = |lost: Option<LostState>| -> Result<(Storage, Option<LostState>), CallError> {
            namespace
                .ensure_dir_for(&path, durability)
                .map_err(|e| CallError::new(ErrorKind::TransientIo, e.to_string()))?;
            Storage::create(&path, durability, &identity, now_ms())
                .map(|s| (s, lost))
                .map_err(|e| storage_failure("creating the actor's database", &e))
        };
        let note = shard.take_lost_note(namespace.index, id);
        let (storage, lost, cold) = if path.exists() {
            match Storage::open_existing(&path, durability, &identity) {
                Ok(Ok(storage)) => (storage, note, false),
                Ok(Err(unusable)) => {
                    let (reason, label) = match unusable {
                        Unusable::Empty => (LostReason::Empty, "empty"),
                        Unusable::NoIdentity => (LostReason::NoIdentity, "no_identity"),
                        Unusable::WrongIdentity(s) => {
                            (LostReason::WrongIdentity(s), "wrong_identity")
                        }
                        Unusable::Corrupt(e) => (LostReason::Corrupt(e.to_string()), "corrupt"),
                    };
                    let quarantined_to = Some(quarantine(&path, label)?);
                    let (storage, lost) = create(Some(LostState {
                        reason,
                        quarantined_to,
                    }))?;
                    (storage, lost, true)
                }
                Err(e) => return Err(storage_failure("opening the actor's database", &e)),
            }
        } else {
            let known = shard.catalog_knows(&namespace.name, &id).map_err(|e| {
                CallError::new(ErrorKind::TransientIo, format!("reading the catalog: {e}"))
            })?;
            let lost = match note {
                Some(note) => Some(note),
                None if known => {
                    metrics::counter!("burrow_quarantines_total", "reason" => "missing")
                        .increment(1);
                    tracing::warn!(namespace = %namespace.name, %id, "the catalog lists this actor but its file is gone");
                    Some(LostState {
                        reason: LostReason::Missing,
                        quarantined_to: None,
                    })
                }
                None => None,
            };
            let (storage, lost) = create(lost)?;
            (storage, lost, true)
        };
        metrics::counter!("burrow_activations_total", "kind" => if cold { "cold" } else { "warm" })
            .increment(1);
        // A new file must be in the catalog before its first reply; a known one only moves its
        // last-active time, which nobody waits for.
        let (ack, catalog_ack) = if cold {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        shard.catalog.send(Op::Upsert {
            namespace: namespace.name.clone(),
            id,
            name: name.clone().or_else(|| storage.recorded_name()),
            created_at_ms: storage.created_at_ms(),
            last_active_ms: now_ms(),
            ack,
        });
        let info = ActorInfo {
            namespace: namespace.name.clone(),
            id,
            name: name.or_else(|| storage.recorded_name()),
            lost,
        };
        let actor = std::panic::catch_unwind(AssertUnwindSafe(|| (namespace.factory)(&info)))
            .map_err(|panic| {
                CallError::new(
                    ErrorKind::ActorFailed,
                    format!("the actor's factory panicked: {}", panic_message(&*panic)),
                )
            })?;
        Ok(Live {
            actor,
            catalog_ack,
            ctx: Context {
                info,
                storage,
                shard: shard.clone(),
                namespace: namespace.clone(),
                background,
                alarm_changes: BTreeMap::new(),
            },
        })
    }

    /// Runs one turn: begin, handle, commit (or roll back), then release the response.
    pub(crate) async fn turn(&mut self, envelope: Envelope<A>) -> Fate {
        match envelope.work {
            Work::Request(request) => self.request_turn(request, envelope.reply).await,
            Work::Alarm(delivery) => self.alarm_turn(delivery).await,
        }
    }

    async fn request_turn(
        &mut self,
        request: A::Request,
        reply: Option<oneshot::Sender<Result<A::Response, CallError>>>,
    ) -> Fate {
        let send = move |outcome: Result<A::Response, CallError>| {
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        };
        if let Err(e) = self.ctx.storage.begin() {
            let failure = Failure::storage("beginning the turn", &e);
            send(Err(failure.error));
            return Fate::Discard {
                corrupt: failure.corrupt,
            };
        }
        let handled = AssertUnwindSafe(self.actor.handle(&mut self.ctx, request))
            .catch_unwind()
            .await;
        let outcome = match handled {
            Ok(Ok(response)) => {
                if let Some(delay) = crate::faults::ack_before_commit() {
                    // Broken on purpose (fault injection in tests only): reply, then commit.
                    send(Ok(response));
                    tokio::time::sleep(delay).await;
                    return match self.finish().await {
                        Err(failure) if failure.discard => Fate::Discard {
                            corrupt: failure.corrupt,
                        },
                        _ => Fate::Keep,
                    };
                }
                self.finish().await.map(|()| response)
            }
            Ok(Err(abort)) => Err(self.roll_back(Ok(abort))),
            Err(panic) => Err(self.roll_back(Err(panic))),
        };
        match outcome {
            Ok(response) => {
                send(Ok(response));
                Fate::Keep
            }
            Err(failure) => {
                send(Err(failure.error));
                if failure.discard {
                    Fate::Discard {
                        corrupt: failure.corrupt,
                    }
                } else {
                    Fate::Keep
                }
            }
        }
    }

    /// Rolls back a turn whose handler failed.
    fn roll_back(&mut self, outcome: std::thread::Result<Abort>) -> Failure {
        self.ctx.alarm_changes.clear();
        if let Err(e) = self.ctx.storage.rollback() {
            tracing::warn!(id = %self.ctx.info.id, "rolling back a failed turn: {e}");
        }
        Failure::of_handler(outcome)
    }

    /// Commits a turn whose handler succeeded; for a new actor, also waits until the catalog
    /// has recorded it.
    async fn finish(&mut self) -> Result<(), Failure> {
        self.ctx.commit().await?;
        if let Some(ack) = self.catalog_ack.take() {
            let recorded = ack
                .await
                .unwrap_or_else(|_| Err("the catalog writer stopped".into()));
            if let Err(e) = recorded {
                // Retrying re-activates the actor, which records it again.
                return Err(Failure {
                    error: CallError::new(
                        ErrorKind::TransientIo,
                        format!(
                            "the turn committed, but the catalog could not record the new actor: {e}"
                        ),
                    ),
                    corrupt: None,
                    discard: true,
                });
            }
        }
        Ok(())
    }

    /// Delivers an alarm: checks that the actor still holds it, runs the handler, and reports
    /// the outcome to the alarm index.
    async fn alarm_turn(&mut self, delivery: Delivery) -> Fate {
        let sink: Arc<Sink> = delivery.sink.clone();
        let failed = |this: &mut Self, failure: Failure| {
            if sink.failed(&delivery, failure.error.message()) {
                this.expire(&delivery);
            }
            Fate::Discard {
                corrupt: failure.corrupt,
            }
        };
        if let Err(e) = self.ctx.storage.begin() {
            return failed(self, Failure::storage("beginning an alarm turn", &e));
        }
        let current = match self.ctx.storage.alarm_due(&delivery.name) {
            Ok(current) => current,
            Err(e) => {
                let _ = self.ctx.storage.rollback();
                return failed(self, Failure::storage("reading the actor's alarms", &e));
            }
        };
        if current != Some(delivery.due_ms) {
            // Deleted or replaced since it was indexed, or set by a turn that never committed.
            let _ = self.ctx.storage.rollback();
            sink.done(&delivery, false);
            return Fate::Keep;
        }
        if delivery.expire {
            let expired = self
                .ctx
                .storage
                .delete_alarm_row_if_due(&delivery.name, delivery.due_ms)
                .and_then(|_| self.ctx.storage.commit());
            if let Err(e) = expired {
                let _ = self.ctx.storage.rollback();
                tracing::warn!(id = %self.ctx.info.id, alarm = %delivery.name, "removing a dead-lettered alarm: {e}");
            }
            return Fate::Keep;
        }
        let now = now_ms();
        let alarm = Alarm {
            name: delivery.name.clone(),
            due_ms: delivery.due_ms,
            attempt: delivery.attempt,
            scheduled_ms: delivery.scheduled_ms,
            late_by: Duration::from_millis((now - delivery.scheduled_ms).max(0) as u64),
            backoff: Duration::from_millis(delivery.backoff_ms.max(0) as u64),
        };
        let handled = AssertUnwindSafe(self.actor.alarm(&mut self.ctx, alarm))
            .catch_unwind()
            .await;
        let failure = match handled {
            Ok(Ok(())) => {
                // Consumed, unless the handler set it again (a recurring alarm).
                match self
                    .ctx
                    .storage
                    .delete_alarm_row_if_due(&delivery.name, delivery.due_ms)
                {
                    Ok(_) => {
                        let set_again = self
                            .ctx
                            .alarm_changes
                            .get(&delivery.name)
                            .is_some_and(Option::is_some);
                        match self.finish().await {
                            Ok(()) => {
                                sink.done(&delivery, set_again);
                                return Fate::Keep;
                            }
                            Err(failure) => failure,
                        }
                    }
                    Err(e) => self.roll_back(Ok(Abort::from(e))),
                }
            }
            Ok(Err(abort)) => self.roll_back(Ok(abort)),
            Err(panic) => self.roll_back(Err(panic)),
        };
        failed(self, failure)
    }

    /// Queues the removal of a dead-lettered alarm from the actor's own table.
    fn expire(&self, delivery: &Delivery) {
        let mut expire = delivery.clone();
        expire.expire = true;
        let envelope = Envelope::<A> {
            work: Work::Alarm(expire),
            reply: None,
        };
        self.ctx.shard.deliver(
            self.ctx.namespace.clone(),
            self.ctx.info.id,
            self.ctx.info.name.clone(),
            Box::new(envelope),
        );
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".to_owned())
}
