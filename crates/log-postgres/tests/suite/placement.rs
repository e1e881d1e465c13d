//! Placement against a real PostgreSQL: a node's claims are refused while another live node
//! holds the actor, succeed once its lease runs out, its incarnation is gone or it lets go,
//! and the epoch they raise fences the deposed holder's appends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_log_postgres::PgTurnLog;
use burrow_log_postgres::membership::{Member, NodeConfig, NodeStatus};
use burrow_runtime::ActorId;
use burrow_runtime::turn_log::{AlarmUpdate, Entry, LogError, LogKey, Payload, TurnLog};

fn key(name: &str) -> LogKey {
    LogKey {
        namespace: "lists".into(),
        id: ActorId::for_name("lists", name),
    }
}

async fn base() -> (burrow_testkit::pg::TestDatabase, PgTurnLog) {
    crate::common::fresh_log(Duration::from_secs(5)).await
}

async fn join(log: &PgTurnLog, id: &str, lease: Duration) -> (Member, PgTurnLog) {
    let member = Member::join(
        log,
        NodeConfig {
            node_id: id.into(),
            advertise_url: format!("http://{id}.internal:7000"),
            lease,
        },
    )
    .await
    .unwrap();
    let on_node = log.for_member(&member);
    (member, on_node)
}

async fn append_one(
    log: &PgTurnLog,
    k: &LogKey,
    claim: burrow_runtime::turn_log::Claim,
) -> Result<(), LogError> {
    let e = Entry::after(claim.head, claim.epoch, Payload::Patchset(b"x".to_vec()));
    log.append(k, claim.epoch, claim.head, &[e], &AlarmUpdate::Unchanged)
        .await
        .map(drop)
}

