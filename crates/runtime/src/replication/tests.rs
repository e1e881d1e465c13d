//! Real SQLite files: a live database whose commits are captured, and a replica rebuilt from an
//! image and the captured patchsets.

use std::path::Path;

use proptest::prelude::*;
use rusqlite::Connection;

use super::capture::{Capture, Recorder};
use super::{ReplicationError, apply, digest, image, shape};

fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    conn
}

/// Runs `turn` in a transaction recorded from its first statement; commits only if `commit`.
fn recorded(conn: &Connection, commit: bool, turn: impl FnOnce(&Connection)) -> Capture {
    conn.execute_batch("BEGIN").unwrap();
    let mut recorder = Recorder::start(conn).unwrap();
    turn(conn);
    let capture = recorder.finish(conn).unwrap();
    conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })
        .unwrap();
    capture
}

#[test]
fn a_patchset_taken_before_commit_rebuilds_the_committed_state_and_a_rollback_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = open(&dir.path().join("live.db"));
    live.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY NOT NULL, v BLOB)")
        .unwrap();
    let start = image::take(&mut live).unwrap();
    let replica_path = dir.path().join("replica.db");
    image::install(&replica_path, &start).unwrap();
    let replica = Connection::open(&replica_path).unwrap();

    let kept = recorded(&live, true, |c| {
        c.execute_batch(
            "INSERT INTO t VALUES ('a', x'01'), ('b', x'02'); UPDATE t SET v = x'03' WHERE k = 'a'",
        )
        .unwrap()
    });
    assert!(!kept.schema_changed);
    assert!(!kept.patchset.is_empty());
    let before = digest::content_hash(&live).unwrap();
    let undone = recorded(&live, false, |c| c.execute_batch("DELETE FROM t").unwrap());
    assert_eq!(
        digest::content_hash(&live).unwrap(),
        before,
        "rollback changed the file"
    );
    assert!(
        !undone.patchset.is_empty(),
        "the patchset was taken before the rollback"
    );

    apply::apply(&replica, &kept.patchset).unwrap();
    assert_eq!(
        digest::content_hash(&replica).unwrap(),
        digest::content_hash(&live).unwrap()
    );
}

#[test]
fn schema_changes_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let live = open(&dir.path().join("live.db"));
    let created = recorded(&live, true, |c| {
        c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .unwrap()
    });
    assert!(created.schema_changed);
    let rows = recorded(&live, true, |c| {
        c.execute_batch("INSERT INTO t (v) VALUES ('x')").unwrap()
    });
    assert!(!rows.schema_changed);
    let altered = recorded(&live, true, |c| {
        c.execute_batch("ALTER TABLE t ADD COLUMN w INTEGER")
            .unwrap()
    });
    assert!(altered.schema_changed);
}

#[test]
fn tables_a_patchset_would_miss_are_refused_by_name() {
    let refused = [
        (
            "CREATE TABLE loose (a TEXT, b TEXT)",
            "loose",
            "no PRIMARY KEY",
        ),
        (
            "CREATE TABLE nully (k TEXT PRIMARY KEY, v TEXT)",
            "nully",
            "may hold NULL",
        ),
        (
            "CREATE TABLE pair (a TEXT, b INTEGER, PRIMARY KEY (a, b))",
            "pair",
            "may hold NULL",
        ),
        (
            "CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
            "counted",
            "AUTOINCREMENT",
        ),
    ];
    for (ddl, table, why) in refused {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(ddl).unwrap();
        match shape::check(&conn) {
            Err(ReplicationError::UnreplicableTable { table: t, reason }) => {
                assert_eq!(t, table);
                assert!(reason.contains(why), "{table}: {reason}");
                let message = ReplicationError::UnreplicableTable { table: t, reason }.to_string();
                assert!(message.contains(table), "{message}");
            }
            other => panic!("{ddl}: {other:?}"),
        }
    }
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE rowid_alias (id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE keyed (k TEXT PRIMARY KEY NOT NULL, v TEXT);
         CREATE TABLE pair (a TEXT NOT NULL, b INTEGER NOT NULL, v, PRIMARY KEY (a, b));
         CREATE TABLE compact (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
    )
    .unwrap();
    shape::check(&conn).unwrap();
}

#[test]
fn a_patchset_that_does_not_fit_is_refused_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let live = open(&dir.path().join("live.db"));
    live.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let change = recorded(&live, true, |c| {
        c.execute_batch("INSERT INTO t VALUES (1, 'one')").unwrap()
    });

    // SQLite's own apply would return Ok and skip both of these.
    let missing = Connection::open_in_memory().unwrap();
    let err = apply::apply(&missing, &change.patchset).unwrap_err();
    assert!(
        matches!(err, ReplicationError::Mismatch(ref m) if m.contains("\"t\" does not exist")),
        "{err}"
    );

    let wider = Connection::open_in_memory().unwrap();
    wider
        .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, w TEXT)")
        .unwrap();
    let err = apply::apply(&wider, &change.patchset).unwrap_err();
    assert!(
        matches!(err, ReplicationError::Mismatch(ref m) if m.contains("3 columns")),
        "{err}"
    );
}

