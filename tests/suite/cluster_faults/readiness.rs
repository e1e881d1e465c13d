//! `/readyz` in a cluster follows what the node can do: cut off from PostgreSQL it holds no
//! lease and reaches no registry, says so with 503 and both reasons, while the other nodes stay
//! ready; healed, it is ready again without a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Run;
use super::proxy::Link;
use crate::common::cluster::{LEASE, bound};

async fn readyz(run: &Run, n: usize) -> (u16, Value) {
    let response = run
        .http
        .get(format!("{}/readyz", run.url(n)))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Polls node `n`'s readiness until `done` holds for it.
async fn until(run: &Run, n: usize, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + bound();
    loop {
        let (status, body) = readyz(run, n).await;
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "node{n} never {what}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// Four workers, as the fault run: the proxies run on this runtime while nodes start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_follows_the_lease_and_the_registry() {
    let _one = crate::common::cluster::ONE_AT_A_TIME.lock().await;
    let run = Run::start(&[]).await;
    let all = json!({"registry": true, "runtime": true, "cluster": true});
    for n in 0..3 {
        assert_eq!(
            readyz(&run, n).await,
            (200, json!({"status": "ready", "checks": all}))
        );
    }

    run.proxies[0].set(Link::Blackhole);
    let cut = Instant::now();
    let body = until(&run, 0, "lost its lease", |status, body| {
        status == 503 && body["checks"]["cluster"] == false
    })
    .await;
    assert!(
        cut.elapsed() >= LEASE / 2,
        "unready before its lease could end: {body}"
    );
    assert_eq!(body["status"], "not ready");
    assert_eq!(
        body["checks"],
        json!({"registry": false, "runtime": true, "cluster": false})
    );
    let reasons: Vec<&str> = body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("registry: ")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("cluster: ")),
        "{reasons:?}"
    );
    for n in 1..3 {
        assert_eq!(readyz(&run, n).await.0, 200, "node{n} is not cut off");
    }

    run.proxies[0].set(Link::Pass);
    until(&run, 0, "ready again", |status, _| status == 200).await;
}
