//! Durable named alarms: what a handler is told, the retry policy, and the scheduler that fires
//! alarms from the catalog's index whether or not their actors are resident.
//!
//! An alarm lives in two places. The actor's own file holds it (`_burrow_alarms`), written in
//! the turn's transaction, so an aborted turn never leaves one behind. The catalog indexes it
//! by fire time, written (and acknowledged) *before* the turn commits, so the index is always a
//! superset of what the actors hold: a crash between the two leaves an index entry whose alarm
//! does not exist, which delivery recognises (the actor's file is checked first) and drops.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::catalog::{self, Op, Store, now_ms};
use crate::id::ActorId;
use crate::runtime::Inner;

/// An alarm being delivered to [`Actor::alarm`](crate::Actor::alarm).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alarm {
    /// The name it was set under.
    pub name: String,
    /// When it was due, in milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// 1 for the first delivery, 2 for the first retry, and so on.
    pub attempt: u32,
    /// When this attempt was scheduled to run (the due time, then each retry's time), in
    /// milliseconds since the epoch.
    pub scheduled_ms: i64,
    /// How late this attempt runs relative to `scheduled_ms` (for instance, because the host
    /// was down when it came due).
    pub late_by: Duration,
    /// The backoff delay chosen after the previous attempt failed (zero on the first attempt).
    pub backoff: Duration,
}

/// How failed alarm handlers are retried. Delivery is at least once: a handler that fails (or
/// panics) runs again after a delay that doubles from `first_retry` up to `max_delay`, each
/// delay varied by ±`jitter`; after `max_attempts` failures the alarm goes to the catalog's
/// dead-letter list.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmPolicy {
    /// The delay before the first retry (default 2 s).
    pub first_retry: Duration,
    /// The longest delay between attempts (default 5 min).
    pub max_delay: Duration,
    /// The fraction by which each delay is varied at random, up or down (default 0.25).
    pub jitter: f64,
    /// Attempts before an alarm is dead-lettered (default 6).
    pub max_attempts: u32,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        AlarmPolicy {
            first_retry: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            jitter: 0.25,
            max_attempts: 6,
        }
    }
}

/// A uniformly random number in [0, 1).
pub(crate) fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl AlarmPolicy {
    /// The delay after failed attempt `attempt` (1-based).
    pub(crate) fn delay_after(&self, attempt: u32) -> Duration {
        let doubled = self.first_retry.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let base = doubled.min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter + 2.0 * jitter * unit_random())
    }
}

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
    pub sink: Arc<Sink>,
}

/// Where deliveries report their outcome: the catalog's index, and the scheduler.
pub(crate) struct Sink {
    catalog: Arc<Store>,
    policy: AlarmPolicy,
    scheduler: std::sync::Mutex<mpsc::Sender<SchedulerMsg>>,
}

pub(crate) enum SchedulerMsg {
    /// Something changed: look at the index again.
    Wake,
    /// A delivery ended (whatever its outcome); its alarm may be dispatched again.
    Finished(AlarmKey),
}

type AlarmKey = (Arc<str>, ActorId, String);

/// An index entry's due time, attempts so far and fire time.
type Version = (i64, u32, i64);

impl Sink {
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
            self.catalog.send(Op::AlarmDone {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
            });
        }
        self.finished(d);
    }

    /// The handler failed: schedule the next attempt, or dead-letter the alarm. Returns whether
    /// it was dead-lettered.
    pub(crate) fn failed(&self, d: &Delivery, error: &str) -> bool {
        let dead = d.attempt >= self.policy.max_attempts;
        if dead {
            metrics::counter!("burrow_alarms_dead_total").increment(1);
            tracing::error!(namespace = %d.namespace, id = %d.id, alarm = %d.name, attempts = d.attempt, "alarm dead-lettered: {error}");
            self.catalog.send(Op::AlarmDead {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
                attempts: d.attempt,
                error: error.to_owned(),
                at_ms: now_ms(),
            });
        } else {
            metrics::counter!("burrow_alarm_retries_total").increment(1);
            let backoff_ms = self.policy.delay_after(d.attempt).as_millis() as i64;
            self.catalog.send(Op::AlarmRetry {
                namespace: d.namespace.clone(),
                id: d.id,
                name: d.name.clone(),
                due_ms: d.due_ms,
                attempt: d.attempt,
                fire_at_ms: now_ms() + backoff_ms,
                backoff_ms,
                error: error.to_owned(),
            });
        }
        self.finished(d);
        dead
    }

    /// The delivery never reached the handler (full mailbox, runtime shutting down): try again
    /// shortly, without counting an attempt.
    pub(crate) fn not_delivered(&self, d: &Delivery, error: &str) {
        self.catalog.send(Op::AlarmRetry {
            namespace: d.namespace.clone(),
            id: d.id,
            name: d.name.clone(),
            due_ms: d.due_ms,
            attempt: d.attempt - 1,
            fire_at_ms: now_ms() + 1000,
            backoff_ms: d.backoff_ms,
            error: error.to_owned(),
        });
        self.finished(d);
    }
}

