//! Turns: ordering, parallelism, background work, atomicity, durability of replies, and the
//! guard on actor SQL. Real files in temporary directories.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{Probe, Req, Resp, TestActor, gate, read_from_copy, routed};
use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
use burrow_runtime::{Durability, ErrorKind, Namespace, Options, Runtime, RuntimeError};
use futures_util::FutureExt as _;
use tokio::sync::oneshot;

fn open(
    dir: &std::path::Path,
    options: impl FnOnce(Options) -> Options,
) -> (Runtime, Namespace<TestActor>, Arc<Probe>) {
    let runtime = Runtime::open(options(Options::new(dir).shards(2))).unwrap();
    let probe = Arc::new(Probe::default());
    let ns = runtime
        .namespace("test", TestActor::factory(probe.clone()))
        .unwrap();
    (runtime, ns, probe)
}

fn put(k: &str, v: &str) -> Req {
    Req::Put(k.into(), v.into())
}

async fn get(ns: &Namespace<TestActor>, name: &str, k: &str) -> Option<String> {
    match ns.get_by_name(name).call(Req::Get(k.into())).await.unwrap() {
        Resp::Value(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

const GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn requests_to_one_actor_run_one_at_a_time_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, probe) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("serial");
    let calls: Vec<_> = (0..200).map(|n| stub.call(Req::Sequenced(n))).collect();
    for outcome in futures_util::future::join_all(calls).await {
        assert_eq!(outcome.unwrap(), Resp::Done);
    }
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(*probe.order.lock().unwrap(), (0..200).collect::<Vec<_>>());
    runtime.shutdown(GRACE).await;
}

/// Two actors on different shards each block their thread until the other has arrived: this
/// only completes if the shards run in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_on_different_shards_run_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let shard_of = |name: &str| ns.id_from_name(name).as_bytes()[0] % 2;
    let first = "p0";
    let second = (1..)
        .map(|i| format!("p{i}"))
        .find(|name| shard_of(name) != shard_of(first))
        .unwrap();
    let (a_arrived, a_seen) = std::sync::mpsc::channel();
    let (b_arrived, b_seen) = std::sync::mpsc::channel();
    let a = ns
        .get_by_name(first)
        .call(Req::Rendezvous(a_arrived, b_seen));
    let b = ns
        .get_by_name(&second)
        .call(Req::Rendezvous(b_arrived, a_seen));
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.unwrap(), Resp::Met(true));
    assert_eq!(b.unwrap(), Resp::Met(true));
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn background_work_reports_back_as_a_turn_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("bg");
    let (release, released) = oneshot::channel();
    assert_eq!(
        stub.call(Req::Background(released, "slow work done".into()))
            .await
            .unwrap(),
        Resp::Done
    );
    // The mailbox keeps moving while the background work waits.
    stub.call(Req::Record("served meanwhile".into()))
        .await
        .unwrap();
    assert_eq!(
        stub.call(Req::Log).await.unwrap(),
        Resp::Log(vec!["served meanwhile".into()])
    );
    release.send(()).unwrap();
    let mut log = Vec::new();
    for _ in 0..1000 {
        match stub.call(Req::Log).await.unwrap() {
            Resp::Log(entries) if entries.len() == 2 => {
                log = entries;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    assert_eq!(log, ["served meanwhile", "slow work done"]);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_turn_that_panics_or_aborts_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, probe) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("atomic");
    let path = ns.path_of(&stub.id());
    stub.call(put("k", "committed")).await.unwrap();
    assert_eq!(probe.activations.load(Ordering::SeqCst), 1);

    let err = stub
        .call(Req::PutThenPanic("k".into(), "from a panic".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed);
    assert!(!err.is_retryable());
    assert!(err.message().contains("deliberate panic"), "{err}");
    assert_eq!(read_from_copy(&path, "k").as_deref(), Some("committed"));

    let err = stub
        .call(Req::PutThenAbort("k".into(), "from an abort".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed);
    assert!(err.message().contains("deliberate abort"), "{err}");
    assert_eq!(read_from_copy(&path, "k").as_deref(), Some("committed"));

    // Each failure discarded the instance; the next call re-activated it from the file.
    assert_eq!(get(&ns, "atomic", "k").await.as_deref(), Some("committed"));
    assert_eq!(probe.activations.load(Ordering::SeqCst), 3);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn an_abort_after_a_flush_keeps_exactly_the_flushed_part() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("flush");
    let err = stub
        .call(Req::FlushThenAbort(
            ("before".into(), "flushed".into()),
            ("after".into(), "lost".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed);
    let path = ns.path_of(&stub.id());
    assert_eq!(read_from_copy(&path, "before").as_deref(), Some("flushed"));
    assert_eq!(read_from_copy(&path, "after"), None);
    assert_eq!(
        get(&ns, "flush", "before").await.as_deref(),
        Some("flushed")
    );
    assert_eq!(get(&ns, "flush", "after").await, None);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn savepoints_roll_back_only_their_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    ns.get_by_name("sp").call(Req::Savepoints).await.unwrap();
    assert_eq!(get(&ns, "sp", "kept").await.as_deref(), Some("yes"));
    assert_eq!(get(&ns, "sp", "dropped").await, None);
    assert_eq!(get(&ns, "sp", "inner").await, None);
    runtime.shutdown(GRACE).await;
}

/// The reply is released only after the commit: as soon as `call` returns, a copy of the
/// files taken with no runtime involved holds the write. Both durability modes.
#[tokio::test]
async fn after_call_returns_the_write_is_in_the_file() {
    for durability in [Durability::Process, Durability::Machine] {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, ns, _) = open(dir.path(), |o| o.durability(durability));
        for i in 0..20 {
            let name = format!("a{i}");
            let stub = ns.get_by_name(&name);
            stub.call(put("v", &i.to_string())).await.unwrap();
            assert_eq!(
                read_from_copy(&ns.path_of(&stub.id()), "v"),
                Some(i.to_string()),
                "{durability:?}"
            );
        }
        runtime.shutdown(GRACE).await;
    }
}

struct GatedHook {
    entered: std::sync::Mutex<Option<oneshot::Sender<CommitInfo>>>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl CommitHook for GatedHook {
    fn committed(&self, info: CommitInfo) -> HookFuture {
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(info);
        }
        let gate = self.gate.clone();
        Box::pin(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_commit_hook_runs_after_the_commit_and_before_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (entered, hook_entered) = oneshot::channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let hook = Arc::new(GatedHook {
        entered: std::sync::Mutex::new(Some(entered)),
        gate: gate.clone(),
    });
    let (runtime, ns, _) = open(dir.path(), |o| o.commit_hook(hook));
    let stub = ns.get_by_name("hooked");
    let mut call = Box::pin(stub.call(put("k", "v")));
    assert!((&mut call).now_or_never().is_none());
    let info = hook_entered.await.unwrap();
    assert_eq!(info.id, stub.id());
    assert_eq!(&*info.namespace, "test");
    // Committed locally, yet the reply is held.
    assert_eq!(
        read_from_copy(&ns.path_of(&stub.id()), "k").as_deref(),
        Some("v")
    );
    tokio::task::yield_now().await;
    assert!(
        (&mut call).now_or_never().is_none(),
        "the reply left before the hook finished"
    );
    gate.add_permits(1000);
    assert_eq!(call.await.unwrap(), Resp::Done);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn actor_sql_cannot_touch_what_the_runtime_owns() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("sql");
    for refused in [
        "SELECT * FROM _burrow_kv",
        "SELECT * FROM _BURROW_META",
        "DELETE FROM _burrow_kv",
        "DROP TABLE _burrow_meta",
        "CREATE TABLE _burrow_mine (x)",
        "COMMIT",
        "BEGIN",
        "ROLLBACK",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA synchronous = OFF",
        "ATTACH DATABASE ':memory:' AS other",
        "SAVEPOINT _burrow_sp0",
    ] {
        match stub.call(Req::Sql(refused.into())).await.unwrap() {
            Resp::SqlError(e) => assert!(
                e.contains("not authorized") || e.contains("prohibited"),
                "{refused}: {e}"
            ),
            other => panic!("{refused} was allowed: {other:?}"),
        }
    }
    for allowed in [
        "CREATE TABLE mine (x)",
        "INSERT INTO mine VALUES (1)",
        "SAVEPOINT s1; INSERT INTO mine VALUES (2); ROLLBACK TO s1; RELEASE s1",
        "PRAGMA journal_mode",
        "SELECT name FROM sqlite_schema",
    ] {
        assert_eq!(
            stub.call(Req::Sql(allowed.into())).await.unwrap(),
            Resp::Done,
            "{allowed}"
        );
    }
    // The runtime's own tables still work for the runtime.
    stub.call(put("k", "v")).await.unwrap();
    assert_eq!(get(&ns, "sql", "k").await.as_deref(), Some("v"));
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn key_value_api() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    struct Kv;
    impl burrow_runtime::Actor for Kv {}
    struct Exercise;
    impl burrow_runtime::Message for Exercise {
        type Reply = Vec<(String, Vec<u8>)>;
    }
    impl burrow_runtime::Handler<Exercise> for Kv {
        async fn handle(
            &mut self,
            ctx: &mut burrow_runtime::Context<Self>,
            _: Exercise,
        ) -> Result<Vec<(String, Vec<u8>)>, burrow_runtime::Abort> {
            let s = ctx.storage();
            s.put_many::<[u8]>([
                ("a/1", &b"x"[..]),
                ("a/2", b"y"),
                ("b/1", b"z"),
                ("a\u{ff}", b"w"),
            ])?;
            assert!(s.delete("a/2")?);
            assert!(!s.delete("a/2")?);
            assert_eq!(s.get::<Vec<u8>>("b/1")?, Some(b"z".to_vec()));
            assert_eq!(s.list::<Vec<u8>>("")?.len(), 3);
            Ok(s.list("a")?)
        }
    }
    let ns = runtime.namespace("kv", |_| Kv).unwrap();
    let listed = ns.get_by_name("x").call(Exercise).await.unwrap();
    assert_eq!(
        listed,
        [
            ("a/1".to_string(), b"x".to_vec()),
            ("a\u{ff}".to_string(), b"w".to_vec())
        ]
    );
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn actors_know_their_name_and_ids_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let id = ns.id_from_name("alice");
    assert_eq!(id, ns.id_from_name("alice"));
    assert_ne!(id, ns.id_from_name("bob"));
    assert_eq!(ns.id_from_string(&id.to_string()).unwrap(), id);
    let err = ns.id_from_string("not-an-id").unwrap_err();
    assert!(err.to_string().contains("not-an-id"), "{err}");
    assert_ne!(ns.new_unique_id(), ns.new_unique_id());

    ns.get_by_name("alice").call(put("k", "v")).await.unwrap();
    runtime.shutdown(GRACE).await;

    // Addressed by id alone after a restart, the actor still knows its name from its file.
    let (runtime, ns, _) = open(dir.path(), |o| o);
    match ns.get(id).call(Req::Info).await.unwrap() {
        Resp::Info { name, lost } => {
            assert_eq!(name.as_deref(), Some("alice"));
            assert_eq!(lost, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    let unnamed = ns.new_unique_id();
    assert!(matches!(
        ns.get(unnamed).call(Req::Info).await.unwrap(),
        Resp::Info { name: None, .. }
    ));
    runtime.shutdown(GRACE).await;
}

/// The mailbox holds the calls waiting for their turn: with one call in its turn, the next 8
/// queue and the 92 after them are refused at once, while the actor is still busy. One shard,
/// so a call to another actor is routed after all of them (no assumption about scheduling).
#[tokio::test]
async fn a_full_mailbox_answers_overloaded_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o.shards(1).mailbox_capacity(8));
    let stub = ns.get_by_name("busy");
    let (mut first, gated) = gate();
    let in_turn = tokio::spawn(stub.call(gated));
    first.entered().await;
    let mut calls: Vec<_> = (0..100)
        .map(|n| Box::pin(stub.call(put("k", &n.to_string()))))
        .collect();
    routed(&ns).await;
    let mut queued = Vec::new();
    for (n, call) in calls.iter_mut().enumerate() {
        match call.now_or_never() {
            None => queued.push(n),
            Some(Err(err)) => {
                assert_eq!(err.kind(), ErrorKind::Overloaded, "call {n}: {err}");
                assert!(!err.is_retryable());
                assert!(err.to_string().contains("its mailbox's limit"), "{err}");
            }
            Some(Ok(reply)) => panic!("call {n} answered {reply:?} while the actor was busy"),
        }
    }
    assert_eq!(
        queued,
        (0..8).collect::<Vec<_>>(),
        "the first 8 wait; the rest are refused"
    );
    first.open();
    assert_eq!(in_turn.await.unwrap().unwrap(), Resp::Done);
    for n in queued {
        assert_eq!((&mut calls[n]).await.unwrap(), Resp::Done);
    }
    // The queued calls ran in order: the last one's write is the one kept.
    assert_eq!(get(&ns, "busy", "k").await.as_deref(), Some("7"));
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn shutdown_finishes_turns_in_flight_then_refuses_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, _) = open(dir.path(), |o| o);
    let stub = ns.get_by_name("s");
    stub.call(put("k", "v")).await.unwrap();
    let (mut in_turn, gated) = gate();
    let in_flight = tokio::spawn(stub.call(gated));
    in_turn.entered().await;
    let shutdown = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown(GRACE).await }
    });
    // Wait until the shutdown has begun (asking another actor: this one is busy), then let
    // the turn finish.
    loop {
        match ns.get_by_name("other").call(Req::Info).await {
            Err(e) if e.kind() == ErrorKind::ShuttingDown => {
                assert!(e.is_retryable());
                break;
            }
            _ => tokio::task::yield_now().await,
        }
    }
    in_turn.open();
    assert_eq!(in_flight.await.unwrap().unwrap(), Resp::Done);
    let report = shutdown.await.unwrap();
    assert_eq!(report.abandoned, 0);
    assert!(report.closed >= 1);
    let err = stub.call(Req::Get("k".into())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown);
}

#[tokio::test]
async fn a_data_directory_serves_one_runtime_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _, _) = open(dir.path(), |o| o);
    match Runtime::open(Options::new(dir.path())) {
        Err(RuntimeError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    runtime.shutdown(GRACE).await;
    Runtime::open(Options::new(dir.path())).unwrap();
}

#[tokio::test]
async fn namespace_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _, probe) = open(dir.path(), |o| o);
    for bad in ["", "Upper", "a/b", "..", &"x".repeat(65)] {
        let err = runtime
            .namespace(bad, TestActor::factory(probe.clone()))
            .unwrap_err();
        assert!(
            matches!(err, RuntimeError::InvalidNamespace { .. }),
            "{bad:?}: {err}"
        );
    }
    let err = runtime
        .namespace("test", TestActor::factory(probe.clone()))
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::DuplicateNamespace { .. }),
        "{err}"
    );
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn dropping_every_handle_without_shutdown_stops_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (runtime, ns, _) = open(dir.path(), |o| o);
        for i in 0..10 {
            ns.get_by_name(&i.to_string())
                .call(put("k", "v"))
                .await
                .unwrap();
        }
        drop((runtime, ns));
    }
    // The shards notice, close every file and release the directory's lock.
    let mut reopened = None;
    for _ in 0..1000 {
        match Runtime::open(Options::new(dir.path())) {
            Ok(runtime) => {
                reopened = Some(runtime);
                break;
            }
            Err(RuntimeError::Locked { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let runtime = reopened.expect("the dropped runtime never released its data directory");
    let probe = Arc::new(Probe::default());
    let ns = runtime
        .namespace("test", TestActor::factory(probe))
        .unwrap();
    assert_eq!(get(&ns, "3", "k").await.as_deref(), Some("v"));
    runtime.shutdown(GRACE).await;
}
