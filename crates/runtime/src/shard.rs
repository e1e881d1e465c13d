//! A shard: one thread with a single-threaded executor, owning the actors whose ids hash to it.
//!
//! Everything here runs on the shard's thread, so actor state, SQLite connections and the
//! residency table need no locks. Requests arrive through one channel per shard; the shard
//! routes each to its actor's mailbox, activating the actor when it is not resident. At most
//! `budget` actors are open: beyond it the least recently used idle actor is closed, and when
//! none is idle the activation waits (for at most `overflow_after`, then goes over the bound
//! rather than risk a deadlock between actors that call each other). Idle actors are also
//! closed after `idle_timeout`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak as RcWeak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use tokio::sync::{mpsc, oneshot};

use crate::actor::LostState;
use crate::actor::envelope::ErasedEnvelope;
use crate::catalog_db::CatalogWrite;
use crate::delivery::Delivery;
use crate::durability::Durability;
use crate::error::{CallError, ErrorKind};
use crate::id::ActorId;
use crate::services::ShardServices;
use crate::storage::Storage;

mod checkpointing;
mod report;
mod thread;

use checkpointing::Held;
pub(crate) use report::ResidentCount;
pub use report::ShutdownReport;
pub(crate) use thread::{ShardConfig, run_shard};

/// Work run on a shard's thread, between turns (deleting or exporting an actor's file).
pub(crate) type AdminTask = Box<dyn FnOnce(&Shard) + Send>;

/// What a shard needs of a namespace without knowing its actor type.
pub(crate) trait ErasedNamespace: Send + Sync + 'static {
    fn index(&self) -> u32;
    fn name(&self) -> &Arc<str>;
    /// Answers an envelope that will not reach its actor.
    fn fail(&self, envelope: ErasedEnvelope, error: CallError);
    /// Frees what a live actor's connection caches (it stays open).
    fn trim(&self, state: &dyn std::any::Any);
    /// The file of a live actor taken from its slot (the actor value is dropped).
    fn storage_of(&self, state: Box<dyn std::any::Any>) -> Storage;
    /// Wraps an alarm delivery for this namespace's actors.
    fn alarm_envelope(&self, delivery: Delivery) -> ErasedEnvelope;
    /// Spawns the task that runs one actor of this namespace on `shard`.
    fn start(
        self: Arc<Self>,
        shard: Rc<Shard>,
        id: ActorId,
        name: Option<Arc<str>>,
        mailbox: mpsc::Receiver<ErasedEnvelope>,
        slot: Rc<Slot>,
    );
}

/// Messages from the rest of the process to a shard.
pub(crate) enum ShardMsg {
    Deliver {
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        envelope: ErasedEnvelope,
    },
    Admin(AdminTask),
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<ShutdownReport>,
    },
}

/// A resident actor's bookkeeping, shared by the shard's table and the actor's task.
pub(crate) struct Slot {
    /// The live actor between turns (`None` during a turn, before activation, after failure).
    pub(crate) state: RefCell<Option<Box<dyn std::any::Any>>>,
    pub(crate) busy: Cell<bool>,
    pub(crate) queued: Cell<usize>,
    /// When the actor was last used, on the clock's [`elapsed`](crate::clock::Clock) scale.
    pub(crate) last_used: Cell<Duration>,
    pub(crate) background: Rc<Cell<usize>>,
    /// Whether the connection's caches were freed since the actor's last turn.
    pub(crate) trimmed: Cell<bool>,
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
    mailbox: mpsc::Sender<ErasedEnvelope>,
    slot: Rc<Slot>,
}

