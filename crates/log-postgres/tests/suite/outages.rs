//! `Durability::Replicated` through PostgreSQL outages: stopped, frozen, restarted under load.
//! Each uses a PostgreSQL cluster of its own (fsync and synchronous commit on) and checks that
//! turns fail retryably while it is gone, nothing is half-written, and writes resume after.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Add, Read, actor_file, open, open_with};
use burrow_log_postgres::PgTurnLog;
use burrow_runtime::turn_log::TurnLog;
use burrow_testkit::pg::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_stopped_a_turn_fails_retryably_changes_nothing_and_writes_resume_after() {
    let mut cluster = Cluster::start_durable().unwrap();
    let log: Arc<dyn TurnLog> = Arc::new(
        PgTurnLog::connect(&cluster.url("postgres"), Duration::from_secs(2))
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    let alice = ns.get_by_name("alice");
    alice.call(Add("before".into())).await.unwrap();

    cluster.stop().unwrap();
    let err = alice.call(Add("during".into())).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The local file is unchanged: read it directly while the actor cannot be activated.
    let conn = rusqlite::Connection::open(actor_file(dir.path(), "alice")).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT body FROM items ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec!["before".to_owned()]);
    drop(conn);

    cluster.restart().unwrap();
    let mut resumed = None;
    for _ in 0..50 {
        match alice.call(Add("after".into())).await {
            Ok(n) => {
                resumed = Some(n);
                break;
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(resumed, Some(2), "the failed turn must not count");
    assert_eq!(
        alice.call(Read).await.unwrap(),
        (vec!["before".to_owned(), "after".to_owned()], 2)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_frozen_a_turn_times_out_retryably_and_writes_resume_after() {
    let cluster = Cluster::start_durable().unwrap();
    let log: Arc<dyn TurnLog> = Arc::new(
        PgTurnLog::connect(&cluster.url("postgres"), Duration::from_secs(2))
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path(), &log);
    let alice = ns.get_by_name("alice");
    alice.call(Add("before".into())).await.unwrap();

    cluster.pause().unwrap();
    let started = std::time::Instant::now();
    let err = alice.call(Add("during".into())).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the append timeout bounds the wait ({:?})",
        started.elapsed()
    );
    let conn = rusqlite::Connection::open(actor_file(dir.path(), "alice")).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT body FROM items ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec!["before".to_owned()],
        "nothing was committed locally"
    );
    drop(conn);

    cluster.resume().unwrap();
    // The frozen append may have landed after all (its answer was lost): the next activation
    // learns which from the log. Either way the caller was never told it succeeded, and
    // writes go on.
    let mut resumed = None;
    for _ in 0..50 {
        match alice.call(Add("after".into())).await {
            Ok(n) => {
                resumed = Some(n);
                break;
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let (items, count) = alice.call(Read).await.unwrap();
    assert_eq!(resumed, Some(count));
    assert_eq!(items.first().map(String::as_str), Some("before"));
    assert_eq!(items.last().map(String::as_str), Some("after"));
    runtime.shutdown(Duration::from_secs(5)).await;
    // Whatever the runtime holds is what the log holds.
    let fresh = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(fresh.path(), &log);
    assert_eq!(
        ns.get_by_name("alice").call(Read).await.unwrap(),
        (items, count)
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_actors_writing_through_an_immediate_postgresql_restart_lose_nothing_acknowledged() {
    let mut cluster = Cluster::start_durable().unwrap();
    let pg = PgTurnLog::connect(&cluster.url("postgres"), Duration::from_secs(2))
        .await
        .unwrap();
    let log: Arc<dyn TurnLog> = Arc::new(pg.clone());
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open_with(dir.path(), &log, |o| o.shards(2));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for a in 0..30 {
        let (ns, stop) = (ns.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let item = format!("{a}:{n}");
                match ns
                    .get_by_name(&format!("a{a}"))
                    .call(Add(item.clone()))
                    .await
                {
                    Ok(_) => acknowledged.push(item),
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop_immediately().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ledger = Vec::new();
    for w in writers {
        ledger.push(w.await.unwrap());
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let (statements, appends) = pg.grouping();
    assert!(appends > 0 && statements <= appends);

    // Rebuilt from the log alone, each actor holds every write it acknowledged, in order.
    let elsewhere = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(elsewhere.path(), &log);
    let mut total = 0;
    for (a, acknowledged) in ledger.iter().enumerate() {
        let (items, _) = ns.get_by_name(&format!("a{a}")).call(Read).await.unwrap();
        let mut rest = items.iter();
        for item in acknowledged {
            assert!(
                rest.any(|held| held == item),
                "a{a}: acknowledged {item} is missing or out of order in {items:?}"
            );
        }
        total += acknowledged.len();
    }
    assert!(total > 30, "too little load to mean anything: {total}");
    runtime.shutdown(Duration::from_secs(5)).await;
    eprintln!("{total} acknowledged turns; {appends} appends in {statements} statements");
}
