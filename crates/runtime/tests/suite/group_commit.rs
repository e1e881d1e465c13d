//! Group commit: calls queued for one actor share one transaction and one commit, each turn in
//! its own savepoint, and their replies leave only after that commit. Real files; the commit
//! hook counts commits.
//!
//! Calls are queued deterministically: with one shard, a call to a second actor is routed after
//! every call sent before it, so once it answers those calls sit in the first actor's mailbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use burrow_runtime::alarm::Alarm;
use burrow_runtime::clock::ManualClock;
use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
use burrow_runtime::{
    Abort, Actor, ActorId, Context, ErrorKind, Handler, Message, Options, Runtime,
};
use futures_util::FutureExt as _;
use tokio::sync::Semaphore;

const GRACE: Duration = Duration::from_secs(10);

/// Appends entries to a comma-separated log in its storage.
struct Ledger {
    entered: Arc<AtomicUsize>,
}

fn append(ctx: &Context<Ledger>, entry: &str) -> Result<(), Abort> {
    let mut log: String = ctx.storage().get("log")?.unwrap_or_default();
    if !log.is_empty() {
        log.push(',');
    }
    log.push_str(entry);
    ctx.storage().put("log", &log)?;
    Ok(())
}

impl Actor for Ledger {
    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        append(ctx, &format!("alarm:{}", alarm.name))
    }
}

/// Appends `entry`; waits for `gate` first if given; sets an alarm if asked; then fails if
/// asked (after writing, so a failure has something to undo).
struct Append {
    entry: &'static str,
    gate: Option<Arc<Semaphore>>,
    alarm_in: Option<Duration>,
    /// Flush after appending, then append `entry+`.
    flush: bool,
    fail: bool,
}

fn entry(entry: &'static str) -> Append {
    Append {
        entry,
        gate: None,
        alarm_in: None,
        flush: false,
        fail: false,
    }
}

impl Message for Append {
    type Reply = ();
}

impl Handler<Append> for Ledger {
    async fn handle(&mut self, ctx: &mut Context<Self>, m: Append) -> Result<(), Abort> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = m.gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
        append(ctx, m.entry)?;
        if m.flush {
            ctx.flush().await?;
            append(ctx, &format!("{}+", m.entry))?;
        }
        if let Some(after) = m.alarm_in {
            ctx.set_alarm(m.entry, ctx.now() + after)?;
        }
        if m.fail {
            return Err(Abort::new("deliberate failure"));
        }
        Ok(())
    }
}

struct Read;
impl Message for Read {
    type Reply = (String, Vec<String>);
}

impl Handler<Read> for Ledger {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        _: Read,
    ) -> Result<(String, Vec<String>), Abort> {
        let log = ctx.storage().get("log")?.unwrap_or_default();
        let alarms = ctx.alarms()?.into_iter().map(|(name, _)| name).collect();
        Ok((log, alarms))
    }
}

/// Counts the commits of one actor, holds them at `hold` once set, and fails the one
/// numbered `fail_at` (counting from 1).
struct Commits {
    of: Mutex<Option<ActorId>>,
    count: AtomicUsize,
    hold: Mutex<Option<Arc<Semaphore>>>,
    fail_at: AtomicUsize,
}

impl CommitHook for Commits {
    fn committed(&self, info: CommitInfo) -> HookFuture {
        if *self.of.lock().unwrap() != Some(info.id) {
            return Box::pin(async { Ok(()) });
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Box::pin(async { Err("replica unreachable".into()) });
        }
        let hold = self.hold.lock().unwrap().clone();
        Box::pin(async move {
            if let Some(hold) = hold {
                hold.acquire().await.expect("never closed").forget();
            }
            Ok(())
        })
    }
}

struct Setup {
    runtime: Runtime,
    ledgers: burrow_runtime::Namespace<Ledger>,
    commits: Arc<Commits>,
    entered: Arc<AtomicUsize>,
}

fn setup(dir: &std::path::Path, options: impl FnOnce(Options) -> Options) -> Setup {
    let commits = Arc::new(Commits {
        of: Mutex::new(None),
        count: AtomicUsize::new(0),
        hold: Mutex::new(None),
        fail_at: AtomicUsize::new(0),
    });
    let options = options(Options::new(dir).shards(1).commit_hook(commits.clone()));
    let runtime = Runtime::open(options).unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let ledgers = {
        let entered = entered.clone();
        runtime
            .namespace("ledger", move |_| Ledger {
                entered: entered.clone(),
            })
            .unwrap()
    };
    Setup {
        runtime,
        ledgers,
        commits,
        entered,
    }
}

impl Setup {
    /// Starts a call to `name` that waits at a gate, and returns once its handler is waiting
    /// (so that calls sent now queue behind it).
    async fn block(&self, name: &str) -> (Arc<Semaphore>, tokio::task::JoinHandle<()>) {
        let gate = Arc::new(Semaphore::new(0));
        let before = self.entered.load(Ordering::SeqCst);
        let call = self.ledgers.get_by_name(name).call(Append {
            gate: Some(gate.clone()),
            ..entry("gated")
        });
        let blocked = tokio::spawn(async move { call.await.unwrap() });
        let deadline = std::time::Instant::now() + GRACE;
        while self.entered.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the gated call never started"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (gate, blocked)
    }

