//! Alarms, retry backoff and idle eviction on a manual clock: hours pass in an instant, and a
//! seeded runtime reproduces its retry delays exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use burrow_runtime::alarm::{Alarm, AlarmPolicy};
use burrow_runtime::clock::ManualClock;
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};

const GRACE: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Waits (real time, up to 10 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Default)]
struct Seen {
    /// Each delivery: name, attempt, backoff, late by.
    deliveries: Mutex<Vec<(String, u32, Duration, Duration)>>,
    activations: AtomicUsize,
    closed: AtomicUsize,
}

impl Seen {
    fn delivered(&self, name: &str) -> Vec<(u32, Duration, Duration)> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries
            .iter()
            .filter(|d| d.0 == name)
            .map(|d| (d.1, d.2, d.3))
            .collect()
    }
}

struct Timed {
    seen: Arc<Seen>,
    /// Alarm handlers fail (every attempt is retried).
    fail: bool,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.seen.closed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Actor for Timed {
    async fn on_activate(&mut self, _: &mut Context<Self>) -> Result<(), Abort> {
        self.seen.activations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn alarm(&mut self, _: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        self.seen.deliveries.lock().unwrap().push((
            alarm.name.clone(),
            alarm.attempt,
            alarm.backoff,
            alarm.late_by,
        ));
        if self.fail {
            return Err(Abort::new("deliberate failure"));
        }
        Ok(())
    }
}

/// Sets the alarm `name` to fire this long after the runtime's clock says now.
struct SetIn(&'static str, Duration);
impl Message for SetIn {
    type Reply = ();
}

impl Handler<SetIn> for Timed {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        SetIn(name, after): SetIn,
    ) -> Result<(), Abort> {
        ctx.set_alarm(name, ctx.now() + after)
    }
}

fn open(
    dir: &std::path::Path,
    clock: &ManualClock,
    configure: impl FnOnce(Options) -> Options,
    fail: bool,
) -> (Runtime, burrow_runtime::Namespace<Timed>, Arc<Seen>) {
    let options = configure(Options::new(dir).shards(1).clock(clock.clock()));
    let runtime = Runtime::open(options).unwrap();
    let seen = Arc::new(Seen::default());
    let ns = runtime
        .namespace("timed", {
            let seen = seen.clone();
            move |_| Timed {
                seen: seen.clone(),
                fail,
            }
        })
        .unwrap();
    (runtime, ns, seen)
}

#[tokio::test]
async fn an_alarm_fires_when_the_clock_reaches_it_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (runtime, ns, seen) = open(dir.path(), &clock, |o| o, false);
    let stub = ns.get_by_name("a");
    stub.call(SetIn("marker", HOUR - Duration::from_secs(60)))
        .await
        .unwrap();
    stub.call(SetIn("late", HOUR)).await.unwrap();

    clock.advance(HOUR - Duration::from_secs(60));
    until("the marker", || !seen.delivered("marker").is_empty()).await;
    // Both alarms were looked at together; only the one the clock has reached fired.
    assert!(seen.delivered("late").is_empty());

    clock.advance(Duration::from_secs(60));
    until("the late alarm", || !seen.delivered("late").is_empty()).await;
    assert_eq!(
        seen.delivered("late"),
        [(1, Duration::ZERO, Duration::ZERO)]
    );
    runtime.shutdown(GRACE).await;
}

/// Runs an always-failing alarm through all its attempts on a manual clock; returns the
/// backoff each retry was told of.
async fn backoffs(seed: u64) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let policy = AlarmPolicy {
        first_retry: Duration::from_secs(10),
        max_attempts: 4,
        ..AlarmPolicy::default()
    };
    let (runtime, ns, seen) = open(
        dir.path(),
        &clock,
        |o| o.alarm_policy(policy).random_seed(seed),
        true,
    );
    ns.get_by_name("f")
        .call(SetIn("flaky", Duration::ZERO))
        .await
        .unwrap();
    let catalog = runtime.catalog();
    let id = ns.id_from_name("f");
    for attempt in 1..4 {
        until("an attempt", || seen.delivered("flaky").len() == attempt).await;
        // The retry is scheduled on the clock: exactly `backoff` after now.
        let deadline = Instant::now() + Duration::from_secs(10);
        let record = loop {
            let indexed = catalog.alarms("timed", id).await.unwrap();
            if let Some(r) = indexed.into_iter().find(|r| r.attempts == attempt as u32) {
                break r;
            }
            assert!(Instant::now() < deadline, "retry {attempt} never indexed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(record.fire_at, clock.clock().now() + record.backoff);
        clock.advance(record.backoff);
    }
    until("the last attempt", || seen.delivered("flaky").len() == 4).await;
    let delivered = seen.delivered("flaky");
    assert_eq!(
        delivered.iter().map(|d| d.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Each retry ran exactly when due on the clock.
    assert!(delivered.iter().all(|d| d.2 == Duration::ZERO));
    runtime.shutdown(GRACE).await;
    delivered[1..].iter().map(|d| d.1).collect()
}

#[tokio::test]
async fn retries_back_off_on_the_clock_and_a_seed_reproduces_the_jitter() {
    let first = backoffs(42).await;
    // Doubling from 10 s, each varied by at most ±25 %.
    for (delay, base) in first.iter().zip([10.0, 20.0, 40.0]) {
        let secs = delay.as_secs_f64();
        assert!(secs >= base * 0.75 && secs <= base * 1.25, "{first:?}");
    }
    assert_eq!(backoffs(42).await, first);
    assert_ne!(backoffs(43).await, first);
}

#[tokio::test]
async fn an_actor_falls_idle_when_the_clock_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (runtime, ns, seen) = open(dir.path(), &clock, |o| o.idle_timeout(HOUR), false);
    let stub = ns.get_by_name("i");
    stub.call(SetIn("someday", 1000 * HOUR)).await.unwrap();
    // The shard notes the turn's end just after the reply; a task run after it (`ready`) sees
    // that done, so the clock's moves below count from the turn.
    runtime.ready(Duration::from_secs(30)).await.unwrap();
    // Real time passes (several eviction checks), the clock does not: still resident.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seen.closed.load(Ordering::SeqCst), 0);
    clock.advance(HOUR - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seen.closed.load(Ordering::SeqCst), 0);
    clock.advance(Duration::from_secs(1));
    until("the eviction", || seen.closed.load(Ordering::SeqCst) == 1).await;
    stub.call(SetIn("someday", 1000 * HOUR)).await.unwrap();
    assert_eq!(seen.activations.load(Ordering::SeqCst), 2);
    runtime.shutdown(GRACE).await;
}
