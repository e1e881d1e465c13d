//! Compaction racing writers, exports and rebuilds: whatever point inside the retention window
//! an export asks for, and whatever head a rebuild needs, is still in the log — checked against
//! a record of what the live actors held at each point, not against the log itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{Add, Ledger, Read, fresh_log, items_in, ledger_key, open_with};
use burrow_runtime::point_in_time::{ExportError, export_at};
use burrow_runtime::turn_log::TurnLog;
use burrow_runtime::{Namespace, Runtime};

const ACTORS: usize = 6;
/// Short, so that compaction removes entries while the test runs.
const RETENTION: Duration = Duration::from_millis(800);

/// What a live actor held right after one of its entries.
#[derive(Clone)]
struct Point {
    actor: String,
    seq: u64,
    /// Taken before the call that wrote the entry: the entry is no older than this.
    before: SystemTime,
    content: (Vec<String>, i64),
}

/// The logical content of an exported or rebuilt file: the items and the count, as the actor
/// reads them.
fn content_of(path: &std::path::Path) -> (Vec<String>, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = conn
        .query_row(
            "SELECT value FROM _burrow_kv WHERE key = CAST('count' AS BLOB)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (items_in(path), count)
}

fn open(dir: &std::path::Path, log: &Arc<dyn TurnLog>) -> (Runtime, Namespace<Ledger>) {
    // An image every 4 entries: compaction always has images to keep and entries to drop.
    open_with(dir, log, |o| o.shards(2).snapshot_every(4, u64::MAX))
}

/// One writer per actor (so the log's head after a call is that call's entry), each recording
/// what its actor held after every entry, until `until`.
async fn write(
    ns: &Namespace<Ledger>,
    log: &Arc<dyn TurnLog>,
    record: &Arc<Mutex<Vec<Point>>>,
    until: Instant,
) {
    let writers: Vec<_> = (0..ACTORS)
        .map(|a| {
            let (ns, log, record) = (ns.clone(), log.clone(), record.clone());
            tokio::spawn(async move {
                let actor = format!("a{a}");
                let key = ledger_key(&actor);
                let mut n = 0;
                while Instant::now() < until {
                    let before = SystemTime::now();
                    ns.get_by_name(&actor)
                        .call(Add(format!("{actor}-{n}")))
                        .await
                        .unwrap();
                    n += 1;
                    let (_, head) = log.head(&key).await.unwrap().unwrap();
                    let content = ns.get_by_name(&actor).call(Read).await.unwrap();
                    record.lock().unwrap().push(Point {
                        actor: actor.clone(),
                        seq: head.seq,
                        before,
                        content,
                    });
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

/// What the exporter saw.
#[derive(Default, Debug)]
struct Exported {
    /// Points inside the window when the export answered, exported and matching the record.
    inside: usize,
    /// Points refused as outside retention (each checked to have left the window).
    outside: usize,
}

/// Exports recorded points while the writers and the compactor run, until `until`: the newest
/// point of an actor, and points near and past the window's edge, where compaction bites.
async fn export_while_writing(
    log: Arc<dyn TurnLog>,
    record: Arc<Mutex<Vec<Point>>>,
    until: Instant,
) -> Exported {
    let out = tempfile::tempdir().unwrap();
    let mut seen = Exported::default();
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let points = record.lock().unwrap().clone();
        let Some(newest) = points.len().checked_sub(1) else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The newest point, one every eighth of the way back through the record, and each
        // actor's oldest point still inside the window by a small margin: the one that needs
        // the image compaction keeps from before the window.
        let mut picks: Vec<usize> = (0..8)
            .map(|k| newest.saturating_sub(k * (newest / 8 + 1)))
            .collect();
        let edge = SystemTime::now() - RETENTION + Duration::from_millis(50);
        for a in 0..ACTORS {
            let actor = format!("a{a}");
            picks.extend(
                points
                    .iter()
                    .position(|p| p.actor == actor && p.before >= edge),
            );
        }
        for (k, i) in picks.into_iter().enumerate() {
            let point = &points[i];
            let dest = out.path().join(format!("{round}-{k}.db"));
            let result = export_at(&*log, &ledger_key(&point.actor), point.seq, &dest).await;
            let answered = SystemTime::now();
            // Compaction that finished before the answer cut at most `RETENTION` before it:
            // an entry written after that cut is inside the window and must be exportable.
            let inside = point.before >= answered - RETENTION;
            match result {
                Ok(position) => {
                    assert_eq!(position.seq, point.seq);
                    assert_eq!(
                        content_of(&dest),
                        point.content,
                        "{} at entry {}: the export differs from what the live actor held",
                        point.actor,
                        point.seq
                    );
                    seen.inside += usize::from(inside);
                }
                Err(ExportError::OutsideRetention(_)) => {
                    assert!(
                        !inside,
                        "{} at entry {}, written {:?} before the export answered, was compacted away inside a {RETENTION:?} window",
                        point.actor,
                        point.seq,
                        answered.duration_since(point.before).unwrap_or_default()
                    );
                    seen.outside += 1;
                }
                Err(e) => panic!("exporting {} at {}: {e}", point.actor, point.seq),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// Every actor, activated on an empty data directory (so rebuilt from its latest image and the
/// entries after it), holds what it held at its last recorded point.
async fn rebuild_matches(
    log: &Arc<dyn TurnLog>,
    record: &Mutex<Vec<Point>>,
) -> (Runtime, Namespace<Ledger>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), log);
    let points = record.lock().unwrap().clone();
    for a in 0..ACTORS {
        let actor = format!("a{a}");
        let last = points.iter().rev().find(|p| p.actor == actor).unwrap();
        assert_eq!(
            ns.get_by_name(&actor).call(Read).await.unwrap(),
            last.content,
            "{actor} rebuilt while compaction ran"
        );
    }
    (runtime, ns, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_load_keeps_what_exports_and_rebuilds_inside_the_window_need() {
    let (_db, pg) = fresh_log(Duration::from_secs(5)).await;
    let log: Arc<dyn TurnLog> = Arc::new(pg.clone());
    let record = Arc::new(Mutex::new(Vec::<Point>::new()));

    let compacting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let compactor = tokio::spawn({
        let (pg, compacting) = (pg.clone(), compacting.clone());
        async move {
            let mut deleted = 0;
            while compacting.load(std::sync::atomic::Ordering::Relaxed) {
                deleted += pg.compact(RETENTION).await.unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            deleted
        }
    });

    let mut exported = Vec::new();
    let first = tempfile::tempdir().unwrap();
    let (mut runtime, mut ns) = open(first.path(), &log);
    let mut dirs = vec![first];
    for _ in 0..2 {
        let until = Instant::now() + Duration::from_millis(2_500);
        let exporter = tokio::spawn(export_while_writing(log.clone(), record.clone(), until));
        write(&ns, &log, &record, until).await;
        exported.push(exporter.await.unwrap());
        // The host is lost: a new runtime on an empty directory rebuilds every actor while the
        // compactor keeps running, then (after the first phase) takes the writes over.
        runtime.shutdown(Duration::from_secs(5)).await;
        let (next, next_ns, dir) = rebuild_matches(&log, &record).await;
        (runtime, ns) = (next, next_ns);
        dirs.push(dir);
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    compacting.store(false, std::sync::atomic::Ordering::Relaxed);
    let deleted = compactor.await.unwrap();

    // The race was real: compaction removed entries, exports inside the window were made
    // throughout, and points that left the window were refused rather than misread.
    eprintln!("compaction removed {deleted} entries; exports: {exported:?}");
    assert!(deleted > 0, "the compactor removed nothing");
    let inside: usize = exported.iter().map(|e| e.inside).sum();
    let outside: usize = exported.iter().map(|e| e.outside).sum();
    assert!(
        inside >= 20,
        "only {inside} exports inside the window: {exported:?}"
    );
    assert!(
        outside > 0,
        "no export fell outside the window: {exported:?}"
    );
}
