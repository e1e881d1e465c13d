//! Cluster membership against a real PostgreSQL: incarnations, leases judged by PostgreSQL's
//! clock, and leaving.

use std::time::{Duration, Instant};

use burrow_log_postgres::PgTurnLog;
use burrow_log_postgres::membership::{
    Member, NodeConfig, NodeStatus, RenewError, local_deadline, nodes,
};

async fn log() -> (burrow_testkit::pg::TestDatabase, PgTurnLog) {
    crate::common::fresh_log(Duration::from_secs(5)).await
}

fn node(id: &str, lease: Duration) -> NodeConfig {
    NodeConfig {
        node_id: id.into(),
        advertise_url: format!("http://127.0.0.1:1/{id}"),
        lease,
    }
}

#[tokio::test]
async fn each_start_is_a_new_incarnation_and_ends_the_previous_ones_lease() {
    let (_db, log) = log().await;
    let lease = Duration::from_secs(30);
    let mut first = Member::join(&log, node("a", lease)).await.unwrap();
    assert_eq!(first.incarnation(), 1);
    first.renew().await.unwrap();
    let mut second = Member::join(&log, node("a", lease)).await.unwrap();
    assert_eq!(second.incarnation(), 2);
    // The first incarnation's lease is over although its time has not run out.
    assert_eq!(
        first.renew().await,
        Err(RenewError::Lost {
            node_id: "a".into(),
            incarnation: 1
        })
    );
    second.renew().await.unwrap();
    let other = Member::join(&log, node("b", lease)).await.unwrap();
    assert_eq!(other.incarnation(), 1, "incarnations count per node");
    let rows = nodes(&log).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|n| (n.node_id.as_str(), n.incarnation, n.status, n.lease_running))
            .collect::<Vec<_>>(),
        vec![
            ("a", 2, NodeStatus::Alive, true),
            ("b", 1, NodeStatus::Alive, true)
        ]
    );
    assert_eq!(rows[0].advertise_url, "http://127.0.0.1:1/a");
}

#[tokio::test]
async fn a_renewal_moves_the_lease_and_the_local_deadline() {
    let (_db, log) = log().await;
    let lease = Duration::from_secs(20);
    let before_join = Instant::now();
    let mut member = Member::join(&log, node("a", lease)).await.unwrap();
    // The deadline counts from before the join was sent, never from its answer.
    assert!(member.deadline() <= local_deadline(Instant::now(), lease));
    assert!(member.deadline() >= local_deadline(before_join, lease));
    assert!(member.holds_lease());
    let expires = nodes(&log).await.unwrap()[0].lease_expires_at_ms;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let deadline = member.deadline();
    let sent = Instant::now();
    let moved = member.renew().await.unwrap();
    assert!(moved > deadline && moved <= local_deadline(Instant::now(), lease));
    assert!(moved >= local_deadline(sent, lease));
    assert!(nodes(&log).await.unwrap()[0].lease_expires_at_ms > expires);
}

#[tokio::test]
async fn a_lease_that_ran_out_by_postgresqls_clock_cannot_be_renewed() {
    let (_db, log) = log().await;
    let mut member = Member::join(&log, node("a", Duration::from_millis(200)))
        .await
        .unwrap();
    crate::common::until_expired(&log, "a").await;
    assert!(
        !member.holds_lease(),
        "the local deadline passed before PostgreSQL's"
    );
    assert_eq!(
        member.renew().await,
        Err(RenewError::Lost {
            node_id: "a".into(),
            incarnation: 1
        })
    );
    // Joining again is the way back.
    let mut again = Member::join(&log, node("a", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(again.incarnation(), 2);
    again.renew().await.unwrap();
}

#[tokio::test]
async fn leaving_ends_the_lease_at_once_and_draining_keeps_it() {
    let (_db, log) = log().await;
    let lease = Duration::from_secs(30);
    let mut member = Member::join(&log, node("a", lease)).await.unwrap();
    member.set_status(NodeStatus::Draining).await.unwrap();
    let row = nodes(&log).await.unwrap().remove(0);
    assert_eq!(
        (row.status, row.lease_running),
        (NodeStatus::Draining, true)
    );
    // A draining node's lease is not renewed: it is on its way out.
    assert!(matches!(member.renew().await, Err(RenewError::Lost { .. })));
    member.set_status(NodeStatus::Left).await.unwrap();
    let row = nodes(&log).await.unwrap().remove(0);
    assert_eq!((row.status, row.lease_running), (NodeStatus::Left, false));
    assert!(!member.holds_lease());
}

#[tokio::test]
async fn an_empty_node_id_is_refused_and_nothing_is_written() {
    let (_db, log) = log().await;
    let refused = Member::join(&log, node("", Duration::from_secs(1))).await;
    assert!(refused.unwrap_err().to_string().contains("node id"));
    assert!(nodes(&log).await.unwrap().is_empty());
}

#[test]
fn the_local_deadline_allows_for_drift_and_a_margin() {
    let sent = Instant::now();
    // 2 s: 5 % drift (100 ms) and a twentieth as margin (100 ms).
    assert_eq!(
        local_deadline(sent, Duration::from_secs(2)),
        sent + Duration::from_millis(1_800)
    );
    // 60 s: the margin stops at 500 ms.
    assert_eq!(
        local_deadline(sent, Duration::from_secs(60)),
        sent + Duration::from_millis(56_500)
    );
    // Always before PostgreSQL's expiry, whatever the lease.
    for ms in [1u64, 10, 100, 1_000, 10_000, 100_000] {
        assert!(local_deadline(sent, Duration::from_millis(ms)) < sent + Duration::from_millis(ms));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_holds_the_lease_while_postgresql_answers_and_reports_its_loss_when_it_cannot() {
    use burrow_log_postgres::membership::{Keeper, LeaseState};
    let cluster = burrow_testkit::pg::Cluster::start().unwrap();
    let log = PgTurnLog::connect(&cluster.url("postgres"), Duration::from_secs(1))
        .await
        .unwrap();
    let lease = Duration::from_millis(900);
    let member = Member::join(&log, node("a", lease)).await.unwrap();
    let first = member.deadline();
    let mut keeper = Keeper::spawn(member);
    // Three leases long, the keeper keeps renewing: the lease is held and moves forward.
    tokio::time::sleep(lease * 3).await;
    match keeper.state() {
        LeaseState::Held(deadline) => assert!(deadline > first + lease),
        LeaseState::Lost => panic!("the lease was lost with PostgreSQL answering"),
    }
    assert!(nodes(&log).await.unwrap()[0].lease_running);
    // PostgreSQL stops answering: the keeper reports the loss by the local deadline.
    cluster.pause().unwrap();
    let paused = Instant::now();
    tokio::time::timeout(lease * 5, keeper.lost())
        .await
        .expect("the loss was reported");
    println!("lease lost {:?} after PostgreSQL froze", paused.elapsed());
    cluster.resume().unwrap();
    assert_eq!(keeper.state(), LeaseState::Lost, "a lost lease stays lost");
}
