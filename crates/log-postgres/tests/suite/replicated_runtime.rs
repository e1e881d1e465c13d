//! `Durability::Replicated` end to end: a real runtime, real SQLite files, the log in a real
//! PostgreSQL. Each test loses, damages or races the local state and checks that what was
//! acknowledged is what comes back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    Add, FlushThenFail, Forget, Ledger, Loose, Read, Remind, actor_file, items, ledger_key, open,
    open_with, quarantined,
};
use burrow_log_postgres::PgTurnLog;
use burrow_log_postgres::views::{IncidentKind, IncidentRow};
use burrow_runtime::turn_log::{LogKey, TurnLog};
use burrow_runtime::{ActorId, ErrorKind, Options, Runtime};
use burrow_testkit::pg::fresh_database;

/// An actor's file and WAL as they were, to put back later.
struct FileCopy {
    file: PathBuf,
    keep: PathBuf,
    had_wal: bool,
}

impl FileCopy {
    fn wal(file: &std::path::Path) -> PathBuf {
        PathBuf::from(format!("{}-wal", file.display()))
    }

    fn take(file: &std::path::Path, keep: &std::path::Path) -> FileCopy {
        std::fs::create_dir(keep).unwrap();
        std::fs::copy(file, keep.join("db")).unwrap();
        let had_wal = FileCopy::wal(file).exists();
        if had_wal {
            std::fs::copy(FileCopy::wal(file), keep.join("wal")).unwrap();
        }
        FileCopy {
            file: file.to_owned(),
            keep: keep.to_owned(),
            had_wal,
        }
    }

    fn put_back(&self) {
        let _ = std::fs::remove_file(FileCopy::wal(&self.file));
        std::fs::copy(self.keep.join("db"), &self.file).unwrap();
        if self.had_wal {
            std::fs::copy(self.keep.join("wal"), FileCopy::wal(&self.file)).unwrap();
        }
    }
}