#[test]
fn a_diverged_replica_conflicts_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let live = open(&dir.path().join("live.db"));
    live.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let change = recorded(&live, true, |c| {
        c.execute_batch("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
            .unwrap()
    });
    let replica = Connection::open_in_memory().unwrap();
    replica
        .execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (2, 'mine')",
        )
        .unwrap();
    let err = apply::apply(&replica, &change.patchset).unwrap_err();
    assert!(matches!(err, ReplicationError::Conflict(_)), "{err}");
    let rows: Vec<(i64, String)> = replica
        .prepare("SELECT k, v FROM t ORDER BY k")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![(2, "mine".to_owned())],
        "a conflicting apply left rows behind"
    );
}

#[test]
fn triggers_do_not_fire_twice_when_applying() {
    let dir = tempfile::tempdir().unwrap();
    let schema = "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);
                  CREATE TABLE audit (k INTEGER PRIMARY KEY, note TEXT);
                  CREATE TRIGGER log AFTER INSERT ON t BEGIN INSERT INTO audit (note) VALUES (new.v); END;";
    let mut live = open(&dir.path().join("live.db"));
    live.execute_batch(schema).unwrap();
    let start = image::take(&mut live).unwrap();
    let change = recorded(&live, true, |c| {
        c.execute_batch("INSERT INTO t (v) VALUES ('x')").unwrap()
    });
    let path = dir.path().join("replica.db");
    image::install(&path, &start).unwrap();
    let replica = Connection::open(&path).unwrap();
    let before: bool = replica
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    apply::apply(&replica, &change.patchset).unwrap();
    let audit: i64 = replica
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        audit, 1,
        "the trigger's row came in the patchset; it must not fire again"
    );
    let on: bool = replica
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(on, before, "foreign keys were left as apply set them");
    replica
        .execute_batch("INSERT INTO t (v) VALUES ('y')")
        .unwrap();
    let audit: i64 = replica
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audit, 2, "triggers were left off after applying");
}

/// One statement of a random turn.
#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Bump(u8),
    Delete(u8),
    DeleteRange(u8, u8),
    /// Statements inside a savepoint that is rolled back.
    Undone(Vec<Op>),
    /// A new table (its number; created if absent).
    Create(u8),
    /// A new column on table `n` (added if absent).
    Widen(u8),
}

fn leaf() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => (0u8..40, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(k, v)| Op::Put(k, v)),
        8 => (0u8..40).prop_map(Op::Bump),
        8 => (0u8..40).prop_map(Op::Delete),
        2 => (0u8..40, 0u8..8).prop_map(|(k, n)| Op::DeleteRange(k, n)),
        1 => (0u8..4).prop_map(Op::Create),
        1 => (0u8..4).prop_map(Op::Widen),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => leaf(),
        1 => proptest::collection::vec(leaf(), 1..4).prop_map(Op::Undone),
    ]
}

