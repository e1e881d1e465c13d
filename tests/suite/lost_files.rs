//! Lost and damaged actor files, against the binary and a PostgreSQL registry: deleted,
//! truncated to zero, or overwritten with garbage while the server is down. The next call
//! restores each instance from the registry by its own name, the damaged bytes stay on disk in
//! quarantine, the restored state says its configuration was lost, and the running sandbox is
//! re-bound rather than duplicated.

use crate::common::walk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use burrow::identity::{ActorName, InstanceId, UserId};
use burrow_client::{PlatformClient, ProvisionRequest};
use burrow_testkit::server::{BurrowProcess, ServeOptions, sandboxes};
use serde_json::Value;

/// Where the runtime keeps an instance actor's file.
fn actor_file(data: &Path, name: &ActorName) -> PathBuf {
    let id = burrow::runtime::ActorId::for_name(burrow::instance::NAMESPACE, &name.to_string());
    let hex = id.to_string();
    data.join("runtime/actors")
        .join(burrow::instance::NAMESPACE)
        .join(&hex[..2])
        .join(format!("{hex}.db"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_truncated_and_garbled_files_are_restored_and_their_sandboxes_rebound() {
    let db = burrow_testkit::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options =
        ServeOptions::new(dir.path().join("data")).env("BURROW_RECONCILE_JITTER_MS", 0);
    options.database_url = Some(db.url().to_owned());
    let mut process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));
    let org = client
        .create_organization("Damage Inc", None)
        .await
        .unwrap();
    let alice: UserId = "alice".parse().unwrap();
    let bob: UserId = "bob".parse().unwrap();
    let keyed = InstanceId::new_random();
    let org_instance = InstanceId::new_random();
    // (user, instance id, what happens to its file, expected restore source)
    let cases = [
        (alice.clone(), Some(keyed), "delete", "instanceId"),
        (bob.clone(), None, "truncate", "sandboxId"),
        (alice.clone(), Some(org_instance), "garbage", "instanceId"),
    ];
    let garbage = vec![0x5Au8; 16 * 1024];
    let mut before = Vec::new();
    for (user, instance, _, _) in &cases {
        let mut request = ProvisionRequest::new(user);
        request.instance_id = *instance;
        if *instance == Some(org_instance) {
            request.org_id = Some(org);
        }
        request
            .env_vars
            .insert("KEPT_UNTIL_LOST".into(), "1".into());
        client.provision(&request).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = client.status(user, *instance).await.unwrap();
            if s.status.as_deref() == Some("running") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let debug = client.debug_status(user, *instance).await.unwrap();
        before.push(debug["machineId"].as_str().unwrap().to_owned());
    }
    let pids_before: Vec<i32> = {
        let mut p: Vec<i32> = sandboxes(process.data_dir())
            .iter()
            .map(|s| s.pid)
            .collect();
        p.sort();
        p
    };
    assert_eq!(pids_before.len(), 3);

    // The server stops (actors closed), and the files are damaged meanwhile.
    assert!(
        process
            .terminate(Duration::from_secs(30))
            .unwrap()
            .success()
    );
    for (user, instance, damage, _) in &cases {
        let name = match instance {
            Some(id) => ActorName::Instance(*id),
            None => ActorName::Legacy(user.clone()),
        };
        let file = actor_file(process.data_dir(), &name);
        assert!(file.exists(), "{}", file.display());
        let _ = std::fs::remove_file(format!("{}-wal", file.display()));
        match *damage {
            "delete" => std::fs::remove_file(&file).unwrap(),
            "truncate" => std::fs::File::create(&file).map(drop).unwrap(),
            _ => std::fs::write(&file, &garbage).unwrap(),
        }
    }
    process.restart().await.unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));

    for ((user, instance, damage, source), machine) in cases.iter().zip(&before) {
        let status = client.status(user, *instance).await.unwrap();
        assert_eq!(
            status.status.as_deref(),
            Some("running"),
            "{damage}: {status:?}"
        );
        assert_eq!(
            status.env_var_count, 0,
            "{damage}: configuration cannot come back"
        );
        let debug: Value = client.debug_status(user, *instance).await.unwrap();
        assert_eq!(debug["restoredFrom"], *source, "{damage}: {debug}");
        assert_eq!(debug["configurationLost"], true, "{damage}");
        assert_eq!(
            debug["machineId"].as_str(),
            Some(machine.as_str()),
            "{damage}: not re-bound"
        );
        if *instance == Some(org_instance) {
            assert_eq!(
                debug["orgId"],
                org.to_string(),
                "the organisation came back with it"
            );
        }
        // A start finds the healthy sandbox and starts nothing.
        assert!(!client.start(user, *instance, false).await.unwrap());
    }
    let mut pids_after: Vec<i32> = sandboxes(process.data_dir())
        .iter()
        .map(|s| s.pid)
        .collect();
    pids_after.sort();
    assert_eq!(
        pids_after, pids_before,
        "a sandbox was replaced or duplicated"
    );

    // The damaged bytes are kept beside the actors, never deleted.
    let quarantined: Vec<PathBuf> = walk(&process.data_dir().join("runtime"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("quarantined"))
        .collect();
    assert!(
        quarantined
            .iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| b == garbage)),
        "the garbage is not in quarantine: {quarantined:?}"
    );
    assert!(
        quarantined
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 0)),
        "the truncated file is not in quarantine: {quarantined:?}"
    );

    // And the admin API lists both moves, from the runtime's catalog (no replicated log here).
    let actor = |user: &UserId, instance: Option<InstanceId>| {
        let name = match instance {
            Some(id) => ActorName::Instance(id),
            None => ActorName::Legacy(user.clone()),
        };
        burrow::runtime::ActorId::for_name(burrow::instance::NAMESPACE, &name.to_string())
            .to_string()
    };
    let admin = burrow::server::tokens::issue(
        &process.key("tokenSecret"),
        &"root".parse().unwrap(),
        true,
        Duration::from_secs(600),
    );
    let listed: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/admin/incidents?kind=quarantined",
            process.url()
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen: Vec<(String, String)> = listed["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert!(
                quarantined.contains(&PathBuf::from(i["movedTo"].as_str().unwrap())),
                "{i}"
            );
            (
                i["actorId"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (actor(&bob, None), "empty".to_owned()),
        (actor(&alice, Some(org_instance)), "corrupt".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{listed}");
}
