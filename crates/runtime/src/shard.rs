//! A shard: one thread with a single-threaded executor, owning the actors whose ids hash to it.
//!
//! Everything here runs on the shard's thread, so actor state, SQLite connections and the
//! residency table need no locks. Requests arrive through one channel per shard; the shard
//! routes each to its actor's mailbox, activating the actor when it is not resident. At most
//! `budget` actors are open: beyond it the least recently used idle actor is closed, and when
//! none is idle the activation waits (for at most `overflow_after`, then goes over the bound
//! rather than risk a deadlock between actors that call each other). Idle actors are also
//! closed after `idle_timeout`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak as RcWeak};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Actor, Envelope, Fate, Live, LostState};
use crate::catalog::{self, Op, Store};
use crate::error::{CallError, ErrorKind};
use crate::hook::CommitHook;
use crate::id::ActorId;
use crate::namespace::{ErasedNamespace, NamespaceInner};
use crate::options::Durability;
use crate::runtime::{Inner, Runtime};

/// A request in flight to a shard, type-erased: its namespace knows its type.
pub(crate) type Boxed = Box<dyn Any + Send>;

/// Work run on a shard's thread, between turns (deleting or exporting an actor's file).
pub(crate) type AdminTask = Box<dyn FnOnce(&Shard) + Send>;

/// Messages from the rest of the process to a shard.
pub(crate) enum ShardMsg {
    Deliver {
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        envelope: Boxed,
    },
    Admin(AdminTask),
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<ShardReport>,
    },
}

/// What a shard's shutdown did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShardReport {
    pub closed: usize,
    pub abandoned: usize,
}

/// A resident actor's bookkeeping, shared by the shard's table and the actor's task.
pub(crate) struct Slot {
    /// The live actor between turns (`None` during a turn, before activation, after failure).
    state: RefCell<Option<Box<dyn Any>>>,
    busy: Cell<bool>,
    queued: Cell<usize>,
    last_used: Cell<Instant>,
    pub(crate) background: Rc<Cell<usize>>,
}

impl Slot {
    /// No turn running, nothing waiting, no background work: safe to close.
    fn idle(&self) -> bool {
        !self.busy.get() && self.queued.get() == 0 && self.background.get() == 0
    }
}

struct Resident {
    namespace: Arc<dyn ErasedNamespace>,
    id: ActorId,
    name: Option<Arc<str>>,
    mailbox: mpsc::Sender<Boxed>,
    slot: Rc<Slot>,
}

/// Requests for an actor that waits for room to be activated.
struct Waiting {
    namespace: Arc<dyn ErasedNamespace>,
    id: ActorId,
    name: Option<Arc<str>>,
    envelopes: Vec<Boxed>,
    since: Instant,
}

pub(crate) type Key = (u32, ActorId);

/// Why an actor was closed, for the evictions metric.
#[derive(Clone, Copy)]
enum Eviction {
    Capacity,
    Idle,
    Shutdown,
    Admin,
}

impl Eviction {
    fn label(self) -> &'static str {
        match self {
            Eviction::Capacity => "capacity",
            Eviction::Idle => "idle",
            Eviction::Shutdown => "shutdown",
            Eviction::Admin => "admin",
        }
    }
}

pub(crate) struct Shard {
    runtime: Weak<Inner>,
    me: RcWeak<Shard>,
    table: RefCell<LinkedHashMap<Key, Resident>>,
    /// Activations waiting for room, oldest first, found by key in constant time.
    waiting: RefCell<LinkedHashMap<Key, Waiting>>,
    /// Why an actor discarded after finding its file corrupt lost its state, for its next
    /// activation to report.
    lost_notes: RefCell<HashMap<Key, LostState>>,
    pub(crate) catalog: Arc<Store>,
    catalog_reader: RefCell<Option<rusqlite::Connection>>,
    budget: usize,
    mailbox_capacity: usize,
    idle_timeout: Duration,
    overflow_after: Duration,
    durability: Durability,
    commit_hook: Option<Arc<dyn CommitHook>>,
    closing: Cell<bool>,
}

impl Shard {
    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    pub(crate) fn commit_hook(&self) -> Option<&Arc<dyn CommitHook>> {
        self.commit_hook.as_ref()
    }

    /// A handle to the runtime, for actors calling actors.
    pub(crate) fn runtime(&self) -> Runtime {
        Runtime::from_inner(
            self.runtime
                .upgrade()
                .expect("the runtime outlives every turn it runs"),
        )
    }

    /// Whether the catalog lists this actor (so a missing file means lost state).
    pub(crate) fn catalog_knows(
        &self,
        namespace: &str,
        id: &ActorId,
    ) -> Result<bool, rusqlite::Error> {
        let mut reader = self.catalog_reader.borrow_mut();
        if reader.is_none() {
            *reader = Some(catalog::open_ro(self.catalog.path())?);
        }
        let conn = reader.as_ref().expect("opened above");
        catalog::get(conn, namespace, id).map(|r| r.is_some())
    }

