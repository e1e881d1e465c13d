//! Sandboxes across a cluster (three real nodes, real sandboxes, one PostgreSQL): a sandbox runs
//! on the node that started it and is reached, stopped and destroyed through any other; when
//! its node dies a start brings up a new one on a live node, and the dead node, back, removes
//! its orphan — one sandbox per instance at the end, counted as processes.

use std::time::{Duration, Instant};

use crate::common::cluster::*;
use burrow::identity::InstanceId;
use burrow_testkit::server::sandboxes;
use serde_json::json;

/// The running sandbox processes of `instance` on every node (running or not).
fn processes(cluster: &Cluster, instance: &InstanceId) -> Vec<(usize, i32)> {
    let sandbox = burrow::identity::SandboxId::InstanceKeyed(*instance).to_string();
    (0..3)
        .flat_map(|i| {
            sandboxes(&cluster.options[i].data_dir)
                .into_iter()
                .filter(|s| s.sandbox_id == sandbox)
                .map(move |s| (i, s.pid))
        })
        .collect()
}

async fn platform(
    cluster: &Cluster,
    via: usize,
    route: &str,
    instance: &InstanceId,
) -> serde_json::Value {
    let response = cluster
        .http
        .post(format!(
            "{}/api/platform/{route}?instanceId={instance}",
            cluster.url(via)
        ))
        .header("x-internal-api-key", crate::common::GIVEN_SECRETS[1].1)
        .json(&json!({"userId": "ann", "skipCooldown": true}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{route} via node{via}: {status} {body}"
    );
    body
}

async fn status(cluster: &Cluster, via: usize, instance: &InstanceId) -> Option<String> {
    let response = cluster
        .http
        .get(format!(
            "{}/api/user/status?instanceId={instance}",
            cluster.url(via)
        ))
        .bearer_auth(token())
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["status"].as_str().map(str::to_owned)
}

async fn until_status(
    cluster: &Cluster,
    via: usize,
    instance: &InstanceId,
    wanted: &str,
) -> Duration {
    let started = Instant::now();
    while status(cluster, via, instance).await.as_deref() != Some(wanted) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{instance} never {wanted} (via node{via}): {:?}",
            status(cluster, via, instance).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

async fn proxied(cluster: &Cluster, via: usize, instance: &InstanceId) -> reqwest::StatusCode {
    cluster
        .http
        .get(format!("{}/i/{instance}/hello", cluster.url(via)))
        .bearer_auth(token())
        .send()
        .await
        .unwrap()
        .status()
}

/// A WebSocket through node `via` to the sandbox, which echoes.
async fn echoed(cluster: &Cluster, via: usize, instance: &InstanceId) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!(
        "{}/i/{instance}/socket",
        cluster.url(via).replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token()).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let message = Message::text(format!("through node{via}"));
    socket.send(message.clone()).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        message,
        "via node{via}"
    );
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const LIFECYCLE: [(&str, &str); 3] = [
    ("BURROW_RECONCILE_RUNNING_MS", "500"),
    ("BURROW_UNHEALTHY_CHECKS", "2"),
    ("BURROW_RECOVERY_COOLDOWN_MS", "0"),
];

#[tokio::test]
async fn a_sandbox_is_reached_from_every_node_and_replaced_when_its_node_dies() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start_with(&LIFECYCLE).await;
    let instance = InstanceId::new_random();
    assert_eq!(cluster.provision(0, &instance).await, 201);
    until_status(&cluster, 1, &instance, "running").await;
    let host = processes(&cluster, &instance);
    assert_eq!(host.len(), 1, "one sandbox: {host:?}");
    let host = host[0].0;
    // The proxy reaches it through every node, the ones that do not host it included, for
    // requests and WebSockets alike.
    for via in 0..3 {
        echoed(&cluster, via, &instance).await;
        assert_eq!(
            proxied(&cluster, via, &instance).await,
            200,
            "via node{via}"
        );
    }

    // Its node dies (kill -9: the sandbox process stays, orphaned; the handle is kept, since
    // dropping it would kill the sandboxes in its data directory).
    let mut dead = cluster.nodes[host].take().unwrap();
    dead.kill();
    assert_eq!(
        processes(&cluster, &instance).len(),
        1,
        "the orphan runs on"
    );
    let other = (host + 1) % 3;
    let took = until_status(&cluster, other, &instance, "stopped").await;
    println!("the dead node's sandbox was reported stopped after {took:?}");
    platform(&cluster, other, "start", &instance).await;
    until_status(&cluster, other, &instance, "running").await;
    let now = processes(&cluster, &instance);
    assert!(
        now.iter().any(|(node, _)| *node != host),
        "a new sandbox on a live node: {now:?}"
    );
    assert_eq!(proxied(&cluster, other, &instance).await, 200);

    assert_eq!(
        processes(&cluster, &instance).len(),
        2,
        "the orphan and its replacement"
    );
    // The dead node returns and removes its orphan: one sandbox per instance.
    dead.restart().await.unwrap();
    cluster.nodes[host] = Some(dead);
    until("the orphan removed", || async {
        processes(&cluster, &instance).len() == 1
    })
    .await;
    let left = processes(&cluster, &instance);
    assert_ne!(left[0].0, host, "the live node's sandbox stays: {left:?}");
    assert_eq!(proxied(&cluster, host, &instance).await, 200);
}