#[tokio::test]
async fn a_live_holder_keeps_its_actor_and_others_are_told_where_it_is() {
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let (_a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", lease).await;
    let k = key("alice");
    let claim = on_a.claim(&k, Some("alice")).await.unwrap();
    assert_eq!(claim.epoch, 1);
    match on_b.claim(&k, Some("alice")).await {
        Err(LogError::Owned {
            node_id,
            advertise_url,
        }) => {
            assert_eq!(node_id, "a");
            assert_eq!(advertise_url, "http://a.internal:7000");
        }
        other => panic!("b claimed a's actor: {other:?}"),
    }
    // The refused claim raised nothing: a appends under its epoch.
    append_one(&on_a, &k, claim).await.unwrap();
    // a claiming again (a re-activation of its own) is allowed and raises the epoch.
    assert_eq!(on_a.claim(&k, None).await.unwrap().epoch, 2);
}

#[tokio::test]
async fn a_holder_whose_lease_ran_out_is_deposed_and_its_appends_are_refused() {
    let (_db, log) = base().await;
    let (_a, on_a) = join(&log, "a", Duration::from_millis(300)).await;
    let (_b, on_b) = join(&log, "b", Duration::from_secs(30)).await;
    let k = key("alice");
    let old = on_a.claim(&k, None).await.unwrap();
    crate::common::until_expired(&log, "a").await;
    let new = on_b.claim(&k, None).await.unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    assert!(matches!(
        append_one(&on_a, &k, old).await,
        Err(LogError::Fenced { .. })
    ));
    append_one(&on_b, &k, new).await.unwrap();
    // The deposed node cannot claim anything while it holds no lease.
    let refused = on_a.claim(&key("bob"), None).await;
    assert!(
        matches!(&refused, Err(LogError::Unavailable(m)) if m.contains("join the cluster again")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_restarted_holder_loses_its_actors_at_once() {
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let (_a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", lease).await;
    let k = key("alice");
    let old = on_a.claim(&k, None).await.unwrap();
    // a restarts: a new incarnation, while the old one's lease would still run for 30 s.
    let (_a2, on_a2) = join(&log, "a", lease).await;
    assert_eq!(on_b.claim(&k, None).await.unwrap().epoch, old.epoch + 1);
    assert!(matches!(
        append_one(&on_a, &k, old).await,
        Err(LogError::Fenced { .. })
    ));
    // The new incarnation is a different holder: b has it now.
    assert!(matches!(
        on_a2.claim(&k, None).await,
        Err(LogError::Owned { node_id, .. }) if node_id == "b"
    ));
}

#[tokio::test]
async fn released_and_left_actors_are_claimed_without_waiting() {
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let (mut a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", lease).await;
    let (k1, k2) = (key("one"), key("two"));
    let c1 = on_a.claim(&k1, None).await.unwrap();
    on_a.claim(&k2, None).await.unwrap();
    // A release under a superseded epoch frees nothing.
    on_a.release(&k1, c1.epoch + 7).await.unwrap();
    assert!(matches!(
        on_b.claim(&k1, None).await,
        Err(LogError::Owned { .. })
    ));
    on_a.release(&k1, c1.epoch).await.unwrap();
    assert_eq!(on_b.claim(&k1, None).await.unwrap().epoch, c1.epoch + 1);
    // A node that left gives up everything it held.
    a.set_status(NodeStatus::Left).await.unwrap();
    on_b.claim(&k2, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_claims_from_three_nodes_have_one_winner() {
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let mut logs = Vec::new();
    let mut members = Vec::new();
    for id in ["a", "b", "c"] {
        let (m, l) = join(&log, id, lease).await;
        members.push(m);
        logs.push(Arc::new(l));
    }
    for round in 0..10 {
        let k = key(&format!("contested {round}"));
        let gate = Arc::new(tokio::sync::Barrier::new(12));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (log, gate, k) = (logs[i % 3].clone(), gate.clone(), k.clone());
                tokio::spawn(async move {
                    gate.wait().await;
                    (i % 3, log.claim(&k, None).await)
                })
            })
            .collect();
        let mut winners = std::collections::BTreeSet::new();
        for t in tasks {
            match t.await.unwrap() {
                (node, Ok(_)) => {
                    winners.insert(node);
                }
                (_, Err(LogError::Owned { .. })) => {}
                (_, Err(e)) => panic!("round {round}: {e}"),
            }
        }
        // Claims of the winning node may repeat (each raising the epoch); no other node wins.
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
    }
}

#[tokio::test]
async fn a_log_without_a_node_claims_as_before() {
    let (_db, log) = base().await;
    let (_a, on_a) = join(&log, "a", Duration::from_secs(30)).await;
    let k = key("alice");
    on_a.claim(&k, None).await.unwrap();
    // Outside cluster mode claims do not look at holders (one runtime per log).
    assert_eq!(log.claim(&k, None).await.unwrap().epoch, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_evicted_on_one_node_is_released_and_served_by_another() {
    use crate::common::{Add, Read, open_with};
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let (_a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", lease).await;
    let (on_a, on_b): (Arc<dyn TurnLog>, Arc<dyn TurnLog>) = (Arc::new(on_a), Arc::new(on_b));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (runtime_a, ns_a) = open_with(dir_a.path(), &on_a, |o| {
        o.idle_timeout(Duration::from_millis(300))
    });
    let (runtime_b, ns_b) = open_with(dir_b.path(), &on_b, |o| o);
    ns_a.get_by_name("alice")
        .call(Add("on a".into()))
        .await
        .unwrap();
    // While a holds the actor, b's activation is refused and names the holder.
    let refused = ns_b.get_by_name("alice").call(Read).await.unwrap_err();
    assert_eq!(refused.kind(), burrow_runtime::ErrorKind::ActiveElsewhere);
    assert_eq!(refused.holder(), Some(("a", "http://a.internal:7000")));
    // Once a evicts it (idle), a releases the claim and b takes the actor over, with a's write.
    let started = Instant::now();
    let count = loop {
        match ns_b.get_by_name("alice").call(Add("on b".into())).await {
            Ok(count) => break count,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                assert_eq!(e.holder(), Some(("a", "http://a.internal:7000")), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("b never got the actor: {e}"),
        }
    };
    println!(
        "b served the actor {:?} after a's last call",
        started.elapsed()
    );
    assert_eq!(count, 2);
    assert_eq!(
        ns_b.get_by_name("alice").call(Read).await.unwrap().0,
        vec!["on a".to_string(), "on b".to_string()]
    );
    runtime_a.shutdown(Duration::from_secs(5)).await;
    runtime_b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_lease_joins_again_and_claims_under_its_new_incarnation() {
    use burrow_log_postgres::membership::Node;
    let cluster = burrow_testkit::pg::Cluster::start().unwrap();
    let log = PgTurnLog::connect(&cluster.url("postgres"), Duration::from_secs(1))
        .await
        .unwrap();
    let lease = Duration::from_millis(600);
    let config = |id: &str| NodeConfig {
        node_id: id.into(),
        advertise_url: format!("http://{id}.internal:7000"),
        lease,
    };
    let mut a = Node::start(&log, config("a")).await.unwrap();
    let b = Node::start(&log, config("b")).await.unwrap();
    let held = key("held");
    let first = a.log().claim(&held, None).await.unwrap();
    assert!(matches!(
        b.log().claim(&held, None).await,
        Err(LogError::Owned { .. })
    ));
    // PostgreSQL freezes for longer than the lease: both nodes lose it, and join again.
    cluster.pause().unwrap();
    tokio::time::sleep(lease * 3).await;
    cluster.resume().unwrap();
    let started = Instant::now();
    let incarnation = tokio::time::timeout(Duration::from_secs(20), a.rejoined(1))
        .await
        .expect("a joined again");
    println!(
        "a joined again as incarnation {incarnation} {:?} after PostgreSQL resumed",
        started.elapsed()
    );
    // a's old incarnation is gone: whoever claims next takes the actor, at a higher epoch, and
    // a's appends under the first claim are refused.
    let next = loop {
        match b.log().claim(&held, None).await {
            Ok(c) => break c,
            // b may still be joining again itself.
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("b never took the actor over: {e}"),
        }
    };
    assert!(next.epoch > first.epoch);
    assert!(matches!(
        append_one(a.log(), &held, first).await,
        Err(LogError::Fenced { .. })
    ));
    // a claims under its new incarnation.
    a.log().claim(&key("fresh"), None).await.unwrap();
    let holder: (String, i64) = {
        let client = cluster.connect("postgres").await.unwrap();
        let row = client
            .query_one(
                "SELECT node_id, node_incarnation FROM burrow_log_actor WHERE actor_id = $1",
                &[&key("fresh").id.to_string()],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(holder, ("a".to_string(), a.incarnation() as i64));
}

#[tokio::test]
async fn releases_and_takeovers_are_announced_to_listeners() {
    use burrow_log_postgres::notify::{PlacementEvent, watch};
    let (_db, log) = base().await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::spawn({
        let log = log.clone();
        async move {
            watch(&log, Duration::from_millis(100), |e| tx.send(e).is_ok()).await;
        }
    });
    let next = async |events: &mut tokio::sync::mpsc::UnboundedReceiver<PlacementEvent>| {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event")
            .expect("the listener runs")
    };
    assert_eq!(next(&mut events).await, PlacementEvent::Connected);
    let lease = Duration::from_millis(600);
    let (_a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", Duration::from_secs(30)).await;
    let k = key("moving");
    // A first claim moves nothing that anyone could remember: no announcement. A release does.
    let claim = on_a.claim(&k, Some("moving")).await.unwrap();
    on_a.release(&k, claim.epoch).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        PlacementEvent::Moved("moving".into())
    );
    // Claimed again by a, then taken over by b once a's lease has run out.
    on_a.claim(&k, Some("moving")).await.unwrap();
    crate::common::until_expired(&log, "a").await;
    on_b.claim(&k, Some("moving")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        PlacementEvent::Moved("moving".into())
    );
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_from_before_its_node_joined_again_never_serves_a_stale_read() {
    use crate::common::{Add, Read, open_with};
    let (_db, log) = base().await;
    let lease = Duration::from_secs(30);
    let (_a, on_a) = join(&log, "a", lease).await;
    let (_b, on_b) = join(&log, "b", lease).await;
    let a_log = on_a.clone();
    let (on_a, on_b): (Arc<dyn TurnLog>, Arc<dyn TurnLog>) = (Arc::new(on_a), Arc::new(on_b));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (runtime_a, ns_a) = open_with(dir_a.path(), &on_a, |o| o);
    let (runtime_b, ns_b) = open_with(dir_b.path(), &on_b, |o| o);
    ns_a.get_by_name("alice")
        .call(Add("on a".into()))
        .await
        .unwrap();
    // a joins again under a new incarnation while its activation stays resident (as one in a
    // turn at the moment of the loss would): its claim died with the old incarnation...
    let again = Member::join(
        &log,
        NodeConfig {
            node_id: "a".into(),
            advertise_url: "http://a.internal:7000".into(),
            lease,
        },
    )
    .await
    .unwrap();
    a_log.rebind(&again);
    // ...so b may take the actor over and acknowledge a write.
    assert_eq!(
        ns_b.get_by_name("alice")
            .call(Add("on b".into()))
            .await
            .unwrap(),
        2
    );
    // a's old activation must not answer from what it held: it is closed and the actor
    // claimed again, which b's live claim refuses.
    match ns_a.get_by_name("alice").call(Read).await {
        Ok((items, _)) => assert!(
            items.contains(&"on b".to_string()),
            "a stale read from an activation that outlived its claim: {items:?}"
        ),
        Err(e) => assert_eq!(e.kind(), burrow_runtime::ErrorKind::ActiveElsewhere, "{e}"),
    }
    runtime_a.shutdown(Duration::from_secs(5)).await;
    runtime_b.shutdown(Duration::from_secs(5)).await;
}