    /// The note left by a discard that found the actor's file corrupt, if any.
    pub(crate) fn take_lost_note(&self, index: u32, id: ActorId) -> Option<LostState> {
        self.lost_notes.borrow_mut().remove(&(index, id))
    }

    /// Routes a request to its actor, activating the actor if needed. Never blocks.
    pub(crate) fn deliver(
        &self,
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        envelope: Boxed,
    ) {
        if self.closing.get() {
            namespace.fail(
                envelope,
                CallError::new(ErrorKind::ShuttingDown, "the runtime is shutting down"),
            );
            return;
        }
        let key = (namespace.index(), id);
        let resident = self.table.borrow_mut().to_back(&key).is_some();
        if !resident {
            let mut waiting = self.waiting.borrow_mut();
            if let Some(w) = waiting.get_mut(&key) {
                if w.envelopes.len() >= self.mailbox_capacity {
                    drop(waiting);
                    self.overloaded(&namespace, id, envelope);
                } else {
                    w.envelopes.push(envelope);
                }
                return;
            }
            let room = self.table.borrow().len() < self.budget
                || evict_one_idle(&mut self.table.borrow_mut(), &self.catalog);
            if !room {
                waiting.insert(
                    key,
                    Waiting {
                        namespace,
                        id,
                        name,
                        envelopes: vec![envelope],
                        since: Instant::now(),
                    },
                );
                return;
            }
            drop(waiting);
            self.activate(namespace.clone(), id, name);
        }
        self.enqueue(&namespace, key, envelope);
    }

    fn overloaded(&self, namespace: &Arc<dyn ErasedNamespace>, id: ActorId, envelope: Boxed) {
        metrics::counter!("burrow_overloaded_total").increment(1);
        namespace.fail(
            envelope,
            CallError::new(
                ErrorKind::Overloaded,
                format!(
                    "actor {id} has {} requests waiting, its mailbox's limit",
                    self.mailbox_capacity
                ),
            ),
        );
    }

    /// Puts a resident actor's entry in the table and starts its task.
    fn activate(&self, namespace: Arc<dyn ErasedNamespace>, id: ActorId, name: Option<Arc<str>>) {
        let (tx, rx) = mpsc::channel(self.mailbox_capacity);
        let slot = Rc::new(Slot {
            state: RefCell::new(None),
            busy: Cell::new(false),
            queued: Cell::new(0),
            last_used: Cell::new(Instant::now()),
            background: Rc::new(Cell::new(0)),
        });
        let shard = self
            .me
            .upgrade()
            .expect("a shard delivers only while it exists");
        namespace
            .clone()
            .start(shard, id, name.clone(), rx, slot.clone());
        self.table.borrow_mut().insert(
            (namespace.index(), id),
            Resident {
                namespace,
                id,
                name,
                mailbox: tx,
                slot,
            },
        );
        metrics::gauge!("burrow_resident_actors").increment(1.0);
    }

    fn enqueue(&self, namespace: &Arc<dyn ErasedNamespace>, key: Key, envelope: Boxed) {
        let table = self.table.borrow();
        let resident = table.get(&key).expect("resident");
        resident.slot.last_used.set(Instant::now());
        match resident.mailbox.try_send(envelope) {
            Ok(()) => {
                let depth = resident.slot.queued.get() + 1;
                resident.slot.queued.set(depth);
                metrics::histogram!("burrow_mailbox_depth").record(depth as f64);
            }
            Err(mpsc::error::TrySendError::Full(envelope)) => {
                drop(table);
                self.overloaded(namespace, key.1, envelope);
            }
            Err(mpsc::error::TrySendError::Closed(envelope)) => namespace.fail(
                envelope,
                CallError::new(ErrorKind::ActorReset, "the actor stopped"),
            ),
        }
    }

    /// Activates waiting actors while there is room (or they have waited too long), and closes
    /// idle actors while the shard holds more than its budget.
    fn rebalance(&self) {
        loop {
            let Some(since) = self.waiting.borrow().front().map(|(_, w)| w.since) else {
                break;
            };
            let room = self.table.borrow().len() < self.budget
                || evict_one_idle(&mut self.table.borrow_mut(), &self.catalog);
            if !room && since.elapsed() < self.overflow_after {
                break;
            }
            if !room {
                tracing::warn!(
                    budget = self.budget,
                    "every resident actor is busy; activating beyond max_resident"
                );
            }
            let (_, w) = self.waiting.borrow_mut().pop_front().expect("seen above");
            self.activate(w.namespace.clone(), w.id, w.name);
            let key = (w.namespace.index(), w.id);
            for envelope in w.envelopes {
                self.enqueue(&w.namespace, key, envelope);
            }
        }
        let mut table = self.table.borrow_mut();
        while table.len() > self.budget && evict_one_idle(&mut table, &self.catalog) {}
    }

