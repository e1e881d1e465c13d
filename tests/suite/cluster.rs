//! Three `burrow serve --cluster` processes on one PostgreSQL: requests through any node reach
//! the actor's one owner; the owner killed, paused or drained, another node takes over with
//! every acknowledged write (a configuration ledger written over HTTP); concurrent first
//! requests claim once; alarms of a dead node fire elsewhere. Takeover times are printed and
//! checked only against generous bounds. The tests run one at a time (each starts three
//! nodes).

use std::time::{Duration, Instant};

use burrow::identity::InstanceId;
use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::cluster::*;

#[tokio::test]
async fn any_node_reaches_the_owner_and_a_killed_owner_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start().await;
    let instance = InstanceId::new_random();
    assert_eq!(cluster.provision(0, &instance).await, 201);
    let owner = cluster.holder_index(&instance).await;
    // A ledger written through every node in turn.
    let mut ledger = Vec::new();
    for i in 0..9 {
        let (name, value) = (format!("K{i}"), format!("v{i}"));
        assert!(cluster.set(i % 3, &instance, &name, &value).await, "K{i}");
        ledger.push((name, value));
    }
    for via in 0..3 {
        let config = cluster.config(via, &instance).await.expect("served");
        assert_ledger(&config, &ledger);
    }
    assert_eq!(cluster.holder_index(&instance).await, owner, "one owner");
    for i in 0..3 {
        let files = actor_files(&cluster.options[i]);
        assert_eq!(
            files,
            usize::from(i == owner),
            "node{i} opened {files} actor files"
        );
    }
    // Every node lists the cluster's actors from PostgreSQL, with the node holding each.
    for via in 0..3 {
        let listed = cluster.admin(via, "actors").await;
        let actors = listed["actors"].as_array().unwrap();
        assert_eq!(actors.len(), 1, "node{via}: {listed}");
        assert_eq!(actors[0]["name"], format!("i:{instance}"));
        assert_eq!(actors[0]["nodeId"], format!("node{owner}"));
        assert_eq!(cluster.admin(via, "actors/count").await["count"], 1);
        let dead = cluster.admin(via, "incidents?kind=deadAlarm").await;
        assert_eq!(dead["incidents"], json!([]), "node{via}: {dead}");
    }
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut forwards = 0.0;
    for &i in &others {
        forwards += cluster.metric(i, "burrow_cluster_forwards_total").await;
    }
    assert!(
        forwards >= 6.0,
        "calls through the other nodes were forwarded ({forwards})"
    );

    // kill -9 of the owner. With no request at all, its actor's reconcile alarm (due every
    // second) is adopted and fired by another node.
    cluster.nodes[owner].take().unwrap().kill();
    let killed = Instant::now();
    loop {
        let (node, _) = cluster.holder(&instance).await;
        if node.as_deref().is_some_and(|n| n != format!("node{owner}")) {
            break;
        }
        assert!(
            killed.elapsed() < bound(),
            "no node fired the dead owner's alarm within {:?}",
            bound()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "kill -9: the dead owner's alarm fired on another node after {:?} (lease {LEASE:?})",
        killed.elapsed()
    );
    let (config, took) = cluster.served_by(others[0], &instance).await;
    println!("kill -9: served again {took:?} later");
    assert_ledger(&config, &ledger);

    // The dead node comes back with its data directory wiped: nothing is lost.
    std::fs::remove_dir_all(&cluster.options[owner].data_dir).unwrap();
    cluster.nodes[owner] = Some(start(cluster.options[owner].clone()).await);
    assert!(cluster.set(owner, &instance, "AFTER", "wipe").await);
    ledger.push(("AFTER".into(), "wipe".into()));
    for via in cluster.running() {
        assert_ledger(&cluster.config(via, &instance).await.unwrap(), &ledger);
    }
}

