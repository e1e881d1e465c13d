//! Sandboxes are machines: they keep running across a server stop or crash, and a restarted
//! server reaches them again without starting new ones.

use std::time::Duration;

use crate::common::*;
use burrow::identity::InstanceId;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_server_keeps_every_instance_and_its_running_sandbox_reachable() {
    let mut s = serve().await;
    let alice = user("alice");
    let keyed = InstanceId::new_random();
    s.running(&alice, Some(keyed)).await;
    s.running(&alice, None).await;
    let mut before = s.process.sandbox_pids();
    before.sort();
    assert_eq!(before.len(), 2);

    for (round, clean) in [(1, true), (2, false)] {
        if clean {
            let exit = s
                .process
                .terminate(Duration::from_secs(30))
                .expect("SIGTERM drains and exits");
            assert!(
                exit.success(),
                "round {round}: {exit:?}\n{}",
                s.process.log()
            );
        } else {
            s.process.kill();
        }
        let mut alive = s.process.sandbox_pids();
        alive.sort();
        assert_eq!(
            alive, before,
            "round {round}: sandboxes died with the server"
        );
        s.process.restart().await.unwrap();
        s.client = burrow_client::PlatformClient::new(s.url(), s.process.key("internalApiKey"));
        for instance in [Some(keyed), None] {
            let status = s.client.status(&alice, instance).await.unwrap();
            assert_eq!(
                status.status.as_deref(),
                Some("running"),
                "round {round}: {status:?}"
            );
        }
        let echoed: Value = s
            .http
            .get(format!("{}/i/{keyed}/after-restart", s.url()))
            .bearer_auth(s.token("alice", false))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echoed["path"], "/after-restart", "round {round}");
        // A start finds the healthy sandbox and starts nothing.
        assert!(!s.client.start(&alice, Some(keyed), false).await.unwrap());
        let mut after = s.process.sandbox_pids();
        after.sort();
        assert_eq!(
            after, before,
            "round {round}: sandboxes were replaced or duplicated"
        );
    }
}
