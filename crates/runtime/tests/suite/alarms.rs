//! Alarms: delivery, retries with growing backoff, dead letters, recurrence, and alarms set by
//! aborted turns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{at_ms, ms_of, now_ms};
use burrow_runtime::alarm::{Alarm, AlarmPolicy};
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Namespace, Options, Runtime};

/// What the handler saw, per delivery.
#[derive(Default)]
struct Seen {
    deliveries: Mutex<Vec<Alarm>>,
}

impl Seen {
    fn count(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }

    /// The deliveries of the alarm `name`, in order.
    fn of(&self, name: &str) -> Vec<Alarm> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries
            .iter()
            .filter(|d| d.name == name)
            .cloned()
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries.iter().map(|d| d.name.clone()).collect()
    }
}

enum Req {
    /// Set an alarm `name` due after `ms`, then commit.
    Set(String, i64),
    /// Set an alarm, then abort the turn.
    SetThenAbort(String, i64),
    List,
}

struct Alarmed {
    seen: Arc<Seen>,
    /// Fail this many attempts of every alarm, then succeed (`u32::MAX`: always fail).
    fail_first: u32,
    /// Set the same alarm again this many times (a recurring alarm).
    recur: u32,
}

impl Message for Req {
    type Reply = Vec<(String, i64)>;
}

impl Handler<Req> for Alarmed {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        req: Req,
    ) -> Result<Vec<(String, i64)>, Abort> {
        let now = now_ms();
        match req {
            Req::Set(name, ms) => ctx.set_alarm(&name, at_ms(now + ms))?,
            Req::SetThenAbort(name, ms) => {
                ctx.set_alarm(&name, at_ms(now + ms))?;
                return Err(Abort::new("deliberate abort after setting an alarm"));
            }
            Req::List => {}
        }
        Ok(ctx
            .alarms()?
            .into_iter()
            .map(|(name, due)| (name, ms_of(due)))
            .collect())
    }
}

impl Actor for Alarmed {
    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        let mut deliveries = self.seen.deliveries.lock().unwrap();
        deliveries.push(alarm.clone());
        let runs = deliveries.iter().filter(|d| d.name == alarm.name).count() as u32;
        drop(deliveries);
        if alarm.attempt <= self.fail_first {
            return Err(Abort::new(format!(
                "deliberate failure of attempt {}",
                alarm.attempt
            )));
        }
        if runs <= self.recur {
            ctx.set_alarm(&alarm.name, at_ms(now_ms() + 20))?;
        }
        Ok(())
    }
}

fn open(
    dir: &std::path::Path,
    fail_first: u32,
    recur: u32,
    max_attempts: u32,
) -> (Runtime, Namespace<Alarmed>, Arc<Seen>) {
    let policy = AlarmPolicy {
        first_retry: Duration::from_millis(40),
        max_attempts,
        ..AlarmPolicy::default()
    };
    let runtime = Runtime::open(Options::new(dir).shards(2).alarm_policy(policy)).unwrap();
    let seen = Arc::new(Seen::default());
    let ns = runtime
        .namespace("alarmed", {
            let seen = seen.clone();
            move |_| Alarmed {
                seen: seen.clone(),
                fail_first,
                recur,
            }
        })
        .unwrap();
    (runtime, ns, seen)
}

/// Waits (up to 30 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting");
}

