//! Registry outages against the binary: a dedicated PostgreSQL is stopped, and separately
//! frozen with SIGSTOP, during provisioning and during restores. Callers get 503 with
//! `Retry-After` within the registry timeout, nothing is half-written, and every operation
//! succeeds when retried once PostgreSQL is back — without restarting Burrow.

use std::time::{Duration, Instant};

use burrow::identity::{InstanceId, UserId};
use burrow_client::{ClientError, PlatformClient, ProvisionRequest};
use burrow_testkit::pg::Cluster;
use burrow_testkit::server::{BurrowProcess, ServeOptions};

const REGISTRY_TIMEOUT_MS: u64 = 1_000;

/// Asserts a 503 with Retry-After, answered within the registry timeout (plus slack for a
/// loaded machine: the point is that callers are not left hanging).
fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, ClientError>,
    asked: Instant,
) {
    match result {
        Err(ClientError::Api {
            status: 503,
            retry_after: Some(_),
            ..
        }) => {}
        other => panic!("{what}: expected 503 with Retry-After, got {other:?}"),
    }
    assert!(
        asked.elapsed() < Duration::from_millis(REGISTRY_TIMEOUT_MS) * 8,
        "{what}: answered after {:?}",
        asked.elapsed()
    );
}

/// `/readyz`: its status and body.
async fn readyz(process: &BurrowProcess) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/readyz", process.url()))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Retries `op` until it succeeds (PostgreSQL may take a moment to accept connections).
async fn eventually<T, F: std::future::Future<Output = Result<T, ClientError>>>(
    what: &str,
    mut op: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline && e.status() == Some(503) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

async fn wait_running(client: &PlatformClient, user: &UserId, instance: Option<InstanceId>) {
    eventually("running", || async {
        let s = client.status(user, instance).await?;
        if s.status.as_deref() == Some("running") {
            Ok(())
        } else {
            Err(ClientError::Api {
                status: 503,
                error: format!("{s:?}"),
                details: None,
                retry_after: None,
            })
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_answer_503_write_nothing_and_heal_without_a_restart() {
    let mut cluster = Cluster::start().unwrap();
    cluster
        .connect("postgres")
        .await
        .unwrap()
        .batch_execute("CREATE DATABASE burrow")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path().join("data"))
        .env("BURROW_REGISTRY_TIMEOUT_MS", REGISTRY_TIMEOUT_MS)
        .env("BURROW_RECONCILE_JITTER_MS", 0);
    options.database_url = Some(cluster.url("burrow"));
    let mut process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));
    let alice: UserId = "alice".parse().unwrap();
    let bob: UserId = "bob".parse().unwrap();
    let keyed = InstanceId::new_random();
    let mut request = ProvisionRequest::new(&alice);
    request.instance_id = Some(keyed);
    client.provision(&request).await.unwrap();
    client
        .provision(&ProvisionRequest::new(&bob))
        .await
        .unwrap();
    wait_running(&client, &alice, Some(keyed)).await;
    wait_running(&client, &bob, None).await;

    // Lose bob's actor file while the server is down, so that his next call must restore.
    assert!(
        process
            .terminate(Duration::from_secs(30))
            .unwrap()
            .success()
    );
    let runtime = process.data_dir().join("runtime/actors/instance");
    let id = burrow::runtime::ActorId::for_name(burrow::instance::NAMESPACE, &format!("u:{bob}"))
        .to_string();
    let bob_file = runtime.join(&id[..2]).join(format!("{id}.db"));
    std::fs::remove_file(&bob_file).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", bob_file.display()));
    process.restart().await.unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));

    for outage in ["stopped", "frozen"] {
        let (status, ready) = readyz(&process).await;
        assert_eq!(status, 200, "{outage}: ready before the outage: {ready}");
        match outage {
            "stopped" => cluster.stop().unwrap(),
            _ => cluster.pause().unwrap(),
        }
        // Not ready, for the registry's reason alone, answered within the readiness bound.
        let asked = Instant::now();
        let (status, ready) = readyz(&process).await;
        assert_eq!(status, 503, "{outage}: {ready}");
        assert_eq!(
            ready["checks"],
            serde_json::json!({"registry": false, "runtime": true}),
            "{outage}: {ready}"
        );
        let reasons = ready["reasons"].as_array().unwrap();
        assert!(
            reasons.len() == 1 && reasons[0].as_str().unwrap().starts_with("registry: "),
            "{outage}: {ready}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "{outage}: readyz took {:?}",
            asked.elapsed()
        );
        // Provisioning a new instance, keyed and legacy.
        let new_keyed = InstanceId::new_random();
        let mut request = ProvisionRequest::new(&alice);
        request.instance_id = Some(new_keyed);
        let asked = Instant::now();
        assert_unavailable(
            &format!("{outage}: provision"),
            client.provision(&request).await,
            asked,
        );
        let carol: UserId = format!("carol-{outage}").parse().unwrap();
        let asked = Instant::now();
        assert_unavailable(
            &format!("{outage}: legacy provision"),
            client.provision(&ProvisionRequest::new(&carol)).await,
            asked,
        );
        // A restore (bob's first call after his file was lost; only in the first outage).
        if outage == "stopped" {
            let asked = Instant::now();
            assert_unavailable("restore", client.status(&bob, None).await, asked);
        }
        // An instance-keyed route checks ownership in the registry the first time this server
        // process sees the instance (503 while it is down); after that the owner is known
        // and the instance stays reachable through the outage.
        let asked = Instant::now();
        if outage == "stopped" {
            assert_unavailable(
                "first sight of an instance",
                client.status(&alice, Some(keyed)).await,
                asked,
            );
        } else {
            let status = client.status(&alice, Some(keyed)).await.unwrap();
            assert_eq!(
                status.status.as_deref(),
                Some("running"),
                "a known instance during the outage"
            );
        }

        match outage {
            "stopped" => cluster.restart().unwrap(),
            _ => cluster.resume().unwrap(),
        }
        // Nothing was half-written: the refused instance does not exist…
        eventually("status of the refused instance", || async {
            match client.status(&alice, Some(new_keyed)).await {
                Err(ClientError::Api { status: 404, .. }) => Ok(()),
                Err(e) => Err(e),
                Ok(s) => panic!("{outage}: a refused provision left an instance behind: {s:?}"),
            }
        })
        .await;
        // …the server is ready again without a restart…
        let deadline = Instant::now() + Duration::from_secs(60);
        while readyz(&process).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "{outage}: never ready again: {:?}",
                readyz(&process).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // …and everything succeeds when retried, with the same Burrow process.
        let created = eventually("provision", || client.provision(&request)).await;
        assert!(created.created, "{outage}");
        let legacy_request = ProvisionRequest::new(&carol);
        let created = eventually("legacy provision", || client.provision(&legacy_request)).await;
        assert!(created.created, "{outage}");
        wait_running(&client, &alice, Some(new_keyed)).await;
        wait_running(&client, &carol, None).await;
        wait_running(&client, &alice, Some(keyed)).await;
        let bob_status = eventually("restore", || client.debug_status(&bob, None)).await;
        assert_eq!(bob_status["restoredFrom"], "sandboxId", "{bob_status}");
        assert_eq!(
            bob_status["status"], "running",
            "bob's sandbox was not re-bound: {bob_status}"
        );
    }
    // Six instances (two from the start, two per outage), one sandbox each.
    let mut ids: Vec<String> = burrow_testkit::server::sandboxes(process.data_dir())
        .into_iter()
        .map(|s| s.sandbox_id)
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(
        (total, ids.len()),
        (6, 6),
        "a sandbox is missing or duplicated: {ids:?}"
    );
}