#[tokio::test]
async fn stop_and_destroy_through_other_nodes_reach_the_host_even_after_it_was_down() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start_with(&LIFECYCLE).await;
    let (first, second) = (InstanceId::new_random(), InstanceId::new_random());
    for instance in [&first, &second] {
        assert_eq!(cluster.provision(0, instance).await, 201);
        until_status(&cluster, 0, instance, "running").await;
    }
    // Destroy through a node that does not host the sandbox.
    let host = processes(&cluster, &first)[0].0;
    platform(&cluster, (host + 1) % 3, "destroy", &first).await;
    until("the destroyed instance's sandbox gone", || async {
        processes(&cluster, &first).is_empty()
    })
    .await;

    // A stop while the hosting node is down takes effect when it rejoins.
    let host = processes(&cluster, &second)[0].0;
    let other = (host + 1) % 3;
    let mut dead = cluster.nodes[host].take().unwrap();
    dead.kill();
    until_status(&cluster, other, &second, "stopped").await;
    platform(&cluster, other, "stop", &second).await;
    assert_eq!(
        processes(&cluster, &second).len(),
        1,
        "still running while its node is down"
    );
    dead.restart().await.unwrap();
    cluster.nodes[host] = Some(dead);
    until("the stop carried out", || async {
        processes(&cluster, &second).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_paused_host_removes_its_orphan_when_it_rejoins() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_with(&LIFECYCLE).await;
    let instance = InstanceId::new_random();
    assert_eq!(cluster.provision(0, &instance).await, 201);
    until_status(&cluster, 0, &instance, "running").await;
    let host = processes(&cluster, &instance)[0].0;
    let other = (host + 1) % 3;
    // Paused past its lease: its sandbox is not trusted any more and is replaced.
    let paused = cluster.nodes[host].as_ref().unwrap();
    paused.signal(nix::sys::signal::Signal::SIGSTOP);
    until_status(&cluster, other, &instance, "stopped").await;
    platform(&cluster, other, "start", &instance).await;
    until_status(&cluster, other, &instance, "running").await;
    assert_eq!(processes(&cluster, &instance).len(), 2);
    // Resumed, it finds its lease lost, joins again, and removes the orphan.
    paused.signal(nix::sys::signal::Signal::SIGCONT);
    until("the orphan removed", || async {
        processes(&cluster, &instance).len() == 1
    })
    .await;
    assert_ne!(processes(&cluster, &instance)[0].0, host);
}