fn run(conn: &Connection, op: &Op) {
    match op {
        Op::Put(k, v) => {
            conn.execute(
                "INSERT INTO kv (k, v, n) VALUES (?1, ?2, 0)
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (format!("key{k}"), v),
            )
            .unwrap();
        }
        Op::Bump(k) => {
            conn.execute("UPDATE kv SET n = n + 1 WHERE k = ?1", [format!("key{k}")])
                .unwrap();
        }
        Op::Delete(k) => {
            conn.execute("DELETE FROM kv WHERE k = ?1", [format!("key{k}")])
                .unwrap();
        }
        Op::DeleteRange(k, n) => {
            conn.execute(
                "DELETE FROM kv WHERE k >= ?1 AND k < ?2",
                (format!("key{k}"), format!("key{}", k + n)),
            )
            .unwrap();
        }
        Op::Undone(ops) => {
            conn.execute_batch("SAVEPOINT undone").unwrap();
            for op in ops {
                run(conn, op);
            }
            conn.execute_batch("ROLLBACK TO undone; RELEASE undone")
                .unwrap();
        }
        Op::Create(n) => {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS extra{n} (id INTEGER PRIMARY KEY, body TEXT);
                 INSERT INTO extra{n} (body) VALUES ('created')"
            ))
            .unwrap();
        }
        Op::Widen(n) => {
            let exists: bool = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                    [format!("extra{n}")],
                    |r| r.get(0),
                )
                .unwrap();
            let wide: bool = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'more'",
                    [format!("extra{n}")],
                    |r| r.get(0),
                )
                .unwrap();
            if exists && !wide {
                conn.execute_batch(&format!(
                    "ALTER TABLE extra{n} ADD COLUMN more INTEGER;
                     UPDATE extra{n} SET more = id * 2"
                ))
                .unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Thousands of random turns (writes, savepoints rolled back, aborted turns, DDL): a
    /// replica rebuilt from the first image, then each committed turn's patchset — or its
    /// image when the turn changed the schema — has the live database's content.
    #[test]
    fn a_replica_rebuilt_from_images_and_patchsets_matches_the_live_database(
        turns in proptest::collection::vec(
            (proptest::collection::vec(op(), 1..6), proptest::bool::weighted(0.9)),
            300..400,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut live = open(&dir.path().join("live.db"));
        live.execute_batch(
            "CREATE TABLE kv (k TEXT PRIMARY KEY NOT NULL, v BLOB, n INTEGER NOT NULL) WITHOUT ROWID",
        )
        .unwrap();
        let replica_path = dir.path().join("replica.db");
        image::install(&replica_path, &image::take(&mut live).unwrap()).unwrap();
        let mut replica = Connection::open(&replica_path).unwrap();
        let (mut images, mut patchsets) = (0, 0);
        for (i, (ops, commit)) in turns.iter().enumerate() {
            let capture = recorded(&live, *commit, |c| ops.iter().for_each(|op| run(c, op)));
            if !*commit {
                continue;
            }
            shape::check(&live).unwrap();
            if capture.schema_changed {
                drop(replica);
                image::install(&replica_path, &image::take(&mut live).unwrap()).unwrap();
                replica = Connection::open(&replica_path).unwrap();
                images += 1;
            } else if !capture.patchset.is_empty() {
                apply::apply(&replica, &capture.patchset).unwrap();
                patchsets += 1;
            }
            if i % 50 == 0 {
                prop_assert_eq!(
                    digest::content_hash(&replica).unwrap(),
                    digest::content_hash(&live).unwrap(),
                    "diverged after turn {}", i
                );
            }
        }
        prop_assert_eq!(
            digest::content_hash(&replica).unwrap(),
            digest::content_hash(&live).unwrap()
        );
        // Both paths were taken, the patchset one many times.
        prop_assert!(patchsets >= 50 && images >= 1, "{} patchsets, {} images", patchsets, images);
    }
}
