//! The turn engine: one message or alarm at a time, in one transaction — `BEGIN`, the
//! activation hook on an instance's first turn, the handler (a panic is caught), then
//! [`commit`](crate::commit) or `ROLLBACK`, and only then the reply.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tokio::sync::oneshot;

use crate::actor::envelope::{Call, Envelope, Handled};
use crate::actor::{Actor, Context};
use crate::alarm::Alarm;
use crate::clock::{from_ms, ms_duration};
use crate::commit::{Failure, commit};
use crate::delivery::Delivery;
use crate::error::Abort;

/// A live actor: the value, its context, and where it is in its life.
pub(crate) struct Live<A: Actor> {
    actor: A,
    ctx: Context<A>,
    /// For a new actor, the catalog's acknowledgement of its creation, which the first
    /// turn's reply waits for.
    catalog_ack: Option<oneshot::Receiver<Result<(), String>>>,
    /// Whether [`Actor::on_activate`] has run (and succeeded) for this instance.
    activated: bool,
}

/// Whether the actor instance survives the turn.
pub(crate) enum Fate {
    Keep,
    /// Discard the instance; `corrupt` says why if its file turned out to be damaged.
    Discard {
        corrupt: Option<String>,
    },
}

impl Fate {
    fn after(failure: &Failure) -> Fate {
        if failure.discard {
            Fate::Discard {
                corrupt: failure.corrupt.clone(),
            }
        } else {
            Fate::Keep
        }
    }
}

impl<A: Actor> Live<A> {
    pub(crate) fn new(
        actor: A,
        ctx: Context<A>,
        catalog_ack: Option<oneshot::Receiver<Result<(), String>>>,
    ) -> Live<A> {
        Live {
            actor,
            ctx,
            catalog_ack,
            activated: false,
        }
    }

    /// Runs one turn: begin, handle, commit (or roll back), then release the reply.
    pub(crate) async fn turn(&mut self, envelope: Envelope<A>) -> Fate {
        let fate = match envelope {
            Envelope::Call(call) => self.call_turn(call).await,
            Envelope::Alarm(delivery) => self.alarm_turn(delivery).await,
        };
        debug_assert!(
            matches!(fate, Fate::Discard { .. }) || self.ctx.storage.sql().is_autocommit(),
            "a kept actor has no transaction open between turns"
        );
        fate
    }

    async fn call_turn(&mut self, call: Box<dyn Call<A>>) -> Fate {
        if let Err(e) = self.ctx.storage.begin() {
            let failure = Failure::storage("beginning the turn", &e);
            let fate = Fate::after(&failure);
            call.fail(failure.error);
            return fate;
        }
        if let Err(failure) = self.ensure_activated().await {
            let fate = Fate::after(&failure);
            call.fail(failure.error);
            return fate;
        }
        match call.handle(&mut self.actor, &mut self.ctx).await {
            Handled::Replied(respond) => {
                if let Some(delay) = crate::faults::ack_before_commit() {
                    // Broken on purpose (fault injection in tests only): reply, then commit.
                    respond(Ok(()));
                    tokio::time::sleep(delay).await;
                    return match self.finish().await {
                        Err(failure) => Fate::after(&failure),
                        Ok(()) => Fate::Keep,
                    };
                }
                match self.finish().await {
                    Ok(()) => {
                        respond(Ok(()));
                        Fate::Keep
                    }
                    Err(failure) => {
                        let fate = Fate::after(&failure);
                        respond(Err(failure.error));
                        fate
                    }
                }
            }
            Handled::Failed(cause, refuse) => {
                let failure = self.roll_back(cause);
                let fate = Fate::after(&failure);
                refuse(failure.error);
                fate
            }
        }
    }

    /// Runs [`Actor::on_activate`] if this instance has not run it yet, inside the turn's
    /// transaction; a failure rolls the turn back.
    async fn ensure_activated(&mut self) -> Result<(), Failure> {
        if self.activated {
            return Ok(());
        }
        let outcome = AssertUnwindSafe(self.actor.on_activate(&mut self.ctx))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(())) => {
                self.activated = true;
                Ok(())
            }
            Ok(Err(abort)) => Err(self.roll_back(Ok(abort))),
            Err(panic) => Err(self.roll_back(Err(panic))),
        }
    }

    /// Rolls back a turn whose handler (or activation hook) failed.
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
        let alarms = std::mem::take(&mut self.ctx.alarm_changes);
        let ctx = &self.ctx;
        commit(
            &ctx.storage,
            &ctx.services,
            &ctx.info.namespace,
            ctx.info.id,
            alarms,
        )
        .await?;
        if let Some(ack) = self.catalog_ack.take() {
            let recorded = ack
                .await
                .unwrap_or_else(|_| Err("the catalog writer stopped".into()));
            if let Err(e) = recorded {
                // Retrying re-activates the actor, which records it again.
                return Err(Failure::transient(format!(
                    "the turn committed, but the catalog could not record the new actor: {e}"
                )));
            }
        }
        Ok(())
    }

    /// Delivers an alarm: checks that the actor still holds it, runs the handler, and reports
    /// the outcome to the alarm index.
    async fn alarm_turn(&mut self, delivery: Delivery) -> Fate {
        let outcomes = delivery.outcomes.clone();
        let failed = |this: &mut Self, failure: Failure| {
            if outcomes.failed(&delivery, failure.error.message()) {
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
            let _ = self.ctx.storage.rollback();
            match current {
                // Deleted since it was indexed, or set only by a turn that never committed.
                None => outcomes.done(&delivery, false),
                // The actor holds another version, which this index entry displaced.
                Some(held) => outcomes.reindex(&delivery, held),
            }
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
        if let Err(failure) = self.ensure_activated().await {
            return failed(self, failure);
        }
        let alarm = Alarm {
            name: delivery.name.clone(),
            due: from_ms(delivery.due_ms),
            attempt: delivery.attempt,
            scheduled: from_ms(delivery.scheduled_ms),
            late_by: ms_duration(self.ctx.services.clock.now_ms() - delivery.scheduled_ms),
            backoff: ms_duration(delivery.backoff_ms),
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
                                outcomes.done(&delivery, set_again);
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
        (self.ctx.post)(Envelope::<A>::alarm(expire));
    }
}