    /// Returns once every call sent before it has reached its actor's mailbox (one shard).
    async fn routed(&self) {
        self.ledgers
            .get_by_name("bystander")
            .call(Read)
            .await
            .unwrap();
    }

    /// Returns once the counted actor's `n`th commit has reached the hook.
    async fn commits_reached(&self, n: usize) {
        let deadline = std::time::Instant::now() + GRACE;
        while self.commits.count.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "commit {n} never reached the hook"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn count_commits_of(&self, name: &str) {
        *self.commits.of.lock().unwrap() = Some(self.ledgers.get_by_name(name).id());
    }
}

#[tokio::test]
async fn queued_calls_share_one_commit_and_reply_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o);
    s.count_commits_of("busy");
    let (gate, blocked) = s.block("busy").await;
    let entries = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let stub = s.ledgers.get_by_name("busy");
    let mut queued: Vec<_> = entries
        .iter()
        .map(|e| Box::pin(stub.call(entry(e))))
        .collect();
    s.routed().await;
    let hold = Arc::new(Semaphore::new(1)); // lets the gated turn's commit through, no more
    *s.commits.hold.lock().unwrap() = Some(hold.clone());
    gate.add_permits(1);
    blocked.await.unwrap();
    s.commits_reached(2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    for call in &mut queued {
        assert!(
            call.now_or_never().is_none(),
            "a reply left before its group's commit was done"
        );
    }
    *s.commits.hold.lock().unwrap() = None;
    hold.add_permits(1);
    for outcome in futures_util::future::join_all(queued).await {
        outcome.unwrap();
    }
    // The gated turn awaited, so it committed alone; the ten queued behind it, together.
    assert_eq!(s.commits.count.load(Ordering::SeqCst), 2);
    let (log, _) = stub.call(Read).await.unwrap();
    assert_eq!(log, format!("gated,{}", entries.join(",")));
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn one_turn_per_commit_when_grouping_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o.max_turns_per_commit(1));
    s.count_commits_of("busy");
    let (gate, blocked) = s.block("busy").await;
    let stub = s.ledgers.get_by_name("busy");
    let queued: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|e| stub.call(entry(e)))
        .collect();
    s.routed().await;
    gate.add_permits(1);
    blocked.await.unwrap();
    for outcome in futures_util::future::join_all(queued).await {
        outcome.unwrap();
    }
    assert_eq!(s.commits.count.load(Ordering::SeqCst), 4);
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_group_is_no_larger_than_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o.max_turns_per_commit(4));
    s.count_commits_of("busy");
    let (gate, blocked) = s.block("busy").await;
    let stub = s.ledgers.get_by_name("busy");
    let queued: Vec<_> = (0..10).map(|_| stub.call(entry("x"))).collect();
    s.routed().await;
    gate.add_permits(1);
    blocked.await.unwrap();
    for outcome in futures_util::future::join_all(queued).await {
        outcome.unwrap();
    }
    // The gated turn, then 4 + 4 + 2.
    assert_eq!(s.commits.count.load(Ordering::SeqCst), 4);
    s.runtime.shutdown(GRACE).await;
}

