//! The alarm scheduler: one thread that reads due entries from the catalog's index and
//! dispatches them to their actors' shards as alarm turns, whether or not the actors are
//! resident, then sleeps until the next one (or until a catalog commit wakes it).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::alarm::AlarmPolicy;
use crate::catalog_db::{CatalogDb, queries};
use crate::clock::{Clock, to_ms};
use crate::delivery::{AlarmKey, AlarmOutcomes, Delivery, SchedulerMsg};
use crate::dispatcher::Dispatcher;
use crate::random::Random;

/// An index entry's due time, attempts so far and fire time (ms).
type Version = (i64, u32, i64);

/// The scheduler thread's handle.
pub(crate) struct Scheduler {
    outcomes: Arc<AlarmOutcomes>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

/// Alarms dispatched per look at the index.
const BATCH: usize = 512;
/// The longest the scheduler sleeps without looking (a safety net for missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(1);

impl Scheduler {
    pub(crate) fn start(
        catalog: Arc<CatalogDb>,
        log: Option<Arc<dyn crate::turn_log::TurnLog>>,
        policy: AlarmPolicy,
        clock: Clock,
        random: Random,
        dispatcher: Weak<Dispatcher>,
    ) -> std::io::Result<Scheduler> {
        let (tx, rx) = mpsc::channel();
        let outcomes = Arc::new(AlarmOutcomes::new(
            catalog.clone(),
            log,
            policy,
            clock.clone(),
            random,
            tx,
        ));
        let waker = || -> Box<dyn Fn() + Send + Sync> {
            let outcomes = Arc::downgrade(&outcomes);
            Box::new(move || {
                if let Some(outcomes) = outcomes.upgrade() {
                    outcomes.wake();
                }
            })
        };
        // Look again after every commit that changed the index, and whenever time is moved.
        catalog.on_alarm_commit(waker());
        clock.on_advance(waker());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("burrow-alarms".into())
            .spawn({
                let (outcomes, stop) = (outcomes.clone(), stop.clone());
                move || run(catalog, clock, outcomes, dispatcher, rx, stop)
            })?;
        Ok(Scheduler {
            outcomes,
            thread: Mutex::new(Some(thread)),
            stop,
        })
    }

    /// Makes the scheduler look at the index again (a namespace was registered).
    pub(crate) fn wake(&self) {
        self.outcomes.wake();
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.outcomes.wake();
        if let Some(thread) = self.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }
}

fn run(
    catalog: Arc<CatalogDb>,
    clock: Clock,
    outcomes: Arc<AlarmOutcomes>,
    dispatcher: Weak<Dispatcher>,
    rx: mpsc::Receiver<SchedulerMsg>,
    stop: Arc<AtomicBool>,
) {
    // Each alarm dispatched, by the version of its index entry (due, attempts, fire time) that
    // was dispatched, and whether that delivery has finished. A delivery reports its outcome to
    // the catalog before it reports to the scheduler, but the catalog commits a moment later:
    // until the index shows a new version, the old one must not be dispatched again.
    let mut dispatched: HashMap<AlarmKey, (Version, bool)> = HashMap::new();
    while !stop.load(Ordering::Acquire) {
        let now = clock.now_ms();
        let (due, next) =
            match catalog.read(|c| queries::due_alarms(c, now, BATCH + dispatched.len())) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!("reading due alarms: {e}");
                    (Vec::new(), None)
                }
            };
        let Some(dispatcher) = dispatcher.upgrade() else {
            return;
        };
        let mut seen = HashSet::new();
        for alarm in due {
            let key: AlarmKey = (
                Arc::from(alarm.namespace.as_str()),
                alarm.id,
                alarm.name.clone(),
            );
            let version = (to_ms(alarm.due), alarm.attempts, to_ms(alarm.fire_at));
            seen.insert(key.clone());
            match dispatched.get(&key) {
                Some((v, _)) if *v == version => continue,
                Some((_, false)) => continue, // a newer version waits for the delivery in flight
                _ => {}
            }
            // Alarms of namespaces not registered (yet) wait for their registration.
            let Some(namespace) = dispatcher.registered(&alarm.namespace) else {
                continue;
            };
            let delivery = Delivery {
                namespace: key.0.clone(),
                id: alarm.id,
                name: alarm.name,
                due_ms: version.0,
                attempt: alarm.attempts + 1,
                scheduled_ms: version.2,
                backoff_ms: alarm.backoff.as_millis() as i64,
                expire: false,
                outcomes: outcomes.clone(),
            };
            dispatched.insert(key, (version, false));
            if dispatcher.deliver_alarm(&namespace, delivery).is_err() {
                return; // shutting down
            }
        }
        // Finished deliveries whose entries have moved on (rescheduled or removed).
        dispatched.retain(|key, (_, finished)| !*finished || seen.contains(key));
        drop(dispatcher);
        let sleep = next
            .map(|at| Duration::from_millis((at - clock.now_ms()).max(0) as u64))
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