/// Requests for an actor that waits for room to be activated.
struct Waiting {
    namespace: Arc<dyn ErasedNamespace>,
    id: ActorId,
    name: Option<Arc<str>>,
    envelopes: Vec<ErasedEnvelope>,
    /// Real time: waiting too long risks a deadlock whatever the runtime's clock says.
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
    /// This shard's position among the runtime's shards.
    index: usize,
    me: RcWeak<Shard>,
    table: RefCell<LinkedHashMap<Key, Resident>>,
    /// Activations waiting for room, oldest first, found by key in constant time.
    waiting: RefCell<LinkedHashMap<Key, Waiting>>,
    /// Why an actor discarded after finding its file corrupt lost its state, for its next
    /// activation to report.
    lost_notes: RefCell<HashMap<Key, LostState>>,
    pub(crate) services: Rc<ShardServices>,
    resident: Arc<ResidentCount>,
    budget: usize,
    mailbox_capacity: usize,
    idle_timeout: Duration,
    overflow_after: Duration,
    /// WAL size above which an evicted actor's file is checkpointed as it closes.
    checkpoint_above: u64,
    /// Actors whose files are being checkpointed on a blocking thread after eviction, with
    /// what arrived for them meanwhile: their files must not be opened again until closed.
    checkpointing: RefCell<HashMap<Key, Held>>,
    closing: Cell<bool>,
    /// Set by shutdown: until then its closes may still checkpoint a grown WAL.
    grace_until: Cell<Option<Instant>>,
}

impl Shard {
    pub(crate) fn durability(&self) -> Durability {
        self.services.durability
    }

    /// Publishes the table's size to the resident-actors gauge.
    fn table_changed(&self, table: &LinkedHashMap<Key, Resident>) {
        self.resident.publish(self.index, table.len());
    }

    /// Records why an actor's state was lost, for its next activation to report.
    pub(crate) fn note_lost(&self, key: Key, lost: LostState) {
        self.lost_notes.borrow_mut().insert(key, lost);
    }

    /// The note left by a discard that found the actor's file corrupt, if any.
    pub(crate) fn take_lost_note(&self, key: Key) -> Option<LostState> {
        self.lost_notes.borrow_mut().remove(&key)
    }

    /// Routes a request to its actor, activating the actor if needed. Never blocks.
    pub(crate) fn deliver(
        &self,
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        envelope: ErasedEnvelope,
    ) {
        if self.closing.get() {
            namespace.fail(
                envelope,
                CallError::new(ErrorKind::ShuttingDown, "the runtime is shutting down"),
            );
            return;
        }
        let key = (namespace.index(), id);
        if let Some(held) = self.checkpointing.borrow_mut().get_mut(&key) {
            if held.deliveries.len() >= self.mailbox_capacity {
                self.overloaded(&namespace, id, envelope);
            } else {
                held.deliveries.push((namespace, name, envelope));
            }
            return;
        }
        let resident = self.table.borrow_mut().to_back(&key).is_some();
        if !resident {
            let mut waiting = self.waiting.borrow_mut();
            if let Some(w) = waiting.get_mut(&key) {
                debug_assert!(w.envelopes.len() <= self.mailbox_capacity);
                if w.envelopes.len() >= self.mailbox_capacity {
                    drop(waiting);
                    self.overloaded(&namespace, id, envelope);
                } else {
                    w.envelopes.push(envelope);
                }
                return;
            }
            let room = self.make_room();
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
            self.activate(namespace.clone(), id, name, false);
        }
        self.enqueue(&namespace, key, envelope);
    }

