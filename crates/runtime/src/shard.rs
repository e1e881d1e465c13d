//! A shard: one thread with a single-threaded executor, owning the actors whose ids hash to it.
//!
//! Everything here runs on the shard's thread, so actor state, SQLite connections and the
//! residency table need no locks. Requests arrive through one channel per shard; the shard
//! routes each to its actor's mailbox, activating the actor when it is not resident and
//! closing the least recently used idle actors beyond the shard's share of `max_resident`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak as RcWeak};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Actor, Envelope, Fate, Live};
use crate::error::{CallError, ErrorKind};
use crate::hook::CommitHook;
use crate::id::ActorId;
use crate::namespace::{ErasedNamespace, NamespaceInner};
use crate::options::Durability;
use crate::runtime::{Inner, Runtime};

/// A request in flight to a shard, type-erased: its namespace knows its type.
pub(crate) type Boxed = Box<dyn Any + Send>;

/// Messages from the rest of the process to a shard.
pub(crate) enum ShardMsg {
    Deliver {
        namespace: Arc<dyn ErasedNamespace>,
        id: ActorId,
        name: Option<Arc<str>>,
        envelope: Boxed,
    },
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
    pub(crate) background: Rc<Cell<usize>>,
}

impl Slot {
    /// No turn running, nothing waiting, no background work: safe to close.
    fn idle(&self) -> bool {
        !self.busy.get() && self.queued.get() == 0 && self.background.get() == 0
    }
}

struct Resident {
    mailbox: mpsc::Sender<Boxed>,
    slot: Rc<Slot>,
}

type Key = (u32, ActorId);

pub(crate) struct Shard {
    runtime: Weak<Inner>,
    me: RcWeak<Shard>,
    table: RefCell<LinkedHashMap<Key, Resident>>,
    budget: usize,
    mailbox_capacity: usize,
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
        let mut table = self.table.borrow_mut();
        if table.to_back(&key).is_none() {
            if table.len() >= self.budget {
                evict_one_idle(&mut table);
            }
            let (tx, rx) = mpsc::channel(self.mailbox_capacity);
            let slot = Rc::new(Slot {
                state: RefCell::new(None),
                busy: Cell::new(false),
                queued: Cell::new(0),
                background: Rc::new(Cell::new(0)),
            });
            let shard = self
                .me
                .upgrade()
                .expect("a shard delivers only while it exists");
            namespace.clone().start(shard, id, name, rx, slot.clone());
            table.insert(key, Resident { mailbox: tx, slot });
        }
        let resident = table.get(&key).expect("inserted above");
        match resident.mailbox.try_send(envelope) {
            Ok(()) => resident.slot.queued.set(resident.slot.queued.get() + 1),
            Err(mpsc::error::TrySendError::Full(envelope)) => namespace.fail(
                envelope,
                CallError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "actor {id} has {} requests waiting, its mailbox's limit",
                        self.mailbox_capacity
                    ),
                ),
            ),
            Err(mpsc::error::TrySendError::Closed(envelope)) => namespace.fail(
                envelope,
                CallError::new(ErrorKind::ActorReset, "the actor stopped"),
            ),
        }
    }

    /// Closes idle actors while the shard holds more than its budget.
    fn trim(&self) {
        let mut table = self.table.borrow_mut();
        while table.len() > self.budget && evict_one_idle(&mut table) {}
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
        self.table.borrow_mut().remove(&(namespace.index(), id));
        while let Ok(envelope) = mailbox.try_recv() {
            self.deliver(namespace.clone(), id, name.clone(), envelope);
        }
    }

    /// Stops taking requests, lets turns in flight (and requests already queued) finish until
    /// `deadline`, then closes every actor.
    async fn shutdown(&self, deadline: Instant) -> ShardReport {
        self.closing.set(true);
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
            drop(resident.slot.state.borrow_mut().take());
        }
        report
    }
}

/// Closes the least recently used idle actor; returns whether there was one.
fn evict_one_idle(table: &mut LinkedHashMap<Key, Resident>) -> bool {
    let victim = table
        .iter()
        .find(|(_, r)| r.slot.idle())
        .map(|(key, _)| *key);
    match victim {
        Some(key) => {
            if let Some(resident) = table.remove(&key) {
                // Dropping the live actor closes its database; dropping the sender ends its task.
                drop(resident.slot.state.borrow_mut().take());
                tracing::trace!(id = %key.1, "evicted idle actor");
            }
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
        let fate = {
            let _span = tracing::trace_span!("turn", %id).entered();
            live.turn(envelope).await
        };
        slot.busy.set(false);
        match fate {
            Fate::Keep => {
                *slot.state.borrow_mut() = Some(live);
                shard.trim();
            }
            Fate::Discard => {
                drop(live);
                shard.discard(namespace.clone(), id, name.clone(), &mut mailbox);
                return;
            }
        }
    }
}

/// A shard thread's settings.
pub(crate) struct ShardConfig {
    pub runtime: Weak<Inner>,
    pub budget: usize,
    pub mailbox_capacity: usize,
    pub durability: Durability,
    pub commit_hook: Option<Arc<dyn CommitHook>>,
}

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
            budget: config.budget,
            mailbox_capacity: config.mailbox_capacity,
            durability: config.durability,
            commit_hook: config.commit_hook,
            closing: Cell::new(false),
        });
        while let Some(msg) = inbox.recv().await {
            match msg {
                ShardMsg::Deliver {
                    namespace,
                    id,
                    name,
                    envelope,
                } => shard.deliver(namespace, id, name, envelope),
                ShardMsg::Shutdown { deadline, done } => {
                    let report = shard.shutdown(deadline).await;
                    let _ = done.send(report);
                    return;
                }
            }
        }
        // Every handle to the runtime is gone without a shutdown: close what is open.
        shard.shutdown(Instant::now()).await;
    });
    // Dropping the LocalSet drops turns still running; their transactions roll back as their
    // connections close, and their callers see the reply channel close.
}
