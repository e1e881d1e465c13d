//! The task that runs one resident actor on its shard, and the type-erased face through which
//! a shard starts it without knowing the actor's type.

use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::activation::{Activation, activate_with_log};
use crate::actor::envelope::{Envelope, ErasedEnvelope};
use crate::actor::{Actor, LostReason, LostState};
use crate::actor_type::ActorType;
use crate::delivery::Delivery;
use crate::error::CallError;
use crate::id::ActorId;
use crate::quarantine::quarantine;
use crate::shard::{ErasedNamespace, Shard, Slot};
use crate::storage::Storage;
use crate::turn::{Fate, Live};

impl<A: Actor> ErasedNamespace for ActorType<A> {
    fn index(&self) -> u32 {
        self.index
    }

    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn fail(&self, envelope: ErasedEnvelope, error: CallError) {
        Envelope::<A>::unerase(envelope).fail(error);
    }

    fn trim(&self, state: &dyn std::any::Any) {
        if let Some(live) = state.downcast_ref::<Live<A>>() {
            live.trim();
        }
    }

    fn storage_of(&self, state: Box<dyn std::any::Any>) -> Storage {
        state
            .downcast::<Live<A>>()
            .expect("a slot holds its namespace's actor")
            .into_storage()
    }

    fn alarm_envelope(&self, delivery: Delivery) -> ErasedEnvelope {
        Envelope::<A>::alarm(delivery)
    }

    fn start(
        self: Arc<Self>,
        shard: Rc<Shard>,
        id: ActorId,
        name: Option<Arc<str>>,
        mailbox: mpsc::Receiver<ErasedEnvelope>,
        slot: Rc<Slot>,
    ) {
        tokio::task::spawn_local(run_actor(self, shard, id, name, mailbox, slot));
    }
}

/// Activates the actor on its first envelope, then runs one turn per envelope, in order, until
/// the actor is evicted (its mailbox closes) or discarded after a failed turn.
async fn run_actor<A: Actor>(
    actor_type: Arc<ActorType<A>>,
    shard: Rc<Shard>,
    id: ActorId,
    name: Option<Arc<str>>,
    mut mailbox: mpsc::Receiver<ErasedEnvelope>,
    slot: Rc<Slot>,
) {
    let key = (actor_type.index, id);
    let post: Rc<dyn Fn(ErasedEnvelope)> = {
        let (shard, erased, name) = (
            Rc::downgrade(&shard),
            actor_type.clone() as Arc<dyn ErasedNamespace>,
            name.clone(),
        );
        Rc::new(move |envelope| match shard.upgrade() {
            Some(shard) => shard.deliver(erased.clone(), id, name.clone(), envelope),
            None => erased.fail(envelope, CallError::shutting_down()),
        })
    };
    // An envelope taken from the mailbox while gathering a group but not part of it (an
    // alarm): it is the next turn.
    let mut held: Option<Envelope<A>> = None;
    loop {
        let envelope = match held.take() {
            Some(envelope) => envelope,
            None => match mailbox.recv().await {
                Some(envelope) => {
                    take_one(&slot);
                    Envelope::<A>::unerase(envelope)
                }
                None => break,
            },
        };
        slot.busy.set(true);
        slot.trimmed.set(false);
        let state = slot.state.borrow_mut().take().map(|state| {
            state
                .downcast::<Live<A>>()
                .expect("a slot holds its namespace's actor")
        });
        // An activation claimed under an earlier generation of the log (its node lost its
        // lease and joined again) must not serve: it is closed and the actor claimed again.
        let state = state.filter(|live| !live.outlived_its_claim(&shard.services));
        let mut live: Box<Live<A>> = match state {
            Some(live) => live,
            None => match activate_with_log(Activation {
                actor_type: &actor_type,
                id,
                name: name.clone(),
                services: &shard.services,
                lost_note: shard.take_lost_note(key),
                post: post.clone(),
                background: slot.background.clone(),
            })
            .await
            {
                Ok(live) => Box::new(live),
                Err(error) => {
                    // Nothing was opened; the next envelope tries again.
                    tracing::warn!(%id, namespace = %actor_type.name, "activation failed: {error}");
                    envelope.fail(error);
                    slot.busy.set(false);
                    continue;
                }
            },
        };
        let fate = {
            let _span = tracing::trace_span!("turn", %id).entered();
            let mut next = || match mailbox.try_recv() {
                Ok(envelope) => {
                    take_one(&slot);
                    match Envelope::<A>::unerase(envelope) {
                        Envelope::Call(call) => Some(call),
                        alarm => {
                            held = Some(alarm);
                            None
                        }
                    }
                }
                Err(_) => None,
            };
            live.turn(envelope, &mut next).await
        };
        slot.busy.set(false);
        slot.last_used.set(shard.services.clock.elapsed());
        match fate {
            Fate::Keep => {
                *slot.state.borrow_mut() = Some(live);
                shard.rebalance();
            }
            Fate::Delete => {
                // Its file, record, alarms and log went before the reply; the instance goes
                // now, and queued calls meet a new actor.
                drop(live);
                let held = held.take().map(|e| Box::new(e) as ErasedEnvelope);
                shard.discard(actor_type.clone(), id, name.clone(), held, &mut mailbox);
                shard.rebalance();
                return;
            }
            Fate::Discard { corrupt } => {
                drop(live);
                if let Some(detail) = corrupt {
                    // The connection is closed: move the damaged file aside for the next
                    // activation, which starts fresh and is told why.
                    let path = actor_type.path_for(&id);
                    match quarantine(&path, "corrupt", &shard.services.clock) {
                        Ok(to) => {
                            shard
                                .services
                                .quarantined(actor_type.name.clone(), id, "corrupt", &to);
                            shard.note_lost(
                                key,
                                LostState {
                                    reason: LostReason::Corrupt(detail),
                                    quarantined_to: Some(to),
                                },
                            )
                        }
                        Err(e) => tracing::error!(%id, "cannot quarantine a corrupt file: {e}"),
                    }
                }
                let held = held.take().map(|e| Box::new(e) as ErasedEnvelope);
                shard.discard(actor_type.clone(), id, name.clone(), held, &mut mailbox);
                shard.rebalance();
                return;
            }
        }
    }
}

/// Counts an envelope out of the mailbox.
fn take_one(slot: &Slot) {
    debug_assert!(
        slot.queued.get() > 0,
        "every envelope in a mailbox is counted"
    );
    slot.queued.set(slot.queued.get() - 1);
}
