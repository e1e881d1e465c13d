//! An alarm on its way to its actor, and where the delivery reports its outcome: the catalog's
//! index (done, retry later, dead-lettered) and the scheduler (this delivery has ended).

use std::sync::Arc;
use std::sync::mpsc;

use crate::alarm::AlarmPolicy;
use crate::catalog_db::{CatalogDb, CatalogWrite};
use crate::clock::Clock;
use crate::id::ActorId;
use crate::random::Random;
use crate::turn_log::{Incident, TurnLog};

/// An alarm on its way to an actor (or, with `expire`, the clean-up of a dead-lettered one).
#[derive(Clone)]
pub(crate) struct Delivery {
    pub namespace: Arc<str>,
    pub id: ActorId,
    pub name: String,
    pub due_ms: i64,
    pub attempt: u32,
    pub scheduled_ms: i64,
    pub backoff_ms: i64,
    pub expire: bool,
    pub outcomes: Arc<AlarmOutcomes>,
}

/// Where deliveries report their outcome: the catalog's index, and the scheduler.
pub(crate) struct AlarmOutcomes {
    catalog: Arc<CatalogDb>,
    /// Where dead letters are also recorded (the replicated log), if anywhere.
    log: Option<Arc<dyn TurnLog>>,
    policy: AlarmPolicy,
    clock: Clock,
    random: Random,
    scheduler: std::sync::Mutex<mpsc::Sender<SchedulerMsg>>,
}

impl AlarmOutcomes {
    pub(crate) fn new(
        catalog: Arc<CatalogDb>,
        log: Option<Arc<dyn TurnLog>>,
        policy: AlarmPolicy,
        clock: Clock,
        random: Random,
        scheduler: mpsc::Sender<SchedulerMsg>,
    ) -> AlarmOutcomes {
        AlarmOutcomes {
            catalog,
            log,
            policy,
            clock,
            random,
            scheduler: std::sync::Mutex::new(scheduler),
        }
    }
}

pub(crate) enum SchedulerMsg {
    /// Something changed: look at the index again.
    Wake,
    /// A delivery ended (whatever its outcome); its alarm may be dispatched again.
    Finished(AlarmKey),
}

/// An alarm's identity: namespace, actor, name.
pub(crate) type AlarmKey = (Arc<str>, ActorId, String);

impl AlarmOutcomes {
    pub(crate) fn wake(&self) {
        let _ = self
            .scheduler
            .lock()
            .expect("not poisoned")
            .send(SchedulerMsg::Wake);
    }

    fn finished(&self, d: &Delivery) {
        let _ = self
            .scheduler
            .lock()
            .expect("not poisoned")
            .send(SchedulerMsg::Finished((
                d.namespace.clone(),
                d.id,
                d.name.clone(),
            )));
    }

    /// The handler succeeded (or the alarm no longer exists in the actor): drop the index entry
    /// — unless the handler set the alarm again, whose entry (even with the same due time)
    /// replaced this one.
    pub(crate) fn done(&self, d: &Delivery, set_again: bool) {
        if !set_again {
            self.catalog.send(CatalogWrite::AlarmDone {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
            });
        }
        self.finished(d);
    }

    /// The delivered version is not the one the actor holds: the index entry came from a turn
    /// that indexed its alarm and then never committed (a crash between the two), and it
    /// replaced the entry of the version the actor does hold. Index the actor's version again,
    /// so that it fires when due instead of never.
    pub(crate) fn reindex(&self, d: &Delivery, held_due_ms: i64) {
        tracing::warn!(namespace = %d.namespace, id = %d.id, alarm = %d.name,
            indexed = d.due_ms, held = held_due_ms, "re-indexing an alarm whose index entry was replaced by a turn that never committed");
        self.catalog.send(CatalogWrite::AlarmSet {
            namespace: d.namespace.clone(),
            id: d.id,
            name: d.name.clone(),
            due_ms: held_due_ms,
            ack: None,
        });
        self.finished(d);
    }

    /// The handler failed: schedule the next attempt, or dead-letter the alarm. Returns whether
    /// it was dead-lettered.
    pub(crate) fn failed(&self, d: &Delivery, error: &str) -> bool {
        let dead = d.attempt >= self.policy.max_attempts;
        if dead {
            metrics::counter!("burrow_alarms_dead_total").increment(1);
            tracing::error!(namespace = %d.namespace, id = %d.id, alarm = %d.name, attempts = d.attempt, "alarm dead-lettered: {error}");
            crate::incident::report(
                self.log.as_ref(),
                d.namespace.clone(),
                d.id,
                Incident::DeadAlarm {
                    name: d.name.clone(),
                    due_ms: d.due_ms,
                    attempts: d.attempt,
                    error: error.to_owned(),
                },
            );
            self.catalog.send(CatalogWrite::AlarmDead {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
                attempts: d.attempt,
                error: error.to_owned(),
                at_ms: self.clock.now_ms(),
            });
        } else {
            metrics::counter!("burrow_alarm_retries_total").increment(1);
            let backoff_ms = self.policy.delay_after(d.attempt, &self.random).as_millis() as i64;
            self.catalog.send(CatalogWrite::AlarmRetry {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
                attempt: d.attempt,
                fire_at_ms: self.clock.now_ms() + backoff_ms,
                backoff_ms,
                error: error.to_owned(),
            });
        }
        self.finished(d);
        dead
    }

    /// The actor is active on another node of the cluster, which indexed the alarm when it
    /// claimed the actor and fires it there: this node's entry is dropped (if it is still the
    /// one delivered). Were that node to die first, the alarm is adopted again from the log by
    /// whichever node finds it orphaned.
    pub(crate) fn elsewhere(&self, d: &Delivery) {
        tracing::debug!(namespace = %d.namespace, id = %d.id, alarm = %d.name, "alarm left to the node that holds its actor");
        self.done(d, false);
    }

    /// The delivery never reached the handler (full mailbox, runtime shutting down): try again
    /// shortly, without counting an attempt.
    pub(crate) fn not_delivered(&self, d: &Delivery, error: &str) {
        self.catalog.send(CatalogWrite::AlarmRetry {
            namespace: d.namespace.clone(),
            id: d.id,
            name: d.name.clone(),
            due_ms: d.due_ms,
            attempt: d.attempt - 1,
            fire_at_ms: self.clock.now_ms() + 1000,
            backoff_ms: d.backoff_ms,
            error: error.to_owned(),
        });
        self.finished(d);
    }
}