#[tokio::test]
async fn a_paused_owner_is_deposed_and_acknowledges_nothing_after() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start().await;
    // Every member is ready: registry, runtime, and its lease held.
    for i in 0..3 {
        let ready = cluster
            .http
            .get(format!("{}/readyz", cluster.url(i)))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(
            body["checks"],
            serde_json::json!({"registry": true, "runtime": true, "cluster": true}),
            "node {i}"
        );
    }
    let instance = InstanceId::new_random();
    assert_eq!(cluster.provision(1, &instance).await, 201);
    let owner = cluster.holder_index(&instance).await;
    let other = (owner + 1) % 3;
    let mut ledger = vec![("BEFORE".to_owned(), "pause".to_owned())];
    assert!(cluster.set(other, &instance, "BEFORE", "pause").await);
    let (_, epoch_before) = cluster.holder(&instance).await;

    let paused = cluster.nodes[owner].as_ref().unwrap();
    paused.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let (config, took) = cluster.served_by(other, &instance).await;
    println!("SIGSTOP: another node served after {took:?} (lease {LEASE:?})");
    assert_ledger(&config, &ledger);
    assert!(cluster.set(other, &instance, "DURING", "pause").await);
    ledger.push(("DURING".into(), "pause".into()));
    let (holder, epoch_after) = cluster.holder(&instance).await;
    assert_ne!(holder.as_deref(), Some(format!("node{owner}").as_str()));
    assert!(epoch_after > epoch_before, "the takeover raised the epoch");
    // Paused for longer than its lease in all.
    tokio::time::sleep((LEASE * 2).saturating_sub(stopped.elapsed())).await;
    paused.signal(Signal::SIGCONT);

    // Whatever reaches the resumed node is served by the new owner (or refused): the write
    // it acknowledges is the new owner's, and nothing the new owner holds is undone.
    let started = Instant::now();
    while !cluster.set(owner, &instance, "AFTER", "resume").await {
        assert!(
            started.elapsed() < bound(),
            "the resumed node never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ledger.push(("AFTER".into(), "resume".into()));
    for via in 0..3 {
        assert_ledger(&cluster.config(via, &instance).await.unwrap(), &ledger);
    }
    assert!(
        cluster
            .metric(owner, "burrow_cluster_leases_lost_total")
            .await
            >= 1.0,
        "the paused node noticed it lost its lease"
    );
    // and closed the actors it held under the lost lease.
    let log = cluster.nodes[owner].as_ref().unwrap().log();
    assert!(
        log.contains("the node lost its lease: closed its actors"),
        "{log}"
    );
}

#[tokio::test]
async fn concurrent_first_requests_claim_once_and_a_drained_node_hands_over_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start().await;
    let instance = InstanceId::new_random();
    // The same first request through every node at once: one claim, one file.
    let mut calls = Vec::new();
    for i in 0..12 {
        let (url, http, instance) = (cluster.url(i % 3), cluster.http.clone(), instance);
        calls.push(tokio::spawn(async move {
            http.post(format!("{url}/api/platform/provision"))
                .header("x-internal-api-key", crate::common::GIVEN_SECRETS[1].1)
                .json(&json!({"userId": "ann", "instanceId": instance.to_string()}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 201),
        "{statuses:?}"
    );
    let (_, epoch) = cluster.holder(&instance).await;
    assert_eq!(epoch, 1, "exactly one claim");
    let files: Vec<usize> = (0..3).map(|i| actor_files(&cluster.options[i])).collect();
    assert_eq!(
        files.iter().sum::<usize>(),
        1,
        "one node opened the actor: {files:?}"
    );

    // Drain: SIGTERM hands the actor over without waiting for the lease.
    let owner = cluster.holder_index(&instance).await;
    assert!(cluster.set(owner, &instance, "BEFORE", "drain").await);
    let mut node = cluster.nodes[owner].take().unwrap();
    let draining = Instant::now();
    assert!(node.terminate(bound()).is_some_and(|s| s.success()));
    let other = (owner + 1) % 3;
    let (config, took) = cluster.served_by(other, &instance).await;
    println!(
        "drain: stopped in {:?}, served elsewhere {took:?} later (lease {LEASE:?})",
        draining.elapsed() - took
    );
    assert_eq!(config["envVars"]["BEFORE"], "drain");
    // No lease wait: the drained node left, which ended its lease at once.
    let client = cluster.db.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT status, lease_expires_at <= clock_timestamp() FROM burrow_node WHERE node_id = $1",
            &[&format!("node{owner}")],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("left".into(), true)
    );
}