    /// Closes actors idle for longer than the idle timeout.
    fn evict_idle(&self) {
        let now = Instant::now();
        let mut table = self.table.borrow_mut();
        let expired: Vec<Key> = table
            .iter()
            .take_while(|(_, r)| now.duration_since(r.slot.last_used.get()) >= self.idle_timeout)
            .filter(|(_, r)| r.slot.idle())
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(resident) = table.remove(&key) {
                close(resident, &self.catalog, Eviction::Idle);
            }
        }
    }

    /// Removes a failed actor's entry and hands the requests still in its mailbox, in order, to
    /// a fresh instance.
    fn discard(
        &self,
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        mailbox: &mut mpsc::Receiver<Boxed>,
    ) {
        if self
            .table
            .borrow_mut()
            .remove(&(namespace.index(), id))
            .is_some()
        {
            metrics::gauge!("burrow_resident_actors").decrement(1.0);
        }
        while let Ok(envelope) = mailbox.try_recv() {
            self.deliver(namespace.clone(), id, name.clone(), envelope);
        }
    }

    /// Closes the actor `key` if it is resident and idle. `Err` if it is busy.
    pub(crate) fn close_for_admin(&self, key: Key) -> Result<(), CallError> {
        let mut table = self.table.borrow_mut();
        match table.get(&key) {
            None => Ok(()),
            Some(r) if !r.slot.idle() => Err(CallError::new(
                ErrorKind::ActorReset,
                format!("actor {} is busy; try again", key.1),
            )),
            Some(_) => {
                let resident = table.remove(&key).expect("seen above");
                close(resident, &self.catalog, Eviction::Admin);
                Ok(())
            }
        }
    }

    /// Stops taking requests, lets turns in flight (and requests already queued) finish until
    /// `deadline`, then closes every actor.
    async fn shutdown(&self, deadline: Instant) -> ShardReport {
        self.closing.set(true);
        for (_, w) in self.waiting.borrow_mut().drain() {
            for envelope in w.envelopes {
                w.namespace.fail(
                    envelope,
                    CallError::new(ErrorKind::ShuttingDown, "the runtime is shutting down"),
                );
            }
        }
        while Instant::now() < deadline && self.table.borrow().values().any(|r| !r.slot.idle()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut report = ShardReport::default();
        for (_, resident) in self.table.borrow_mut().drain() {
            if resident.slot.idle() {
                report.closed += 1;
            } else {
                report.abandoned += 1;
            }
            close(resident, &self.catalog, Eviction::Shutdown);
        }
        report
    }
}

/// Closes an actor: drops the live actor (closing its database) and records when it was last
/// active. Dropping the entry's sender ends the actor's task.
fn close(resident: Resident, catalog: &Store, reason: Eviction) {
    let _span = tracing::debug_span!("evict", id = %resident.id, reason = reason.label()).entered();
    drop(resident.slot.state.borrow_mut().take());
    let idle_for = resident.slot.last_used.get().elapsed();
    catalog.send(Op::Upsert {
        namespace: resident.namespace.name().clone(),
        id: resident.id,
        name: resident.name.clone(),
        created_at_ms: catalog::now_ms(),
        last_active_ms: catalog::now_ms() - idle_for.as_millis() as i64,
        ack: None,
    });
    metrics::counter!("burrow_evictions_total", "reason" => reason.label()).increment(1);
    metrics::gauge!("burrow_resident_actors").decrement(1.0);
    tracing::trace!("closed actor");
}

/// Closes the least recently used idle actor; returns whether there was one.
fn evict_one_idle(table: &mut LinkedHashMap<Key, Resident>, catalog: &Store) -> bool {
    let victim = table
        .iter()
        .find(|(_, r)| r.slot.idle())
        .map(|(key, _)| *key);
    match victim.and_then(|key| table.remove(&key)) {
        Some(resident) => {
            close(resident, catalog, Eviction::Capacity);
            true
        }
        None => false,
    }
}