async fn shared_log() -> (burrow_testkit::pg::TestDatabase, Arc<dyn TurnLog>) {
    let db = fresh_database().await;
    let log = PgTurnLog::connect(db.url(), Duration::from_secs(3))
        .await
        .unwrap();
    (db, Arc::new(log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_whole_data_directory_loses_nothing_acknowledged() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    for body in items(20) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    ns.get_by_name("bob").call(Add("b".into())).await.unwrap();
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(dir); // the disk is gone

    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(20), 20)
    );
    assert_eq!(
        ns.get_by_name("bob").call(Read).await.unwrap(),
        (vec!["b".to_owned()], 1)
    );
    // And it goes on from there.
    assert_eq!(
        ns.get_by_name("alice")
            .call(Add("more".into()))
            .await
            .unwrap(),
        21
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    assert!(
        quarantined(elsewhere.path()).is_empty(),
        "a missing file is rebuilt, not quarantined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_behind_the_log_catches_up_without_quarantine() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    for body in items(5) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let file = actor_file(dir.path(), "alice");
    let old = FileCopy::take(&file, &dir.path().join("old"));

    let (runtime, ns) = open(dir.path(), &log);
    for body in items(9).into_iter().skip(5) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    // The file goes back to how it was four turns ago (a crash between the log's commit and
    // the local one leaves a file behind the same way, one entry at a time).
    old.put_back();

    let (runtime, ns) = open(dir.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(9), 9)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    assert!(
        quarantined(dir.path()).is_empty(),
        "{:?}",
        quarantined(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_writes_the_log_never_took_is_quarantined_and_rebuilt() {
    let (db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    for body in items(3) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    // A local commit the log never acknowledged: a row, and a position past the head.
    let file = actor_file(dir.path(), "alice");
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute_batch(
        "INSERT INTO items (body) VALUES ('never acknowledged');
         UPDATE _burrow_meta SET value = value + 1 WHERE key = 'log_seq';",
    )
    .unwrap();
    drop(conn);

    let (runtime, ns) = open(dir.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(3), 3)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        quarantined(dir.path()).len(),
        1,
        "the diverged file is kept aside: {:?}",
        quarantined(dir.path())
    );
    // In this node's catalog (committed at shutdown)…
    let listed = runtime.catalog().quarantined("ledger").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].reason, "diverged_from_log");
    // And recorded beside the log, where a cluster's operators list it.
    let id = ns.id_from_name("alice").to_string();
    let row = recorded_incident(&db, IncidentKind::Quarantined, &id).await;
    match &row.incident {
        burrow_runtime::turn_log::Incident::Quarantined { reason, moved_to } => {
            assert_eq!(reason, "diverged_from_log");
            assert!(
                std::path::Path::new(moved_to).exists(),
                "{moved_to} is where the file went"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Waits (up to 20 s: incidents are recorded in the background) for the first incident of
/// `kind` recorded for the actor `id`.
async fn recorded_incident(
    db: &burrow_testkit::pg::TestDatabase,
    kind: IncidentKind,
    id: &str,
) -> IncidentRow {
    let pg = PgTurnLog::connect(db.url(), Duration::from_secs(3))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = pg.incidents(kind, None, 100).await.unwrap();
        if let Some(row) = rows.into_iter().find(|r| r.actor_id == id) {
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind:?} incident recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_one_log_never_both_acknowledge() {
    let (_db, log) = shared_log().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_runtime, a) = open(a_dir.path(), &log);
    let (b_runtime, b) = open(b_dir.path(), &log);
    assert_eq!(
        a.get_by_name("alice")
            .call(Add("from a".into()))
            .await
            .unwrap(),
        1
    );
    // B's activation claims the actor (a newer epoch) and catches up from the log.
    assert_eq!(
        b.get_by_name("alice")
            .call(Add("from b".into()))
            .await
            .unwrap(),
        2
    );
    // A is still resident, but its epoch is superseded: its write is refused, not acknowledged.
    let refused = a
        .get_by_name("alice")
        .call(Add("stale".into()))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ActorReset, "{refused}");
    assert!(refused.is_retryable());
    // A's next activation claims again and sees B's write; the refused one is nowhere.
    let expected = (vec!["from a".to_owned(), "from b".to_owned()], 2);
    assert_eq!(a.get_by_name("alice").call(Read).await.unwrap(), expected);
    a_runtime.shutdown(Duration::from_secs(5)).await;
    b_runtime.shutdown(Duration::from_secs(5)).await;
    let fresh = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(fresh.path(), &log);
    assert_eq!(ns.get_by_name("alice").call(Read).await.unwrap(), expected);
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_log_cannot_follow_is_refused_by_name() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    ns.get_by_name("alice")
        .call(Add("kept".into()))
        .await
        .unwrap();
    let err = ns.get_by_name("alice").call(Loose).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("\"loose\""), "{err}");
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec!["kept".to_owned()], 1)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    let conn = rusqlite::Connection::open(actor_file(dir.path(), "alice")).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'loose'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the refused turn was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_from_before_replication_keeps_its_state_and_starts_a_log() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    let ns = runtime.namespace("ledger", |_| Ledger).unwrap();
    for body in items(4) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;

    let (runtime, ns) = open(dir.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(4), 4)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    let key = ledger_key("alice");
    let first = log.read(&key, 1, 1).await.unwrap();
    assert!(
        first[0].payload.is_image(),
        "the log starts with an image of the old file"
    );
    // Which is all it takes to bring the state back without the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(4), 4)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_set_before_the_data_directory_is_lost_fire_after_it_unprompted() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    ns.get_by_name("alice")
        .call(Add("before".into()))
        .await
        .unwrap();
    ns.get_by_name("alice")
        .call(Remind("wake".into(), Duration::from_millis(2_500)))
        .await
        .unwrap();
    ns.get_by_name("bob").call(Add("b".into())).await.unwrap();
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(dir);

    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, _ns) = open(elsewhere.path(), &log);
    let alice = ledger_key("alice");
    let (_, before) = log.head(&alice).await.unwrap().unwrap();
    // Nobody calls alice: the alarm fires by itself and its turn reaches the log.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, head) = log.head(&alice).await.unwrap().unwrap();
        if head.seq > before.seq {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alarm never fired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The catalog learned both actors from the log, names included.
    assert_eq!(runtime.catalog().count("ledger").await.unwrap(), 2);
    let record = runtime
        .catalog()
        .get("ledger", ActorId::for_name("ledger", "bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.name.as_deref(), Some("bob"));
    runtime.shutdown(Duration::from_secs(5)).await;

    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec!["before".to_owned(), "fired: wake".to_owned()], 1)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_actor_does_not_come_back_from_the_log() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    for body in items(3) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    let id = ActorId::for_name("ledger", "alice");
    assert!(runtime.catalog().delete("ledger", id).await.unwrap());
    let key = LogKey {
        namespace: "ledger".into(),
        id,
    };
    assert!(log.read(&key, 1, 100).await.unwrap().is_empty());
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec![], 0)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(dir);
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec![], 0)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_is_a_commit_point_of_the_log() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    let err = ns
        .get_by_name("alice")
        .call(FlushThenFail("flushed".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failing after the flush"), "{err}");
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(dir);
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec!["flushed".to_owned()], 0)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_damaged_past_its_first_pages_is_rebuilt_from_the_log() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    // Enough rows that the items table spans pages of its own.
    for body in (0..200).map(|i| format!("{i:0>200}")) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let file = actor_file(dir.path(), "alice");
    // Fold the WAL in, then overwrite the file's last pages with garbage.
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let len = bytes.len();
    assert!(len > 5 * 4096, "{len}");
    bytes[len - 3 * 4096..].fill(0xA5);
    std::fs::write(&file, bytes).unwrap();

    let (runtime, ns) = open(dir.path(), &log);
    let mut read = None;
    for _ in 0..3 {
        match ns.get_by_name("alice").call(Read).await {
            Ok(state) => {
                read = Some(state);
                break;
            }
            // The damage shows in the turn that reads it: the file is quarantined and the
            // next activation rebuilds it.
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    let (items, count) = read.expect("rebuilt within three calls");
    assert_eq!((items.len(), count), (200, 200));
    runtime.shutdown(Duration::from_secs(5)).await;
    assert_eq!(quarantined(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_that_deletes_itself_takes_its_log_with_it() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    for body in items(3) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    ns.get_by_name("alice").call(Forget).await.unwrap();
    let key = ledger_key("alice");
    // By the time the reply arrived, the log was gone.
    assert!(log.read(&key, 1, 100).await.unwrap().is_empty());
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(dir);
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(runtime.catalog().count("ledger").await.unwrap(), 0);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec![], 0)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_written_every_so_many_entries_and_rebuilds_start_from_the_latest() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.snapshot_every(5, u64::MAX));
    for body in items(12) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let key = ledger_key("alice");
    let entries = log.read(&key, 1, 100).await.unwrap();
    let images: Vec<u64> = entries
        .iter()
        .filter(|e| e.payload.is_image())
        .map(|e| e.seq)
        .collect();
    // 1: the log's start; 2: the first turn created a table; then every fifth entry.
    assert_eq!(images, vec![1, 2, 7, 12], "{entries:?}");
    assert_eq!(log.image_at(&key, 100).await.unwrap().unwrap().seq, 12);
    drop(dir);
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(12), 12)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_over_the_limit_is_refused_naming_the_actor() {
    let (_db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    // A new file (four pages) fits; the first turn's new table makes it five, which does not.
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.max_image_bytes(18 * 1024));
    let err = ns
        .get_by_name("alice")
        .call(Add("x".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let id = ActorId::for_name("ledger", "alice");
    assert!(err.to_string().contains(&format!("ledger/{id}")), "{err}");
    assert!(err.to_string().contains("max_image_bytes"), "{err}");
    runtime.shutdown(Duration::from_secs(5)).await;
    let key = LogKey {
        namespace: "ledger".into(),
        id,
    };
    let entries = log.read(&key, 1, 100).await.unwrap();
    assert_eq!(entries.len(), 1, "only the log's start: {entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_behind_entries_compacted_away_is_rebuilt_from_the_latest_image() {
    let db = fresh_database().await;
    let pg = PgTurnLog::connect(db.url(), Duration::from_secs(3))
        .await
        .unwrap();
    let log: Arc<dyn TurnLog> = Arc::new(pg.clone());
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.snapshot_every(3, u64::MAX));
    for body in items(2) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let file = actor_file(dir.path(), "alice");
    let old = FileCopy::take(&file, &dir.path().join("old"));
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.snapshot_every(3, u64::MAX));
    for body in items(10).into_iter().skip(2) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    assert!(pg.compact(Duration::ZERO).await.unwrap() > 0);
    // The old copy's next entries are gone from the log: it cannot catch up, only be rebuilt.
    old.put_back();
    let (runtime, ns) = open(dir.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items(10), 10)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    assert_eq!(quarantined(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_exported_at_an_entry_is_what_it_was_then_until_compaction_removes_the_point() {
    use burrow_runtime::point_in_time::{ExportError, export_at};
    let db = fresh_database().await;
    let pg = PgTurnLog::connect(db.url(), Duration::from_secs(3))
        .await
        .unwrap();
    let log: Arc<dyn TurnLog> = Arc::new(pg.clone());
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.snapshot_every(3, u64::MAX));
    let key = ledger_key("alice");
    // What the actor held after each entry, as the live actor said it.
    let mut record = Vec::new();
    for body in items(8) {
        ns.get_by_name("alice").call(Add(body)).await.unwrap();
        let (_, head) = log.head(&key).await.unwrap().unwrap();
        record.push((
            head.seq,
            ns.get_by_name("alice").call(Read).await.unwrap().0,
        ));
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let out = tempfile::tempdir().unwrap();
    for (seq, items) in &record {
        let dest = out.path().join(format!("at-{seq}.db"));
        assert_eq!(export_at(&*log, &key, *seq, &dest).await.unwrap().seq, *seq);
        assert_eq!(&crate::common::items_in(&dest), items, "at entry {seq}");
        assert!(
            !out.path().join(format!("at-{seq}.db-wal")).exists(),
            "one file"
        );
        assert!(matches!(
            export_at(&*log, &key, *seq, &dest).await,
            Err(ExportError::Exists(_))
        ));
    }
    let (last, _) = record.last().unwrap();
    let unknown = ledger_key("nobody");
    assert!(matches!(
        export_at(&*log, &unknown, 1, &out.path().join("u.db")).await,
        Err(ExportError::UnknownActor(_))
    ));
    assert!(matches!(
        export_at(&*log, &key, last + 1, &out.path().join("n.db")).await,
        Err(ExportError::NotYet { .. })
    ));
    // Compaction with no window keeps only the latest image and what follows it.
    assert!(pg.compact(Duration::ZERO).await.unwrap() > 0);
    let (first, _) = record.first().unwrap();
    assert!(matches!(
        export_at(&*log, &key, *first, &out.path().join("old.db")).await,
        Err(ExportError::OutsideRetention(_))
    ));
    let dest = out.path().join("last.db");
    export_at(&*log, &key, *last, &dest).await.unwrap();
    assert_eq!(crate::common::items_in(&dest), record.last().unwrap().1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_alarm_is_recorded_beside_the_log() {
    let (db, log) = shared_log().await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open_with(dir.path(), &log, |o| {
        o.alarm_policy(burrow_runtime::alarm::AlarmPolicy {
            first_retry: Duration::from_millis(10),
            max_attempts: 2,
            ..Default::default()
        })
    });
    ns.get_by_name("alice")
        .call(crate::common::Remind("failing".into(), Duration::ZERO))
        .await
        .unwrap();
    let id = ns.id_from_name("alice").to_string();
    let row = recorded_incident(&db, IncidentKind::DeadAlarm, &id).await;
    match row.incident {
        burrow_runtime::turn_log::Incident::DeadAlarm {
            name,
            attempts,
            error,
            ..
        } => {
            assert_eq!((name.as_str(), attempts), ("failing", 2));
            assert!(error.contains("fails on purpose"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(row.node_id, None, "outside a cluster no node is named");
    runtime.shutdown(Duration::from_secs(5)).await;
}
