//! The turn engine: one message or alarm at a time, in one transaction — `BEGIN`, the
//! activation hook on an instance's first turn, the handler (a panic is caught), then
//! [`commit`](crate::commit) or `ROLLBACK`, and only then the reply.
//!
//! Calls already queued for the actor join the transaction as a group, each in a savepoint,
//! so that one commit (one fsync) releases all their replies; a failing one is undone alone.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt as _;
use tokio::sync::oneshot;

use crate::actor::envelope::{Call, Envelope, Handled, Refuse, Respond};
use crate::actor::{Actor, Context};
use crate::alarm::Alarm;
use crate::clock::{from_ms, ms_duration};
use crate::commit::commit;
use crate::delivery::Delivery;
use crate::error::Abort;
use crate::failure::Failure;

/// Hands a group the actor's next queued call, if the next queued envelope is a call.
pub(crate) type NextCall<'a, A> = &'a mut dyn FnMut() -> Option<Box<dyn Call<A>>>;

/// The turns of one group, run and waiting for the commit.
struct Group {
    /// The replies to release after the commit, with when each turn started.
    replies: Vec<(Respond, Instant)>,
    /// The turn that ended the group by failing (its writes undone), if one did.
    failed: Option<(Failure, Refuse)>,
    /// Whether the instance must go even if the commit succeeds.
    discard: bool,
}