#[tokio::test]
async fn an_alarm_fires_once_for_an_evicted_actor_and_is_then_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), 0, 0, 6);
    let stub = ns.get_by_name("a");
    let set = stub.call(Req::Set("wake".into(), 100)).await.unwrap();
    assert_eq!(set.len(), 1);
    let record = runtime
        .catalog()
        .alarms("alarmed", stub.id())
        .await
        .unwrap();
    assert_eq!(record.len(), 1, "indexed before the turn was acknowledged");
    assert_eq!(ms_of(record[0].due), set[0].1);

    until(|| !seen.deliveries.lock().unwrap().is_empty()).await;
    let delivered = seen.deliveries.lock().unwrap()[0].clone();
    assert_eq!(
        (
            delivered.name.as_str(),
            ms_of(delivered.due),
            delivered.attempt
        ),
        ("wake", set[0].1, 1)
    );
    assert_eq!(delivered.backoff, Duration::ZERO);
    // Consumed: gone from the actor and, soon, from the index.
    assert_eq!(stub.call(Req::List).await.unwrap(), []);
    let mut indexed = record;
    for _ in 0..3000 {
        indexed = runtime
            .catalog()
            .alarms("alarmed", stub.id())
            .await
            .unwrap();
        if indexed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(indexed, []);
    assert_eq!(seen.count(), 1);
    runtime.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_alarm_set_by_an_aborted_turn_is_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), 0, 0, 6);
    let stub = ns.get_by_name("a");
    stub.call(Req::SetThenAbort("ghost".into(), 50))
        .await
        .unwrap_err();
    // A later alarm that does fire: the scheduler fires in due order, so once it has, the
    // ghost would have too.
    stub.call(Req::Set("marker".into(), 300)).await.unwrap();
    until(|| !seen.of("marker").is_empty()).await;
    let names = seen.names();
    assert_eq!(names, ["marker"]);
    runtime.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_failing_handler_is_retried_with_growing_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), 2, 0, 6);
    ns.get_by_name("a")
        .call(Req::Set("flaky".into(), 10))
        .await
        .unwrap();
    until(|| seen.count() >= 3).await;
    // Let a fourth delivery show itself if there were going to be one.
    ns.get_by_name("a")
        .call(Req::Set("marker".into(), 200))
        .await
        .unwrap();
    until(|| !seen.of("marker").is_empty()).await;
    let flaky = seen.of("flaky");
    assert_eq!(
        flaky.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Backoff as recorded with the alarm: none, then 40 ms ± 25 %, then 80 ms ± 25 %.
    assert_eq!(flaky[0].backoff, Duration::ZERO);
    assert!(
        flaky[1].backoff >= Duration::from_millis(30)
            && flaky[1].backoff <= Duration::from_millis(50),
        "{:?}",
        flaky[1].backoff
    );
    assert!(
        flaky[2].backoff >= Duration::from_millis(60)
            && flaky[2].backoff <= Duration::from_millis(100),
        "{:?}",
        flaky[2].backoff
    );
    assert!(flaky[2].backoff > flaky[1].backoff);
    assert!(flaky.windows(2).all(|w| w[1].scheduled > w[0].scheduled));
    assert!(
        runtime
            .catalog()
            .dead_alarms("alarmed")
            .await
            .unwrap()
            .is_empty()
    );
    runtime.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_handler_that_always_fails_ends_in_the_dead_letter_list() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), u32::MAX, 0, 3);
    let stub = ns.get_by_name("a");
    stub.call(Req::Set("doomed".into(), 10)).await.unwrap();
    let catalog = runtime.catalog();
    let mut dead = Vec::new();
    for _ in 0..3000 {
        dead = catalog.dead_alarms("alarmed").await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].name.as_str(), dead[0].attempts, dead[0].id),
        ("doomed", 3, stub.id())
    );
    assert!(
        dead[0]
            .last_error
            .contains("deliberate failure of attempt 3"),
        "{}",
        dead[0].last_error
    );
    let attempts: Vec<u32> = seen
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(
        catalog
            .alarms("alarmed", stub.id())
            .await
            .unwrap()
            .is_empty()
    );
    // The actor's own copy is removed too.
    let mut listed = vec![("x".to_string(), 0)];
    for _ in 0..3000 {
        listed = stub.call(Req::List).await.unwrap();
        if listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listed, []);
    runtime.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_handler_that_sets_its_alarm_again_recurs() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), 0, 2, 6);
    let stub = ns.get_by_name("a");
    stub.call(Req::Set("tick".into(), 10)).await.unwrap();
    until(|| seen.count() >= 3).await;
    let marker_due = stub.call(Req::Set("marker".into(), 200)).await.unwrap();
    assert!(
        marker_due.iter().all(|(n, _)| n != "tick"),
        "no fourth tick is pending: {marker_due:?}"
    );
    until(|| !seen.of("marker").is_empty()).await;
    let ticks = seen
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.name == "tick")
        .count();
    assert_eq!(ticks, 3);
    runtime.shutdown(Duration::from_secs(10)).await;
}

/// A turn indexes its alarm before it commits; if the process dies in between, the index entry
/// of the version the actor *does* hold has been replaced by one it never committed. When that
/// entry comes due, delivery finds the actor holding another version — and must index that
/// version again, or the actor's alarm would never fire.
#[tokio::test]
async fn an_alarm_whose_index_entry_was_displaced_by_an_uncommitted_turn_still_fires() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(dir.path(), 0, 0, 6);
    let stub = ns.get_by_name("displaced");
    let held = stub.call(Req::Set("wake".into(), 1500)).await.unwrap()[0].1;
    // What the dead turn left: the entry now names a version due at once that no turn
    // committed (written from outside, as the catalog's writer would have).
    let catalog = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    catalog.busy_timeout(Duration::from_secs(5)).unwrap();
    let displaced = now_ms();
    let changed = catalog
        .execute(
            "UPDATE alarms SET due_ms = ?1, fire_at_ms = ?1 WHERE name = 'wake'",
            [displaced],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(catalog);
    until(|| !seen.of("wake").is_empty()).await;
    let delivered = seen.of("wake");
    assert_eq!(
        delivered.len(),
        1,
        "the displaced version is never delivered"
    );
    assert_eq!(
        ms_of(delivered[0].due),
        held,
        "the version the actor holds fires"
    );
    runtime.shutdown(Duration::from_secs(10)).await;
}
