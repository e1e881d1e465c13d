//! Checkpoints at eviction and shutdown: an evicted actor whose WAL has grown is checkpointed off its shard
//! thread, and until its file is closed nothing opens it again — requests and admin work wait,
//! and shutdown waits. Real files.
//!
//! The waiting is shown with a slow checkpoint (`BURROW_FAULT_CHECKPOINT_DELAY_MS`, read once
//! per process), so those tests run in a child process of this test binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Probe, Req, Resp, TestActor, read_from_database_alone};
use burrow_runtime::{Namespace, Options, Runtime};

const GRACE: Duration = Duration::from_secs(10);
const DELAY_MS: u64 = 600;
const CHILD: &str = "BURROW_TEST_CHECKPOINT_CHILD";

fn open(dir: &Path, options: impl FnOnce(Options) -> Options) -> (Runtime, Namespace<TestActor>) {
    // One shard holding one actor: calling a second actor evicts the first.
    let options = options(Options::new(dir).shards(1).max_resident(1));
    let runtime = Runtime::open(options).unwrap();
    let ns = runtime
        .namespace("notes", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    (runtime, ns)
}

fn wal_of(ns: &Namespace<TestActor>, name: &str) -> PathBuf {
    let db = ns.path_of(&ns.id_from_name(name));
    db.with_extension("db-wal")
}

fn wal_len(ns: &Namespace<TestActor>, name: &str) -> u64 {
    std::fs::metadata(wal_of(ns, name)).map_or(0, |m| m.len())
}

/// Reads `key` from the database file alone, without its WAL.
fn from_database_alone(ns: &Namespace<TestActor>, name: &str, key: &str) -> Option<String> {
    read_from_database_alone(&ns.path_of(&ns.id_from_name(name)), key)
}

async fn put(ns: &Namespace<TestActor>, name: &str, k: &str, v: &str) {
    let done = ns.get_by_name(name).call(Req::Put(k.into(), v.into()));
    assert_eq!(done.await.unwrap(), Resp::Done);
}

async fn get(ns: &Namespace<TestActor>, name: &str, k: &str) -> Option<String> {
    match ns.get_by_name(name).call(Req::Get(k.into())).await.unwrap() {
        Resp::Value(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GRACE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_evicted_actors_grown_wal_is_folded_into_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(0));
    put(&ns, "a", "k", "v").await;
    assert!(wal_len(&ns, "a") > 0);
    assert_eq!(
        from_database_alone(&ns, "a", "k"),
        None,
        "committed in the WAL only"
    );
    put(&ns, "b", "x", "y").await; // evicts a
    until("a's checkpoint", || wal_len(&ns, "a") == 0).await;
    assert_eq!(from_database_alone(&ns, "a", "k").as_deref(), Some("v"));
    assert_eq!(get(&ns, "a", "k").await.as_deref(), Some("v"));
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_wal_below_the_threshold_is_left_for_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(1 << 20));
    put(&ns, "a", "k", "v").await;
    let before = wal_len(&ns, "a");
    put(&ns, "b", "x", "y").await; // evicts a, without a checkpoint
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(wal_len(&ns, "a"), before);
    assert_eq!(get(&ns, "a", "k").await.as_deref(), Some("v"));
    runtime.shutdown(GRACE).await;
}

/// Runs `test` of this binary in a child process with a slow checkpoint.
fn in_child_with_slow_checkpoint(test: &str) {
    // The binary names a test by its path below the crate: `checkpoint::…`.
    let test = format!("{}::{test}", module_path!().split_once("::").unwrap().1);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("BURROW_FAULT_CHECKPOINT_DELAY_MS", DELAY_MS.to_string())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{test} failed in its child:\n{text}");
    assert!(
        text.contains("1 passed"),
        "{test} did not run in its child:\n{text}"
    );
}

#[test]
fn requests_admin_work_and_shutdown_wait_for_a_checkpoint_in_flight() {
    in_child_with_slow_checkpoint("slow_checkpoint_child");
}

#[tokio::test]
async fn slow_checkpoint_child() {
    if std::env::var(CHILD).is_err() {
        return; // run by the test above, in a child with the fault set
    }
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(0));
    let held = Duration::from_millis(DELAY_MS * 2 / 3);

    // A request for an actor whose checkpoint is in flight waits for it, then sees its data.
    put(&ns, "a", "k", "v").await;
    put(&ns, "b", "x", "y").await; // evicts a: its checkpoint sleeps DELAY_MS first
    let asked = Instant::now();
    assert_eq!(get(&ns, "a", "k").await.as_deref(), Some("v"));
    assert!(
        asked.elapsed() >= held,
        "a's file was opened while its checkpoint was in flight ({:?})",
        asked.elapsed()
    );

    // Admin work on such an actor waits too, instead of failing as busy.
    put(&ns, "a", "k2", "w").await; // the read above left no WAL; this write does
    put(&ns, "c", "k", "v").await; // evicts a
    let asked = Instant::now();
    let id = ns.id_from_name("a");
    assert!(runtime.catalog().delete("notes", id).await.unwrap());
    assert!(asked.elapsed() >= held, "deleted during the checkpoint");
    assert!(!ns.path_of(&id).exists());

    // Shutdown returns only once the checkpoint in flight is done.
    put(&ns, "d", "k", "v").await; // evicts c
    runtime.shutdown(GRACE).await;
    assert_eq!(
        wal_len(&ns, "c"),
        0,
        "shutdown returned before c's checkpoint ended"
    );
    assert_eq!(from_database_alone(&ns, "c", "k").as_deref(), Some("v"));
}

#[tokio::test]
async fn shutdown_checkpoints_grown_wals_while_its_grace_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(0));
    put(&ns, "a", "k", "v").await;
    runtime.shutdown(GRACE).await;
    assert_eq!(wal_len(&ns, "a"), 0);
    assert_eq!(from_database_alone(&ns, "a", "k").as_deref(), Some("v"));

    // No grace left: the WAL stays for the next open to replay.
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(0));
    put(&ns, "a", "k", "v").await;
    runtime.shutdown(Duration::ZERO).await;
    assert!(wal_len(&ns, "a") > 0);
    let (runtime, ns) = open(dir.path(), |o| o.checkpoint_above(0));
    assert_eq!(get(&ns, "a", "k").await.as_deref(), Some("v"));
    runtime.shutdown(GRACE).await;
}