/// The scheduler thread: dispatches due alarms and sleeps until the next one.
pub(crate) struct Scheduler {
    sink: Arc<Sink>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Alarms dispatched per look at the index.
const BATCH: usize = 512;
/// The longest the scheduler sleeps without looking (a safety net for missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(1);

impl Scheduler {
    pub(crate) fn start(
        catalog: Arc<Store>,
        policy: AlarmPolicy,
        runtime: Weak<Inner>,
    ) -> std::io::Result<Scheduler> {
        let (tx, rx) = mpsc::channel();
        let sink = Arc::new(Sink {
            catalog: catalog.clone(),
            policy,
            scheduler: std::sync::Mutex::new(tx),
        });
        catalog.on_alarm_commit(Box::new({
            let sink = Arc::downgrade(&sink);
            move || {
                if let Some(sink) = sink.upgrade() {
                    sink.wake();
                }
            }
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("burrow-alarms".into())
            .spawn({
                let (sink, stop) = (sink.clone(), stop.clone());
                move || run(catalog, sink, runtime, rx, stop)
            })?;
        Ok(Scheduler {
            sink,
            thread: std::sync::Mutex::new(Some(thread)),
            stop,
        })
    }

    pub(crate) fn sink(&self) -> &Arc<Sink> {
        &self.sink
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.sink.wake();
        if let Some(thread) = self.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }
}

fn run(
    catalog: Arc<Store>,
    sink: Arc<Sink>,
    runtime: Weak<Inner>,
    rx: mpsc::Receiver<SchedulerMsg>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    // Each alarm dispatched, by the version of its index entry (due, attempts, fire time) that
    // was dispatched, and whether that delivery has finished. A delivery reports its outcome to
    // the catalog before it reports to the scheduler, but the catalog commits a moment later:
    // until the index shows a new version, the old one must not be dispatched again.
    let mut dispatched: HashMap<AlarmKey, (Version, bool)> = HashMap::new();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let now = now_ms();
        let (due, next) =
            match catalog.read(|c| catalog::due_alarms(c, now, BATCH + dispatched.len())) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!("reading due alarms: {e}");
                    (Vec::new(), None)
                }
            };
        let Some(inner) = runtime.upgrade() else {
            return;
        };
        let runtime = crate::Runtime::from_inner(inner);
        let mut seen = HashSet::new();
        for alarm in due {
            let key: AlarmKey = (
                Arc::from(alarm.namespace.as_str()),
                alarm.id,
                alarm.name.clone(),
            );
            let version = (alarm.due_ms, alarm.attempts, alarm.fire_at_ms);
            seen.insert(key.clone());
            match dispatched.get(&key) {
                Some((v, _)) if *v == version => continue,
                Some((_, false)) => continue, // a newer version waits for the delivery in flight
                _ => {}
            }
            // Alarms of namespaces not registered (yet) wait for their registration.
            let Some(namespace) = runtime.registered(&alarm.namespace) else {
                continue;
            };
            let delivery = Delivery {
                namespace: key.0.clone(),
                id: alarm.id,
                name: alarm.name,
                due_ms: alarm.due_ms,
                attempt: alarm.attempts + 1,
                scheduled_ms: alarm.fire_at_ms,
                backoff_ms: alarm.backoff_ms,
                expire: false,
                sink: sink.clone(),
            };
            dispatched.insert(key, (version, false));
            if runtime.deliver_alarm(&namespace, delivery).is_err() {
                return; // shutting down
            }
        }
        // Finished deliveries whose entries have moved on (rescheduled or removed).
        dispatched.retain(|key, (_, finished)| !*finished || seen.contains(key));
        drop(runtime);
        let sleep = next
            .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        match rx.recv_timeout(sleep) {
            Ok(msg) => {
                let mut handle = |msg| {
                    if let SchedulerMsg::Finished(key) = msg
                        && let Some((_, finished)) = dispatched.get_mut(&key)
                    {
                        *finished = true;
                    }
                };
                handle(msg);
                while let Ok(msg) = rx.try_recv() {
                    handle(msg);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AlarmPolicy;
    use std::time::Duration;

    #[test]
    fn delays_double_within_the_jitter_and_stop_at_the_cap() {
        let policy = AlarmPolicy::default();
        for _ in 0..1000 {
            let first = policy.delay_after(1);
            assert!(first >= Duration::from_millis(1500) && first <= Duration::from_millis(2500));
            let second = policy.delay_after(2);
            assert!(second >= Duration::from_secs(3) && second <= Duration::from_secs(5));
            let late = policy.delay_after(40);
            assert!(late >= Duration::from_secs(225) && late <= Duration::from_secs(375));
        }
    }
}
