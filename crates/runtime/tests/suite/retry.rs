//! `with_retry`: fresh stubs, retryable errors only, give-up rules — observed through counters.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Probe, Req, Resp, TestActor, gate};
use burrow_runtime::retry::{RetryPolicy, with_retry};
use burrow_runtime::{CallError, ErrorKind, Options, Runtime};
use tokio::time::Instant;

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base: Duration::from_millis(1),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn a_retryable_error_is_retried_with_a_fresh_stub() {
    let (dead_dir, live_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let probe = Arc::new(Probe::default());
    let dead = Runtime::open(Options::new(dead_dir.path())).unwrap();
    let dead_ns = dead
        .namespace("test", TestActor::factory(probe.clone()))
        .unwrap();
    dead.shutdown(Duration::from_secs(5)).await; // its stubs now fail with ShuttingDown
    let live = Runtime::open(Options::new(live_dir.path())).unwrap();
    let live_ns = live.namespace("test", TestActor::factory(probe)).unwrap();

    let stubs_made = Cell::new(0);
    let calls = Cell::new(0);
    let outcome = with_retry(
        || {
            stubs_made.set(stubs_made.get() + 1);
            if stubs_made.get() == 1 {
                dead_ns.get_by_name("a")
            } else {
                live_ns.get_by_name("a")
            }
        },
        |stub| {
            calls.set(calls.get() + 1);
            stub.call(Req::Get("k".into()))
        },
        &fast(3),
    )
    .await;
    assert_eq!(outcome.unwrap(), Resp::Value(None));
    assert_eq!((stubs_made.get(), calls.get()), (2, 2));
    live.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn overloaded_and_the_actors_own_failures_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).mailbox_capacity(1)).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    let stub = ns.get_by_name("busy");
    // One request in its turn, one in the mailbox: the mailbox is full.
    let (mut first, gated) = gate();
    let in_turn = tokio::spawn(stub.call(gated));
    first.entered().await;
    let (_keep_shut, gated) = gate();
    let queued = stub.call(gated);
    let calls = Cell::new(0);
    let err = with_retry(
        || ns.get_by_name("busy"),
        |stub| {
            calls.set(calls.get() + 1);
            stub.call(Req::Info)
        },
        &fast(5),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert_eq!(calls.get(), 1, "overloaded must not be retried");

    calls.set(0);
    let err = with_retry(
        || ns.get_by_name("panics"),
        |stub| {
            calls.set(calls.get() + 1);
            stub.call(Req::PutThenPanic("k".into(), "v".into()))
        },
        &fast(5),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed);
    assert_eq!(
        calls.get(),
        1,
        "the actor's own failure must not be retried"
    );
    first.open();
    in_turn.await.unwrap().unwrap();
    drop((queued, _keep_shut));
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn it_gives_up_after_the_attempts_or_before_the_deadline_with_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path())).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    runtime.shutdown(Duration::from_secs(5)).await;

    let calls = Cell::new(0);
    let err = with_retry(
        || ns.get_by_name("a"),
        |s| {
            calls.set(calls.get() + 1);
            s.call(Req::Info)
        },
        &fast(4),
    )
    .await
    .unwrap_err();
    assert_eq!((err.kind(), calls.get()), (ErrorKind::ShuttingDown, 4));

    calls.set(0);
    let policy = RetryPolicy {
        attempts: 100,
        base: Duration::from_secs(10),
        deadline: Some(Instant::now() + Duration::from_millis(1)),
        ..RetryPolicy::default()
    };
    let err = with_retry(
        || ns.get_by_name("a"),
        |s| {
            calls.set(calls.get() + 1);
            s.call(Req::Info)
        },
        &policy,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown);
    assert!(
        calls.get() < 100,
        "the deadline stopped it after {} calls",
        calls.get()
    );
}

/// Retries an always-failing operation on a paused tokio clock; returns the time it waited and
/// how many calls it made.
async fn backoff(policy: &RetryPolicy) -> (Duration, u32) {
    let calls = Cell::new(0u32);
    let started = Instant::now();
    let err = with_retry(
        || (),
        |()| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(CallError::new(ErrorKind::TransientIo, "flaky")) }
        },
        policy,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TransientIo);
    (started.elapsed(), calls.get())
}

/// Backoff runs on tokio's clock: a paused test runtime retries without real sleeps, and a
/// seed reproduces the pauses.
#[tokio::test(start_paused = true)]
async fn backoff_runs_on_tokio_time_and_a_seed_reproduces_it() {
    let policy = |seed| RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        deadline: None,
        jitter_seed: Some(seed),
    };
    let (waited, calls) = backoff(&policy(1)).await;
    assert_eq!(calls, 5);
    // Full jitter under ceilings of 100, 200, 400 and 800 ms, all on the paused clock.
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(backoff(&policy(1)).await, (waited, 5));
    assert_ne!(backoff(&policy(2)).await.0, waited);

    // A deadline on the same clock: it stops before a pause would cross it.
    let mut patient = policy(1);
    patient.attempts = 100;
    patient.deadline = Some(Instant::now() + Duration::from_millis(250));
    let (waited, calls) = backoff(&patient).await;
    assert!(waited < Duration::from_millis(250), "{waited:?}");
    assert!((2..100).contains(&calls), "{calls} calls");
}
