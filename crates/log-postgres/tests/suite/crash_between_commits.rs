//! A process killed after the log took a turn's entry but before its own file committed it:
//! the next activation applies the entry the file missed. The window is held open with
//! `BURROW_FAULT_PAUSE_AFTER_APPEND_MS`, read once per process, so the victim is a child
//! process of this test binary, killed with SIGKILL.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Add, Read, actor_file, open, quarantined};
use burrow_log_postgres::PgTurnLog;
use burrow_runtime::ActorId;
use burrow_runtime::turn_log::{LogKey, TurnLog};
use burrow_testkit::pg::fresh_database;

const CHILD: &str = "BURROW_TEST_CRASH_CHILD";
const URL: &str = "BURROW_TEST_CRASH_URL";
const DIR: &str = "BURROW_TEST_CRASH_DIR";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_the_log_took_but_the_file_missed_is_applied_at_the_next_activation() {
    let db = fresh_database().await;
    let log: Arc<dyn TurnLog> = Arc::new(
        PgTurnLog::connect(db.url(), Duration::from_secs(3))
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    // The binary names a test by its path below the crate: `crash_between_commits::…`.
    let child_test = format!(
        "{}::child_appends_then_pauses",
        module_path!().split_once("::").unwrap().1
    );
    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                child_test.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env(URL, db.url())
            .env(DIR, dir.path())
            .env("BURROW_FAULT_PAUSE_AFTER_APPEND_MS", "60000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Entry 1 is the image that starts the actor's log; entry 2 is the turn, paused after
    // the append and before the local commit.
    let key = LogKey {
        namespace: "ledger".into(),
        id: ActorId::for_name("ledger", "alice"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, head)) = log.head(&key).await.unwrap()
            && head.seq == 2
        {
            break;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        assert!(
            Instant::now() < deadline,
            "the child never appended its turn"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    // The window was real: the file stops at entry 1.
    let file = actor_file(dir.path(), "alice");
    let seq: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row(
            "SELECT value FROM _burrow_meta WHERE key = 'log_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq, 1);

    let (runtime, ns) = open(dir.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (vec!["acknowledged by the log".to_owned()], 1)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    assert!(
        quarantined(dir.path()).is_empty(),
        "a file only behind is never quarantined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_appends_then_pauses() {
    if std::env::var(CHILD).is_err() {
        return; // run by the test above, in a child with the fault set
    }
    let log: Arc<dyn TurnLog> = Arc::new(
        PgTurnLog::connect(&std::env::var(URL).unwrap(), Duration::from_secs(3))
            .await
            .unwrap(),
    );
    let dir = std::path::PathBuf::from(std::env::var(DIR).unwrap());
    let (_runtime, ns) = open(&dir, &log);
    // Never returns: the commit pauses after the append until the parent kills this process.
    let _ = ns
        .get_by_name("alice")
        .call(Add("acknowledged by the log".into()))
        .await;
    unreachable!("the pause outlasts the parent's patience");
}
