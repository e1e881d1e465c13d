//! The runtime's metrics, captured by a recorder installed for this test binary alone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use burrow_runtime::{Options, Runtime};
use common::{Probe, Req, TestActor};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// Name, labels and value of each metric.
type Snapshot = [(String, Vec<(String, String)>, DebugValue)];

fn counter(snapshot: &Snapshot, name: &str, label: Option<(&str, &str)>) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| {
            n == name && label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn activations_evictions_turns_and_quarantines_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1).max_resident(1)).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    for name in ["a", "b", "a"] {
        ns.get_by_name(name)
            .call(Req::Put("k".into(), "v".into()))
            .await
            .unwrap();
    }
    // "b" is not resident: empty its file so that its next activation quarantines it.
    std::fs::write(ns.path_of(&ns.id_from_name("b")), b"").unwrap();
    ns.get_by_name("b").call(Req::Info).await.unwrap();
    runtime.shutdown(Duration::from_secs(10)).await;

    let snapshot: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    // a (new), b (new), a (existing file), b (quarantined: a new file).
    assert_eq!(
        counter(
            &snapshot,
            "burrow_activations_total",
            Some(("kind", "cold"))
        ),
        3
    );
    assert_eq!(
        counter(
            &snapshot,
            "burrow_activations_total",
            Some(("kind", "warm"))
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "burrow_evictions_total",
            Some(("reason", "capacity"))
        ),
        3
    );
    assert_eq!(
        counter(
            &snapshot,
            "burrow_evictions_total",
            Some(("reason", "shutdown"))
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "burrow_quarantines_total",
            Some(("reason", "empty"))
        ),
        1
    );
    let turns = snapshot
        .iter()
        .find(|(n, _, _)| n == "burrow_turn_seconds")
        .map(|(_, _, v)| match v {
            DebugValue::Histogram(h) => h.len(),
            _ => 0,
        });
    assert_eq!(turns, Some(4));
}