/// The mailbox bound counts calls waiting for their turn. A call leaves the mailbox when its
/// turn starts, also when it joins a group, not when its reply leaves: while a group waits for
/// its commit, the mailbox takes as many calls again.
#[tokio::test]
async fn a_call_frees_its_mailbox_slot_when_its_turn_starts_not_when_its_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o.mailbox_capacity(4));
    s.count_commits_of("busy");
    let (gate, blocked) = s.block("busy").await;
    let stub = s.ledgers.get_by_name("busy");
    // Sends five calls: four wait in the mailbox, the fifth is refused at once.
    let (setup, stub) = (&s, &stub);
    let five = move |e: &'static str| async move {
        let mut calls: Vec<_> = (0..5).map(|_| Box::pin(stub.call(entry(e)))).collect();
        setup.routed().await;
        let refused = calls
            .pop()
            .unwrap()
            .now_or_never()
            .expect("the fifth call is answered at once")
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Overloaded, "{refused}");
        calls
    };
    let mut first = five("a").await;
    let hold = Arc::new(Semaphore::new(1)); // lets the gated turn's commit through, no more
    *s.commits.hold.lock().unwrap() = Some(hold.clone());
    gate.add_permits(1);
    blocked.await.unwrap();
    // The four ran as one group, whose commit is held: their calls are out of the mailbox.
    s.commits_reached(2).await;
    let mut second = five("b").await;
    for call in first.iter_mut().chain(second.iter_mut()) {
        assert!(call.now_or_never().is_none(), "no reply before its commit");
    }
    *s.commits.hold.lock().unwrap() = None;
    hold.add_permits(1);
    for outcome in futures_util::future::join_all(first.into_iter().chain(second)).await {
        outcome.unwrap();
    }
    // The gated turn, the four a's, the four b's.
    assert_eq!(s.commits.count.load(Ordering::SeqCst), 3);
    let (log, _) = stub.call(Read).await.unwrap();
    assert_eq!(log, "gated,a,a,a,a,b,b,b,b");
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_failing_turn_in_a_group_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o);
    let (gate, blocked) = s.block("mixed").await;
    let stub = s.ledgers.get_by_name("mixed");
    let before = stub.call(Append {
        alarm_in: Some(Duration::from_secs(3600)),
        ..entry("before")
    });
    let failing = stub.call(Append {
        alarm_in: Some(Duration::from_secs(3600)),
        fail: true,
        ..entry("failing")
    });
    let after = stub.call(entry("after"));
    s.routed().await;
    gate.add_permits(1);
    blocked.await.unwrap();
    before.await.expect("the turn before the failure commits");
    let refused = failing.await.expect_err("the failing turn is refused");
    assert_eq!(refused.kind(), ErrorKind::ActorFailed);
    after
        .await
        .expect("the turn after the failure runs on a fresh instance");
    let (log, alarms) = stub.call(Read).await.unwrap();
    assert_eq!(log, "gated,before,after");
    assert_eq!(alarms, ["before"], "the failing turn's alarm is undone too");
    let indexed = s
        .runtime
        .catalog()
        .alarms("ledger", stub.id())
        .await
        .unwrap();
    let indexed: Vec<_> = indexed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(indexed, ["before"], "and is not in the alarm index");
    s.runtime.shutdown(GRACE).await;
    // And that is what is on disk.
    let s = setup(dir.path(), |o| o);
    let (log, _) = s.ledgers.get_by_name("mixed").call(Read).await.unwrap();
    assert_eq!(log, "gated,before,after");
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_queued_alarm_ends_a_group_and_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let time = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let s = setup(dir.path(), |o| o.clock(time.clock()));
    s.count_commits_of("timed");
    let stub = s.ledgers.get_by_name("timed");
    stub.call(Append {
        alarm_in: Some(Duration::from_secs(60)),
        ..entry("set")
    })
    .await
    .unwrap();
    // A bystander on the same shard gets an alarm a millisecond later: the scheduler
    // dispatches in due order, so once the bystander's alarm has run, `timed`'s is queued.
    let bystander = s.ledgers.get_by_name("bystander");
    bystander
        .call(Append {
            alarm_in: Some(Duration::from_millis(60_001)),
            ..entry("later")
        })
        .await
        .unwrap();
    let (gate, blocked) = s.block("timed").await;
    let first = stub.call(entry("first"));
    s.routed().await;
    time.advance(Duration::from_secs(120));
    let deadline = std::time::Instant::now() + GRACE;
    while !bystander
        .call(Read)
        .await
        .unwrap()
        .0
        .contains("alarm:later")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the bystander's alarm never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = stub.call(entry("second"));
    s.routed().await;
    gate.add_permits(1);
    blocked.await.unwrap();
    first.await.unwrap();
    second.await.unwrap();
    // set; gated; first (alone: the alarm ended its group); the alarm; second.
    assert_eq!(s.commits.count.load(Ordering::SeqCst), 5);
    let (log, _) = stub.call(Read).await.unwrap();
    // The alarm, taken from the mailbox while `first` gathered a group, ran next, in its place.
    assert_eq!(log, "set,gated,first,alarm:set,second");
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_flush_in_a_group_commits_the_turns_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o);
    s.count_commits_of("flushing");
    let (gate, blocked) = s.block("flushing").await;
    let stub = s.ledgers.get_by_name("flushing");
    let a = stub.call(entry("a"));
    let flusher = stub.call(Append {
        flush: true,
        fail: true,
        ..entry("flusher")
    });
    let b = stub.call(entry("b"));
    s.routed().await;
    gate.add_permits(1);
    blocked.await.unwrap();
    a.await
        .expect("committed by the flush, then by the group's end");
    flusher
        .await
        .expect_err("the flusher aborts after its flush");
    b.await.unwrap();
    let (log, _) = stub.call(Read).await.unwrap();
    // What followed the flush ("flusher+") is rolled back; what preceded it is kept.
    assert_eq!(log, "gated,a,flusher,b");
    s.runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_failed_flush_in_a_group_fails_the_turns_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), |o| o);
    s.count_commits_of("unlucky");
    let (gate, blocked) = s.block("unlucky").await;
    let stub = s.ledgers.get_by_name("unlucky");
    let a = stub.call(entry("a"));
    let flusher = stub.call(Append {
        flush: true,
        ..entry("flusher")
    });
    let b = stub.call(entry("b"));
    s.routed().await;
    // The gated turn is commit 1; the flush, which also commits `a`, is commit 2.
    s.commits.fail_at.store(2, Ordering::SeqCst);
    gate.add_permits(1);
    blocked.await.unwrap();
    let refused = a.await.expect_err("a's commit was not confirmed");
    assert_eq!(refused.kind(), ErrorKind::TransientIo, "{refused}");
    assert!(refused.is_retryable());
    flusher.await.expect_err("the flusher's flush failed");
    b.await.unwrap();
    s.runtime.shutdown(GRACE).await;
}
