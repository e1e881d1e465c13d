//! Lost state, never lost data: deleted, emptied, overwritten and corrupted actor files are
//! moved aside (never deleted), and the fresh actor is told why.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Probe, Req, Resp, TestActor};
use burrow_runtime::{
    Abort, Actor, ActorId, Context, ErrorKind, Handler, LostReason, LostState, Message, Namespace,
    Options, Runtime,
};

const GRACE: Duration = Duration::from_secs(10);

fn open(dir: &std::path::Path) -> (Runtime, Namespace<TestActor>) {
    let runtime = Runtime::open(Options::new(dir).shards(1).max_resident(2)).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    (runtime, ns)
}

async fn lost(ns: &Namespace<TestActor>, name: &str) -> Option<LostState> {
    match ns.get_by_name(name).call(Req::Info).await.unwrap() {
        Resp::Info { lost, .. } => lost,
        other => panic!("unexpected {other:?}"),
    }
}

/// Pushes `victims` out of residency by calling other actors (`max_resident` is 2).
async fn evict(ns: &Namespace<TestActor>) {
    for other in ["filler-1", "filler-2"] {
        ns.get_by_name(other).call(Req::Info).await.unwrap();
    }
}

#[tokio::test]
async fn damaged_files_of_evicted_actors_are_quarantined_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path());
    for name in ["deleted", "emptied", "garbage"] {
        ns.get_by_name(name)
            .call(Req::Put("k".into(), "v".into()))
            .await
            .unwrap();
    }
    evict(&ns).await;
    let path = |name: &str| ns.path_of(&ns.id_from_name(name));
    for suffix in ["", "-wal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path("deleted").display()));
    }
    std::fs::File::create(path("emptied")).unwrap(); // truncates to zero
    let junk = vec![0x5Au8; 16 * 1024];
    std::fs::write(path("garbage"), &junk).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", path("garbage").display()));

    let deleted = lost(&ns, "deleted")
        .await
        .expect("a deleted file is lost state");
    assert_eq!(deleted.reason, LostReason::Missing);
    assert_eq!(deleted.quarantined_to, None);

    let emptied = lost(&ns, "emptied")
        .await
        .expect("an empty file is lost state");
    assert_eq!(emptied.reason, LostReason::Empty);
    let aside = emptied.quarantined_to.expect("the empty file is kept");
    assert_eq!(std::fs::metadata(&aside).unwrap().len(), 0);

    let garbage = lost(&ns, "garbage")
        .await
        .expect("a garbage file is lost state");
    assert!(
        matches!(garbage.reason, LostReason::Corrupt(_)),
        "{:?}",
        garbage.reason
    );
    let aside = garbage.quarantined_to.expect("the garbage is kept");
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        junk,
        "the damaged bytes must stay on disk"
    );
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains(".quarantined-")
    );

    // Each actor now works afresh, and is not told again.
    for name in ["deleted", "emptied", "garbage"] {
        assert_eq!(
            ns.get_by_name(name)
                .call(Req::Get("k".into()))
                .await
                .unwrap(),
            Resp::Value(None)
        );
        evict(&ns).await;
        assert_eq!(lost(&ns, name).await, None, "{name}");
    }

    // The catalog lists the two files moved aside (a missing file moved nothing), oldest
    // first, where they are now.
    let catalog = runtime.catalog();
    let began = std::time::Instant::now();
    let listed = loop {
        // (the catalog's writer commits in the background)
        let listed = catalog.quarantined("test").await.unwrap();
        if listed.len() >= 2 || began.elapsed() > Duration::from_secs(10) {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen: Vec<(ActorId, &str)> = listed.iter().map(|q| (q.id, q.reason.as_str())).collect();
    assert_eq!(
        seen,
        [
            (ns.id_from_name("emptied"), "empty"),
            (ns.id_from_name("garbage"), "corrupt")
        ],
        "{listed:#?}"
    );
    assert!(
        listed
            .iter()
            .all(|q| q.namespace == "test" && q.moved_to.exists())
    );
    assert!(catalog.quarantined("other").await.unwrap().is_empty());
    runtime.shutdown(GRACE).await;
}

/// An actor that fills a table, then reads all of it back on request.
struct Reader;

impl Actor for Reader {}

/// `true`: fill; `false`: read everything.
struct Fill(bool);

impl Message for Fill {
    type Reply = (i64, Option<LostState>);
}

impl Handler<Fill> for Reader {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        Fill(fill): Fill,
    ) -> Result<(i64, Option<LostState>), Abort> {
        let sql = ctx.storage().sql();
        sql.execute_batch("CREATE TABLE IF NOT EXISTS big (data BLOB)")?;
        if fill {
            for _ in 0..400 {
                sql.execute("INSERT INTO big VALUES (zeroblob(2000))", [])?;
            }
        }
        let total: i64 =
            sql.query_row("SELECT coalesce(sum(length(data)), 0) FROM big", [], |r| {
                r.get(0)
            })?;
        Ok((total, ctx.info().lost_state().cloned()))
    }
}

#[tokio::test]
async fn corruption_found_during_a_turn_fails_it_retryably_and_quarantines_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    let ns = runtime.namespace("reader", |_| Reader).unwrap();
    let stub = ns.get_by_name("r");
    assert_eq!(stub.call(Fill(true)).await.unwrap().0, 800_000);
    runtime.shutdown(GRACE).await;

    // Fold the WAL into the database file, then damage the table's pages but not the first
    // ones, which hold the schema and the actor's identity: activation succeeds, the read fails.
    let path = ns.path_of(&stub.id());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    bytes[half..].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();

    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    let ns = runtime.namespace("reader", |_| Reader).unwrap();
    let err = ns.get_by_name("r").call(Fill(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorReset, "{err}");
    assert!(err.is_retryable());

    let (total, lost) = ns.get_by_name("r").call(Fill(false)).await.unwrap();
    assert_eq!(total, 0, "the actor starts afresh");
    let lost = lost.expect("the actor is told its state was lost");
    assert!(
        matches!(lost.reason, LostReason::Corrupt(_)),
        "{:?}",
        lost.reason
    );
    assert_eq!(std::fs::read(lost.quarantined_to.unwrap()).unwrap(), bytes);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn idle_actors_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(
        Options::new(dir.path())
            .shards(1)
            .idle_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    let stub = ns.get_by_name("sleepy");
    stub.call(Req::Put("k".into(), "v".into())).await.unwrap();
    let path = ns.path_of(&stub.id()).canonicalize().unwrap();
    let is_open = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
    };
    assert!(is_open());
    let mut closed = false;
    for _ in 0..1000 {
        if !is_open() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the idle actor was never closed");
    // Transparent to callers.
    assert_eq!(
        stub.call(Req::Get("k".into())).await.unwrap(),
        Resp::Value(Some("v".into()))
    );
    runtime.shutdown(GRACE).await;
}
