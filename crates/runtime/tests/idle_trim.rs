//! Idle actors give back their connection's caches: once per idle spell, after a second of
//! runtime-clock time, and they answer as before afterwards. Counted by a recorder installed
//! for this test binary alone; time moved by hand.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use burrow_runtime::clock::ManualClock;
use burrow_runtime::{Options, Runtime};
use common::{Probe, Req, Resp, TestActor};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Trims counted so far (a snapshot hands over what was counted since the one before).
fn trims(snapshotter: &Snapshotter) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let new: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == "burrow_idle_trims_total")
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum();
    SEEN.fetch_add(new, Ordering::SeqCst) + new
}

async fn until_trims(snapshotter: &Snapshotter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while trims(snapshotter) < n {
        assert!(
            Instant::now() < deadline,
            "{} trims of {n} after the actors fell idle",
            trims(snapshotter)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn idle_actors_free_their_caches_once_per_idle_spell_and_still_answer() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let time = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let options = Options::new(dir.path()).shards(1).clock(time.clock());
    let runtime = Runtime::open(options).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    for name in ["a", "b"] {
        let put = Req::Put("k".into(), name.into());
        ns.get_by_name(name).call(put).await.unwrap();
    }
    // Not idle long enough yet: a few ticks of the shard pass without a trim.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(trims(&snapshotter), 0);

    time.advance(Duration::from_secs(2));
    until_trims(&snapshotter, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        trims(&snapshotter),
        2,
        "an idle actor is trimmed once per idle spell"
    );

    // Trimmed actors read their pages and prepare their statements again.
    let got = ns
        .get_by_name("a")
        .call(Req::Get("k".into()))
        .await
        .unwrap();
    assert_eq!(got, Resp::Value(Some("a".into())));
    let put = Req::Put("k2".into(), "v".into());
    ns.get_by_name("a").call(put).await.unwrap();
    // A turn starts a new idle spell. The shard notes when a turn ended just after its reply
    // leaves, on its own thread: once it has run a task sent after that reply (`ready`, which
    // touches no actor), it has, and the clock may move.
    runtime.ready(Duration::from_secs(30)).await.unwrap();
    time.advance(Duration::from_secs(2));
    until_trims(&snapshotter, 3).await;
    let got = ns
        .get_by_name("a")
        .call(Req::Get("k2".into()))
        .await
        .unwrap();
    assert_eq!(got, Resp::Value(Some("v".into())));
    runtime.shutdown(Duration::from_secs(10)).await;
}