/// The task that runs one resident actor: activates it on the first request, then runs one
/// turn per request, in order, until the actor is evicted or discarded.
pub(crate) async fn run_actor<A: Actor>(
    namespace: Arc<NamespaceInner<A>>,
    shard: Rc<Shard>,
    id: ActorId,
    name: Option<Arc<str>>,
    mut mailbox: mpsc::Receiver<Boxed>,
    slot: Rc<Slot>,
) {
    while let Some(envelope) = mailbox.recv().await {
        slot.queued.set(slot.queued.get() - 1);
        let envelope = *envelope
            .downcast::<Envelope<A>>()
            .expect("a namespace routes only its own requests");
        slot.busy.set(true);
        let state = slot.state.borrow_mut().take();
        let mut live: Box<Live<A>> = match state {
            Some(state) => state
                .downcast()
                .expect("a slot holds its namespace's actor"),
            None => match Live::activate(
                &namespace,
                &shard,
                id,
                name.clone(),
                slot.background.clone(),
            ) {
                Ok(live) => Box::new(live),
                Err(error) => {
                    // Nothing was opened; the next request tries again.
                    tracing::warn!(%id, namespace = %namespace.name, "activation failed: {error}");
                    if let Some(reply) = envelope.reply {
                        let _ = reply.send(Err(error));
                    }
                    slot.busy.set(false);
                    continue;
                }
            },
        };
        let started = Instant::now();
        let fate = {
            let _span = tracing::trace_span!("turn", %id).entered();
            live.turn(envelope).await
        };
        metrics::histogram!("burrow_turn_seconds").record(started.elapsed().as_secs_f64());
        slot.busy.set(false);
        slot.last_used.set(Instant::now());
        match fate {
            Fate::Keep => {
                *slot.state.borrow_mut() = Some(live);
                shard.rebalance();
            }
            Fate::Discard { corrupt } => {
                let path = namespace.path_for(&id);
                drop(live);
                if let Some(detail) = corrupt {
                    // The connection is closed: move the damaged file aside for the next
                    // activation, which starts fresh and is told why.
                    match crate::actor::quarantine(&path, "corrupt") {
                        Ok(to) => {
                            shard.lost_notes.borrow_mut().insert(
                                (namespace.index, id),
                                LostState {
                                    reason: crate::actor::LostReason::Corrupt(detail),
                                    quarantined_to: Some(to),
                                },
                            );
                        }
                        Err(e) => tracing::error!(%id, "cannot quarantine a corrupt file: {e}"),
                    }
                }
                shard.discard(namespace.clone(), id, name.clone(), &mut mailbox);
                shard.rebalance();
                return;
            }
        }
    }
}

/// A shard thread's settings.
pub(crate) struct ShardConfig {
    pub runtime: Weak<Inner>,
    pub catalog: Arc<Store>,
    pub budget: usize,
    pub mailbox_capacity: usize,
    pub idle_timeout: Duration,
    pub durability: Durability,
    pub commit_hook: Option<Arc<dyn CommitHook>>,
}

/// How long an activation waits for room before going over the residency bound.
const OVERFLOW_AFTER: Duration = Duration::from_secs(1);

/// The body of a shard thread.
pub(crate) fn run_shard(config: ShardConfig, mut inbox: mpsc::UnboundedReceiver<ShardMsg>) {
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread executor can be built");
    let local = tokio::task::LocalSet::new();
    local.block_on(&executor, async move {
        let shard = Rc::new_cyclic(|me| Shard {
            runtime: config.runtime,
            me: me.clone(),
            table: RefCell::new(LinkedHashMap::new()),
            waiting: RefCell::new(LinkedHashMap::new()),
            lost_notes: RefCell::new(HashMap::new()),
            catalog: config.catalog,
            catalog_reader: RefCell::new(None),
            budget: config.budget,
            mailbox_capacity: config.mailbox_capacity,
            idle_timeout: config.idle_timeout,
            overflow_after: OVERFLOW_AFTER,
            durability: config.durability,
            commit_hook: config.commit_hook,
            closing: Cell::new(false),
        });
        // Idle eviction and overdue activations are checked a few times per idle timeout.
        let ticker = {
            let shard = Rc::downgrade(&shard);
            let period =
                (config.idle_timeout / 4).clamp(Duration::from_millis(10), OVERFLOW_AFTER / 4);
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(shard) = shard.upgrade() else { return };
                    if shard.closing.get() {
                        return;
                    }
                    shard.evict_idle();
                    shard.rebalance();
                }
            })
        };
        while let Some(msg) = inbox.recv().await {
            match msg {
                ShardMsg::Deliver {
                    namespace,
                    id,
                    name,
                    envelope,
                } => shard.deliver(namespace, id, name, envelope),
                ShardMsg::Admin(task) => task(&shard),
                ShardMsg::Shutdown { deadline, done } => {
                    ticker.abort();
                    let report = shard.shutdown(deadline).await;
                    let _ = done.send(report);
                    return;
                }
            }
        }
        // Every handle to the runtime is gone without a shutdown: close what is open.
        ticker.abort();
        shard.shutdown(Instant::now()).await;
    });
    // Dropping the LocalSet drops turns still running; their transactions roll back as their
    // connections close, and their callers see the reply channel close.
}