/// Records how long each turn of a commit took, from its start to the commit, and how many
/// turns the commit held.
fn record_turns(started: impl ExactSizeIterator<Item = Instant>) {
    metrics::histogram!("burrow_turns_per_commit").record(started.len() as f64);
    let turns = metrics::histogram!("burrow_turn_seconds");
    for at in started {
        turns.record(at.elapsed().as_secs_f64());
    }
}

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
    /// The turn committed and asked for the actor to be deleted
    /// ([`Context::delete_after_commit`]).
    Delete,
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

    /// Gives back the memory an idle actor's connection does not need.
    pub(crate) fn trim(&self) {
        self.ctx.storage.trim();
    }

    /// Whether the actor was claimed under a generation of the log that is over (see
    /// [`TurnLog::generation`](crate::turn_log::TurnLog::generation)).
    pub(crate) fn outlived_its_claim(&self, services: &crate::services::ShardServices) -> bool {
        #[cfg(feature = "replicated")]
        if let (Some(log), Some(cursor)) = (&services.log, self.ctx.storage.cursor())
            && cursor.generation != log.generation()
        {
            metrics::counter!("burrow_activations_outlived_total").increment(1);
            tracing::info!(id = %self.ctx.info.id(), "closing an activation claimed under an earlier incarnation of its node");
            return true;
        }
        let _ = services;
        false
    }

    /// The actor's file, for the activation's last steps.
    #[cfg(feature = "replicated")]
    pub(crate) fn storage_mut(&mut self) -> &mut crate::storage::Storage {
        &mut self.ctx.storage
    }

    /// The actor's file, for closing it elsewhere; the actor value is dropped here.
    pub(crate) fn into_storage(self) -> crate::storage::Storage {
        drop(self.actor);
        self.ctx.storage
    }

    /// Runs one turn — or, when more calls are queued, a group of turns sharing one commit
    /// (see [`Options::max_turns_per_commit`](crate::Options::max_turns_per_commit)): begin,
    /// handle, commit (or roll back), then release the replies. `next` hands over the next
    /// queued call, if the next queued envelope is one.
    pub(crate) async fn turn(&mut self, envelope: Envelope<A>, next: NextCall<'_, A>) -> Fate {
        let fate = match envelope {
            Envelope::Call(call) => self.call_turns(call, next).await,
            Envelope::Alarm(delivery) => {
                let started = Instant::now();
                let fate = self.alarm_turn(delivery).await;
                record_turns(std::iter::once(started));
                fate
            }
        };
        debug_assert!(
            matches!(fate, Fate::Discard { .. }) || self.ctx.storage.sql().is_autocommit(),
            "a kept actor has no transaction open between turns"
        );
        match fate {
            Fate::Keep if self.ctx.delete_after_commit => Fate::Delete,
            fate => fate,
        }
    }

    async fn call_turns(&mut self, first: Box<dyn Call<A>>, next: NextCall<'_, A>) -> Fate {
        if let Err(e) = self.ctx.storage.begin() {
            let failure = Failure::storage("beginning the turn", &e);
            let fate = Fate::after(&failure);
            first.fail(failure.error);
            return fate;
        }
        if let Err(failure) = self.ensure_activated().await {
            let fate = Fate::after(&failure);
            first.fail(failure.error);
            return fate;
        }
        let Group {
            replies,
            failed,
            discard,
        } = self.handle_group(first, next).await;
        if replies.is_empty() {
            // The first turn failed: the whole transaction is already rolled back.
            let (failure, refuse) = failed.expect("a group without replies ended in a failure");
            let fate = Fate::after(&failure);
            refuse(failure.error);
            return fate;
        }
        if let Some(delay) = crate::faults::ack_before_commit() {
            // Broken on purpose (fault injection in tests only): reply, then commit.
            for (respond, _) in replies {
                respond(Ok(()));
            }
            tokio::time::sleep(delay).await;
            return match self.finish().await {
                Err(failure) => Fate::after(&failure),
                Ok(()) => Fate::Keep,
            };
        }
        let committed = self.finish().await;
        record_turns(replies.iter().map(|(_, started)| *started));
        let mut fate = match &committed {
            Ok(()) if discard => Fate::Discard { corrupt: None },
            Ok(()) => Fate::Keep,
            Err(failure) => Fate::after(failure),
        };
        for (respond, _) in replies {
            respond(committed.as_ref().map(drop).map_err(|f| f.error.clone()));
        }
        if let Some((failure, refuse)) = failed {
            if matches!(fate, Fate::Keep) {
                fate = Fate::after(&failure);
            }
            refuse(failure.error);
        }
        fate
    }

    /// Runs the handlers of one group inside the open transaction: the first call, then queued
    /// calls (each in a savepoint) until the group is full, a handler awaited or flushed,
    /// nothing more is queued, or a handler failed.
    async fn handle_group(&mut self, first: Box<dyn Call<A>>, next: NextCall<'_, A>) -> Group {
        let limit = self.ctx.services.max_turns_per_commit;
        let mut group = Group {
            replies: Vec::new(),
            failed: None,
            discard: false,
        };
        let mut call = first;
        loop {
            let started = Instant::now();
            // The first turn needs no savepoint: if it fails, the whole transaction goes.
            let grouped = !group.replies.is_empty();
            let alarms_before = if grouped {
                if let Err(e) = self.ctx.storage.begin_grouped_turn() {
                    let failure = Failure::storage("opening a grouped turn", &e);
                    group.failed = Some((failure, Box::new(move |e| call.fail(e))));
                    return group;
                }
                Some((self.ctx.alarm_changes.clone(), self.ctx.delete_after_commit))
            } else {
                None
            };
            self.ctx.flushed = None;
            let mut handling = call.handle(&mut self.actor, &mut self.ctx);
            let mut polls = 0_u32;
            let handled = std::future::poll_fn(|cx| {
                polls += 1;
                handling.as_mut().poll(cx)
            })
            .await;
            drop(handling);
            let flushed = self.ctx.flushed.take();
            if let (true, Some(Err(error))) = (grouped, &flushed) {
                // The flush's commit failed and rolled back the turns grouped before this
                // one: they fail with it, and the actor's memory of them goes too.
                for (respond, _) in group.replies.drain(..) {
                    respond(Err(error.clone()));
                }
                group.discard = true;
            }
            // A flush committed (and so ended) the group's savepoint: what is left to undo or
            // keep is this turn's writes since the flush, the whole open transaction.
            let in_savepoint = grouped && flushed.is_none();
            match (handled, in_savepoint) {
                (Handled::Replied(respond), false) => group.replies.push((respond, started)),
                (Handled::Replied(respond), true) => {
                    if let Err(e) = self.ctx.storage.keep_grouped_turn() {
                        let failure = Failure::storage("ending a grouped turn", &e);
                        group.failed = Some((failure, Box::new(move |e| respond(Err(e)))));
                        return group;
                    }
                    group.replies.push((respond, started));
                }
                (Handled::Failed(cause, refuse), false) => {
                    let failure = self.roll_back(cause);
                    if !group.replies.is_empty() {
                        // Only what followed a flush was rolled back; the turns before it
                        // committed with the flush and still need their commit to finish.
                        if let Err(e) = self.ctx.storage.begin() {
                            tracing::warn!(id = %self.ctx.info.id, "reopening a group after a flush: {e}");
                        }
                    }
                    group.failed = Some((failure, refuse));
                    return group;
                }
                (Handled::Failed(cause, refuse), true) => {
                    (self.ctx.alarm_changes, self.ctx.delete_after_commit) =
                        alarms_before.expect("saved for a grouped turn");
                    if let Err(e) = self.ctx.storage.undo_grouped_turn() {
                        tracing::warn!(id = %self.ctx.info.id, "rolling back a failed grouped turn: {e}");
                    }
                    group.failed = Some((Failure::of_handler(cause), refuse));
                    return group;
                }
            }
            // A handler that awaited may await again: do not hold the group's replies for it.
            if polls > 1 || flushed.is_some() || group.replies.len() >= limit {
                return group;
            }
            match next() {
                Some(queued) => call = queued,
                None => return group,
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
        let ctx = &mut self.ctx;
        commit(
            &mut ctx.storage,
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
        if self.ctx.delete_after_commit {
            crate::deletion::delete_committed(&self.ctx).await?;
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
            // Through the whole commit path: in replicated mode the removal goes to the log too.
            let expired = match self
                .ctx
                .storage
                .delete_alarm_row_if_due(&delivery.name, delivery.due_ms)
            {
                Ok(_) => self.finish().await,
                Err(e) => Err(Failure::storage("removing a dead-lettered alarm", &e)),
            };
            return match expired {
                Ok(()) => Fate::Keep,
                Err(failure) => {
                    let _ = self.ctx.storage.rollback();
                    tracing::warn!(id = %self.ctx.info.id, alarm = %delivery.name, "removing a dead-lettered alarm: {}", failure.error);
                    Fate::after(&failure)
                }
            };
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