    fn overloaded(
        &self,
        namespace: &Arc<dyn ErasedNamespace>,
        id: ActorId,
        envelope: ErasedEnvelope,
    ) {
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

    /// Puts a resident actor's entry in the table and starts its task. Only an activation that
    /// waited past `overflow_after` may go `beyond_budget`.
    fn activate(
        &self,
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        beyond_budget: bool,
    ) {
        debug_assert!(
            beyond_budget || self.table.borrow().len() < self.budget,
            "an activation within the budget finds a free slot"
        );
        let (tx, rx) = mpsc::channel(self.mailbox_capacity);
        let slot = Rc::new(Slot {
            state: RefCell::new(None),
            busy: Cell::new(false),
            queued: Cell::new(0),
            last_used: Cell::new(self.services.clock.elapsed()),
            background: Rc::new(Cell::new(0)),
            trimmed: Cell::new(false),
        });
        let shard = self
            .me
            .upgrade()
            .expect("a shard delivers only while it exists");
        namespace
            .clone()
            .start(shard, id, name.clone(), rx, slot.clone());
        let mut table = self.table.borrow_mut();
        let previous = table.insert(
            (namespace.index(), id),
            Resident {
                namespace,
                id,
                name,
                mailbox: tx,
                slot,
            },
        );
        debug_assert!(previous.is_none(), "an actor is resident at most once");
        self.table_changed(&table);
    }

    fn enqueue(&self, namespace: &Arc<dyn ErasedNamespace>, key: Key, envelope: ErasedEnvelope) {
        let table = self.table.borrow();
        let resident = table.get(&key).expect("resident");
        resident.slot.last_used.set(self.services.clock.elapsed());
        match resident.mailbox.try_send(envelope) {
            Ok(()) => {
                let depth = resident.slot.queued.get() + 1;
                debug_assert!(depth <= self.mailbox_capacity, "the mailbox is bounded");
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
    pub(crate) fn rebalance(&self) {
        loop {
            let Some(since) = self.waiting.borrow().front().map(|(_, w)| w.since) else {
                break;
            };
            let room = self.make_room();
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
            self.activate(w.namespace.clone(), w.id, w.name, !room);
            let key = (w.namespace.index(), w.id);
            for envelope in w.envelopes {
                self.enqueue(&w.namespace, key, envelope);
            }
        }
        while self.table.borrow().len() > self.budget && self.evict_one_idle() {}
    }

    /// Closes actors idle for longer than the idle timeout.
    fn evict_idle(&self) {
        let now = self.services.clock.elapsed();
        let mut table = self.table.borrow_mut();
        let expired: Vec<Key> = table
            .iter()
            .take_while(|(_, r)| now.saturating_sub(r.slot.last_used.get()) >= self.idle_timeout)
            .filter(|(_, r)| r.slot.idle())
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(resident) = table.remove(&key) {
                self.close(resident, Eviction::Idle);
            }
        }
        self.table_changed(&table);
    }

    /// Frees the caches of actors idle for longer than [`TRIM_AFTER`] (once per idle spell):
    /// an idle actor then holds its connection and little else.
    fn trim_idle(&self) {
        let now = self.services.clock.elapsed();
        let table = self.table.borrow();
        let idle = table
            .values()
            .take_while(|r| now.saturating_sub(r.slot.last_used.get()) >= TRIM_AFTER);
        for resident in idle.filter(|r| r.slot.idle() && !r.slot.trimmed.get()) {
            if let Some(state) = resident.slot.state.borrow().as_deref() {
                resident.namespace.trim(state);
                metrics::counter!("burrow_idle_trims_total").increment(1);
            }
            resident.slot.trimmed.set(true);
        }
    }

    /// Closes idle actors (least recently used first) until the table is below its budget;
    /// returns whether it is. (After an overflow the table may be over budget: a free slot
    /// then takes more than one eviction.)
    fn make_room(&self) -> bool {
        while self.table.borrow().len() >= self.budget {
            if !self.evict_one_idle() {
                return false;
            }
        }
        true
    }

    /// Closes the least recently used idle actor; returns whether there was one.
    fn evict_one_idle(&self) -> bool {
        let mut table = self.table.borrow_mut();
        let victim = table
            .iter()
            .find(|(_, r)| r.slot.idle())
            .map(|(key, _)| *key);
        match victim.and_then(|key| table.remove(&key)) {
            Some(resident) => {
                self.close(resident, Eviction::Capacity);
                self.table_changed(&table);
                true
            }
            None => false,
        }
    }

    /// Closes an actor: drops the live actor (closing its database) and records when it was
    /// last active. Dropping the entry's sender ends the actor's task.
    fn close(&self, resident: Resident, reason: Eviction) {
        let _span =
            tracing::debug_span!("evict", id = %resident.id, reason = reason.label()).entered();
        let state = resident.slot.state.borrow_mut().take();
        if let Some(state) = state {
            let storage = resident.namespace.storage_of(state);
            #[cfg(feature = "replicated")]
            if let Some(cursor) = storage.cursor() {
                crate::release::release_claim(
                    &self.services,
                    resident.namespace.name().clone(),
                    resident.id,
                    cursor.epoch,
                );
            }
            // Admin closes must be done when they return. Evictions may finish later, off this
            // thread; so may a shutdown's, while its grace lasts (it waits for them).
            let may_checkpoint = match reason {
                Eviction::Capacity | Eviction::Idle => true,
                Eviction::Shutdown => self.grace_until.get().is_some_and(|t| Instant::now() < t),
                Eviction::Admin => false,
            };
            if may_checkpoint && storage.wal_bytes() > self.checkpoint_above {
                self.checkpoint(resident.namespace.index(), resident.id, storage);
            }
        }
        let clock = &self.services.clock;
        let idle_for = clock
            .elapsed()
            .saturating_sub(resident.slot.last_used.get());
        self.services.catalog_write(CatalogWrite::Upsert {
            namespace: resident.namespace.name().clone(),
            id: resident.id,
            name: resident.name.clone(),
            created_at_ms: clock.now_ms(),
            last_active_ms: clock.now_ms() - idle_for.as_millis() as i64,
            ack: None,
        });
        metrics::counter!("burrow_evictions_total", "reason" => reason.label()).increment(1);
        tracing::trace!("closed actor");
    }

    /// Removes a failed actor's entry and hands the requests still in its mailbox, in order, to
    /// a fresh instance; `held` (one already taken from the mailbox) goes first.
    pub(crate) fn discard(
        &self,
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        held: Option<ErasedEnvelope>,
        mailbox: &mut mpsc::Receiver<ErasedEnvelope>,
    ) {
        {
            let mut table = self.table.borrow_mut();
            table.remove(&(namespace.index(), id));
            self.table_changed(&table);
        }
        let queued = std::iter::from_fn(|| mailbox.try_recv().ok());
        for envelope in held.into_iter().chain(queued) {
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
                self.close(resident, Eviction::Admin);
                self.table_changed(&table);
                Ok(())
            }
        }
    }

    /// Closes every resident actor that is idle; returns how many.
    pub(crate) fn close_idle(&self) -> usize {
        let mut table = self.table.borrow_mut();
        let idle: Vec<Key> = table
            .iter()
            .filter(|(_, r)| r.slot.idle())
            .map(|(k, _)| *k)
            .collect();
        for key in &idle {
            if let Some(resident) = table.remove(key) {
                self.close(resident, Eviction::Admin);
            }
        }
        self.table_changed(&table);
        idle.len()
    }

    /// Stops taking requests, lets turns in flight (and requests already queued) finish until
    /// `deadline`, then closes every actor.
    async fn shutdown(&self, deadline: Instant) -> ShutdownReport {
        self.closing.set(true);
        self.grace_until.set(Some(deadline));
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
        let mut report = ShutdownReport::default();
        {
            let mut table = self.table.borrow_mut();
            for (_, resident) in table.drain() {
                if resident.slot.idle() {
                    report.closed += 1;
                } else {
                    report.abandoned += 1;
                }
                self.close(resident, Eviction::Shutdown);
            }
            self.table_changed(&table);
        }
        // A checkpoint in flight holds a file open: the data directory is released only after.
        // (Dropping the executor would also wait for its blocking tasks; this says so here.)
        while !self.checkpointing.borrow().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        report
    }
}

/// How long an actor stays idle before its connection's caches are freed.
const TRIM_AFTER: Duration = Duration::from_secs(1);
