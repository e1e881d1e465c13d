//! The instance lifecycle against real sandbox processes, a real SQLite registry and the real
//! runtime.

use std::time::{Duration, Instant};

use crate::common::*;
use burrow_identity::ActorName;
use burrow_instance::{ConfigPatch, InstanceError, Restarted};
use burrow_restore::Registry as _;
use burrow_state::{RestoreSource, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_keyed_and_legacy_side_by_side_through_the_whole_lifecycle() {
    let h = Harness::start(quiet_lifecycle()).await;
    let alice = user("alice");
    let (instance_id, keyed) = instance_name();
    let legacy = ActorName::Legacy(alice.clone());

    let p = h.get(&keyed).provision(provision(&alice)).await.unwrap();
    assert!(p.created);
    assert_eq!(p.instance_id, Some(instance_id));
    assert_eq!(p.sandbox_id, instance_id.sandbox_id());
    let p = h.get(&legacy).provision(provision(&alice)).await.unwrap();
    assert!(p.created);
    assert_eq!(p.instance_id, None);
    assert_eq!(p.sandbox_id, alice.legacy_sandbox_id());
    // Provisioning again changes nothing of the lifecycle.
    let again = h.get(&keyed).provision(provision(&alice)).await.unwrap();
    assert!(!again.created);

    let mut pids = Vec::new();
    for name in [&keyed, &legacy] {
        let view = h.wait_for(name, Status::Running).await;
        let machine = h
            .provider
            .machines()
            .unwrap()
            .into_iter()
            .find(|m| Some(&m.id) == view.machine_id.as_ref())
            .unwrap();
        let health = health(machine.address.unwrap()).await;
        assert_eq!(health["status"], "ok");
        assert_eq!(
            health["sandboxId"],
            view.status.sandbox_id.unwrap().to_string()
        );
        assert!(view.status.last_started_at.is_some());
        pids.push(h.provider.pid(view.machine_id.as_ref().unwrap()).unwrap());
    }
    assert_eq!(h.running_machines().len(), 2);

    // Stop: the process is gone when stop returns; start brings a new one up.
    for (name, pid) in [&keyed, &legacy].into_iter().zip(&pids) {
        h.get(name).stop().await.unwrap();
        assert!(
            !process_runs(*pid),
            "stop returned while the sandbox still runs"
        );
        assert_eq!(h.debug(name).await.status.status, Some(Status::Stopped));
        assert!(h.get(name).start(false).await.unwrap());
        let view = h.wait_for(name, Status::Running).await;
        let new_pid = h.provider.pid(view.machine_id.as_ref().unwrap()).unwrap();
        assert_ne!(new_pid, *pid);
    }
    // Start on a healthy running instance is a no-op.
    assert!(!h.get(&keyed).start(false).await.unwrap());

    // Destroy: process and volume gone, registry row marked, actor data gone.
    for name in [&keyed, &legacy] {
        let view = h.debug(name).await;
        let machine = view.machine_id.clone().unwrap();
        let volume = h.provider.volume_path(view.volume_id.as_ref().unwrap());
        let pid = h.provider.pid(&machine).unwrap();
        assert!(volume.is_dir());
        let d = h.get(name).destroy(true).await.unwrap();
        assert!(d.finalized);
        assert_eq!(d.user_id, alice);
        assert!(!process_runs(pid));
        assert!(!volume.exists(), "the volume folder outlived the destroy");
        assert!(
            h.provider
                .machines()
                .unwrap()
                .iter()
                .all(|m| m.id != machine)
        );
        assert_eq!(
            h.get(name).status().await,
            Err(InstanceError::NotProvisioned)
        );
        // Idempotent from the caller's side: a retried destroy finds nothing to destroy.
        assert_eq!(
            h.get(name).destroy(true).await,
            Err(InstanceError::NotProvisioned)
        );
    }
    let row = h.registry.get(instance_id).await.unwrap().unwrap();
    assert!(
        row.destroyed_at_ms.is_some(),
        "instance-keyed row not marked destroyed"
    );
    let legacy_row = h
        .registry
        .get_by_sandbox(&alice.legacy_sandbox_id())
        .await
        .unwrap()
        .unwrap();
    assert!(
        legacy_row.destroyed_at_ms.is_some(),
        "legacy row not marked destroyed"
    );
    assert!(h.running_machines().is_empty());

    // The actors' files hold nothing any more.
    let files = [h.actor_file(&keyed), h.actor_file(&legacy)];
    let mut h = h;
    h.runtime
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(10))
        .await;
    for file in files {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let kv: i64 = conn
            .query_row("SELECT count(*) FROM _burrow_kv", [], |r| r.get(0))
            .unwrap();
        let alarms: i64 = conn
            .query_row("SELECT count(*) FROM _burrow_alarms", [], |r| r.get(0))
            .unwrap();
        assert_eq!((kv, alarms), (0, 0), "{} still holds data", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_file_is_restored_by_its_own_name_and_the_running_sandbox_rebound() {
    let idle = Duration::from_millis(300);
    let h = Harness::start_with(quiet_lifecycle(), idle).await;
    let alice = user("alice");
    let (instance_id, keyed) = instance_name();
    let legacy = ActorName::Legacy(alice.clone());
    let mut before = Vec::new();
    for name in [&keyed, &legacy] {
        let mut p = provision(&alice);
        p.env_vars.insert("MODE".into(), "fast".into());
        h.get(name).provision(p).await.unwrap();
        let view = h.wait_for(name, Status::Running).await;
        let machine = view.machine_id.unwrap();
        before.push((machine.clone(), h.provider.pid(&machine).unwrap()));
    }

    // Let both actors be evicted, then lose their files: deleted, and overwritten with garbage.
    for name in [&keyed, &legacy] {
        let file = h.actor_file(name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while holds_open(&file) {
            assert!(Instant::now() < deadline, "{name} was never evicted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let keyed_file = h.actor_file(&keyed);
    std::fs::remove_file(&keyed_file).unwrap();
    let _ = std::fs::remove_file(keyed_file.with_extension("db-wal"));
    let legacy_file = h.actor_file(&legacy);
    std::fs::write(&legacy_file, vec![0xA5u8; 8192]).unwrap();
    let _ = std::fs::remove_file(legacy_file.with_extension("db-wal"));

    for ((name, source), (machine, pid)) in [
        (&keyed, RestoreSource::InstanceId),
        (&legacy, RestoreSource::SandboxId),
    ]
    .into_iter()
    .zip(&before)
    {
        h.get(name).start(false).await.unwrap();
        let view = h.wait_for(name, Status::Running).await;
        assert_eq!(view.restored_from, Some(source), "{name}");
        assert!(view.configuration_lost, "{name}");
        assert_eq!(view.status.status, Some(Status::Running), "{name}");
        assert_eq!(
            view.machine_id.as_ref(),
            Some(machine),
            "{name} was not re-bound"
        );
        assert_eq!(
            h.provider.pid(machine),
            Some(*pid),
            "{name}'s sandbox was replaced"
        );
        assert_eq!(view.status.user_id.as_ref(), Some(&alice));
    }
    assert_eq!(
        h.running_machines().len(),
        2,
        "a second sandbox was created"
    );
    assert_eq!(h.provider.machines().unwrap().len(), 2);
    // The garbage is kept, in quarantine beside the actors' files.
    let quarantined: Vec<_> = walk(h.dir.path())
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.len() == 8192 && b.iter().all(|x| *x == 0xA5)))
        .collect();
    assert_eq!(
        quarantined.len(),
        1,
        "the damaged file is not kept: {quarantined:?}"
    );
    let _ = instance_id;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sandbox_makes_reconcile_mark_the_instance_stopped() {
    let lifecycle = burrow_instance::LifecycleConfig {
        reconcile_running: Duration::from_millis(100),
        unhealthy_checks: 3,
        ..quiet_lifecycle()
    };
    let h = Harness::start(lifecycle).await;
    let (_, keyed) = instance_name();
    h.get(&keyed)
        .provision(provision(&user("carol")))
        .await
        .unwrap();
    let view = h.wait_for(&keyed, Status::Running).await;
    let pid = h.provider.pid(view.machine_id.as_ref().unwrap()).unwrap();
    // Healthy checks keep it running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.debug(&keyed).await.status.status, Some(Status::Running));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let view = h.wait_for(&keyed, Status::Stopped).await;
    assert!(view.health_check_fail_count >= 3, "{view:#?}");
    assert!(view.status.last_stopped_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_during_the_health_wait_is_served_at_once_and_wins() {
    // The sandbox boots for a minute: the start sits in its health wait.
    let h = Harness::slow_booting(
        quiet_lifecycle(),
        Duration::from_secs(30),
        Duration::from_secs(60),
    )
    .await;
    let (_, keyed) = instance_name();
    let p = provision(&user("dave"));
    let began = Instant::now();
    h.get(&keyed).provision(p).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let machine = loop {
        let view = h.debug(&keyed).await;
        assert_eq!(view.status.status, Some(Status::Starting));
        if let Some(m) = view.machine_id {
            break m;
        }
        assert!(Instant::now() < deadline, "the machine was never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pid = h.provider.pid(&machine).unwrap();
    let d = h.get(&keyed).destroy(true).await.unwrap();
    // Far below the 30 s health wait and the 60 s boot: neither the status calls nor the
    // destroy waited for the start (a logical bound, not a speed requirement).
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "calls waited for the start: {:?}",
        began.elapsed()
    );
    assert!(d.finalized);
    assert!(!process_runs(pid));
    // Never running afterwards, and no sandbox left behind.
    for _ in 0..20 {
        assert_eq!(
            h.get(&keyed).status().await,
            Err(InstanceError::NotProvisioned)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.provider.machines().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_only_in_the_sandbox_environment() {
    let h = Harness::start(quiet_lifecycle()).await;
    let erin = user("erin");
    let org = burrow_identity::OrgId::new_random();
    h.registry.create_organization(org, "Acme").await.unwrap();
    let (_, keyed) = instance_name();
    let secret = format!("s3cr3t-{}", uuid_like());
    let mut p = provision(&erin);
    p.org_id = Some(org);
    p.secrets.insert("API_KEY".into(), secret.clone());
    p.env_vars.insert("PLAIN".into(), "visible".into());
    h.get(&keyed).provision(p).await.unwrap();
    let view = h.wait_for(&keyed, Status::Running).await;
    let sandbox = view.status.sandbox_id.clone().unwrap();
    let pid = h.provider.pid(view.machine_id.as_ref().unwrap()).unwrap();

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(vars.contains(&format!("API_KEY={secret}")), "{vars:?}");
    assert!(vars.contains(&"PLAIN=visible".to_owned()));
    assert!(vars.contains(&format!("BURROW_SANDBOX_ID={sandbox}")));
    assert!(vars.contains(&format!("BURROW_ORGANIZATION_ID={org}")));
    assert!(vars.contains(&format!(
        "BURROW_GATEWAY_TOKEN={}",
        burrow_instance::env::gateway_token(GATEWAY_SECRET, &sandbox)
    )));

    // No read model shows it.
    let config = h.get(&keyed).config().await.unwrap();
    assert_eq!(config.secret_names, vec!["API_KEY".to_owned()]);
    assert!(!format!("{:?}", h.get(&keyed).debug_status().await.unwrap()).contains(&secret));

    // Not in the actor's file or its WAL, in any form that contains the plaintext.
    let file = h.actor_file(&keyed);
    for path in [file.clone(), file.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "plaintext secret in {}",
                path.display()
            );
        }
    }
    // The plain env var, by contrast, is stored as is (so the search above can see values).
    let mut all = std::fs::read(&file).unwrap();
    all.extend(std::fs::read(file.with_extension("db-wal")).unwrap_or_default());
    assert!(all.windows(7).any(|w| w == b"visible"));
}

fn uuid_like() -> String {
    burrow_identity::InstanceId::new_random().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_checked_and_patched() {
    let h = Harness::start(quiet_lifecycle()).await;
    let (_, keyed) = instance_name();
    let frank = user("frank");
    let mut bad = provision(&frank);
    bad.env_vars.insert("BURROW_TOKEN".into(), "x".into());
    match h.get(&keyed).provision(bad).await {
        Err(InstanceError::Invalid(m)) => {
            assert!(m.contains("BURROW_TOKEN") && m.contains("reserved"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing was created by the refused call.
    assert_eq!(
        h.get(&keyed).status().await,
        Err(InstanceError::NotProvisioned)
    );

    h.get(&keyed).provision(provision(&frank)).await.unwrap();
    let mut patch = ConfigPatch::default();
    patch.env_vars.insert("A".into(), Some("1".into()));
    patch.env_vars.insert("B".into(), Some("2".into()));
    patch.secrets.insert("S".into(), Some("hidden".into()));
    let config = h.get(&keyed).patch_config(patch).await.unwrap();
    assert_eq!(config.env_vars.len(), 2);
    assert_eq!(config.secret_names, vec!["S".to_owned()]);

    let mut patch = ConfigPatch::default();
    patch.env_vars.insert("A".into(), None);
    patch.secrets.insert("S".into(), None);
    let config = h.get(&keyed).patch_config(patch).await.unwrap();
    assert_eq!(
        config.env_vars.into_iter().collect::<Vec<_>>(),
        vec![("B".to_owned(), "2".to_owned())]
    );
    assert!(config.secret_names.is_empty());

    for name in ["1A", "A-B", "", "BURROW_X"] {
        let mut patch = ConfigPatch::default();
        patch.env_vars.insert(name.into(), Some("v".into()));
        patch.env_vars.insert("GOOD".into(), Some("v".into()));
        assert!(
            matches!(
                h.get(&keyed).patch_config(patch).await,
                Err(InstanceError::Invalid(_))
            ),
            "{name:?} accepted"
        );
    }
    // A refused patch changed nothing, not even its valid part.
    assert!(
        !h.get(&keyed)
            .config()
            .await
            .unwrap()
            .env_vars
            .contains_key("GOOD")
    );

    // The names that decide what code a program runs, and Burrow's and the gateway's own, are
    // refused by name, as env vars and as secrets.
    for name in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PATH",
        "SANDBOX_BOOT_DELAY_MS",
    ] {
        for secret in [false, true] {
            let mut patch = ConfigPatch::default();
            let map = if secret {
                &mut patch.secrets
            } else {
                &mut patch.env_vars
            };
            map.insert(name.into(), Some("/tmp/x".into()));
            match h.get(&keyed).patch_config(patch).await {
                Err(InstanceError::Invalid(m)) => assert!(m.contains(name), "{m}"),
                other => panic!("{name} accepted: {other:?}"),
            }
        }
    }

    // One name cannot be an env var and a secret, even set by two requests.
    let mut patch = ConfigPatch::default();
    patch.secrets.insert("TOKEN".into(), Some("s".into()));
    h.get(&keyed).patch_config(patch).await.unwrap();
    let mut patch = ConfigPatch::default();
    patch.env_vars.insert("TOKEN".into(), Some("plain".into()));
    match h.get(&keyed).patch_config(patch).await {
        Err(InstanceError::Invalid(m)) => {
            assert!(m.contains("TOKEN") && m.contains("already a secret"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut patch = ConfigPatch::default();
    patch.env_vars.insert("B2".into(), Some("plain".into()));
    h.get(&keyed).patch_config(patch).await.unwrap();
    let mut patch = ConfigPatch::default();
    patch.secrets.insert("B2".into(), Some("s".into()));
    match h.get(&keyed).patch_config(patch).await {
        Err(InstanceError::Invalid(m)) => {
            assert!(m.contains("B2") && m.contains("already an env var"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Removing the secret in the same request that sets the env var is still "both".
    let mut patch = ConfigPatch::default();
    patch.secrets.insert("TOKEN".into(), None);
    patch.env_vars.insert("TOKEN".into(), Some("plain".into()));
    assert!(h.get(&keyed).patch_config(patch).await.is_err());

    // The whole environment stays under 1 MiB: 40 values of 30 KiB each pass one by one
    // (each is under the 32 KiB value limit) until the total would not.
    let mut refused_at = None;
    for i in 0..40 {
        let mut patch = ConfigPatch::default();
        patch
            .env_vars
            .insert(format!("BIG_{i}"), Some("x".repeat(30 * 1024)));
        if let Err(e) = h.get(&keyed).patch_config(patch).await {
            match e {
                InstanceError::Invalid(m) => assert!(m.contains("1040384"), "{m}"),
                other => panic!("{other:?}"),
            }
            refused_at = Some(i);
            break;
        }
    }
    assert_eq!(
        refused_at,
        Some(33),
        "30 KiB values: 33 fit under 1 MiB - 8 KiB"
    );

    // Someone else cannot provision (or reconfigure) frank's instance.
    assert_eq!(
        h.get(&keyed).provision(provision(&user("mallory"))).await,
        Err(InstanceError::WrongUser)
    );
    h.get(&keyed).destroy(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_recovers_the_best_labelled_sandbox_instead_of_creating_one() {
    use burrow_instance::SandboxProvider as _;
    use burrow_instance::provider::{Labels, MachineSpec};
    let h = Harness::start(quiet_lifecycle()).await;
    let gina = user("gina");
    let (instance_id, keyed) = instance_name();
    let labels = Labels {
        user_id: gina.clone(),
        sandbox_id: instance_id.sandbox_id(),
        org_id: None,
    };
    let spec = |labels: &Labels| MachineSpec {
        labels: labels.clone(),
        env: [
            (
                "BURROW_SANDBOX_ID".to_owned(),
                labels.sandbox_id.to_string(),
            ),
            ("BURROW_GATEWAY_TOKEN".to_owned(), "t".to_owned()),
        ]
        .into(),
    };
    // Left behind by an earlier life of this instance: a stopped machine and a newer running
    // one; and one of somebody else's.
    let stopped = h.provider.create(spec(&labels)).await.unwrap();
    h.provider.stop(&stopped.id).await.unwrap();
    let running = h.provider.create(spec(&labels)).await.unwrap();
    let other_labels = Labels {
        user_id: user("henry"),
        ..labels.clone()
    };
    let foreign = h.provider.create(spec(&other_labels)).await.unwrap();
    let running_pid = h.provider.pid(&running.id).unwrap();

    h.get(&keyed).provision(provision(&gina)).await.unwrap();
    let view = h.wait_for(&keyed, Status::Running).await;
    assert_eq!(
        view.machine_id.as_ref(),
        Some(&running.id),
        "recovery chose another machine"
    );
    assert_eq!(
        h.provider.pid(&running.id),
        Some(running_pid),
        "the running sandbox was restarted"
    );
    assert!(view.last_metadata_recovery_at.is_some());
    assert_eq!(
        h.provider.machines().unwrap().len(),
        3,
        "a machine was created"
    );
    assert!(h.provider.pid(&foreign.id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_brings_a_new_process_with_the_current_configuration_and_image_tag() {
    let h = Harness::start(quiet_lifecycle()).await;
    let (_, keyed) = instance_name();
    let ivan = user("ivan");
    h.get(&keyed).provision(provision(&ivan)).await.unwrap();
    let view = h.wait_for(&keyed, Status::Running).await;
    let machine = view.machine_id.clone().unwrap();
    let old_pid = h.provider.pid(&machine).unwrap();
    let mut patch = ConfigPatch::default();
    patch.env_vars.insert("ADDED".into(), Some("later".into()));
    h.get(&keyed).patch_config(patch).await.unwrap();

    assert_eq!(
        h.get(&keyed).restart(Some("v2.1".into())).await.unwrap(),
        Restarted::Began
    );
    // A second restart while the first is under way is refused, with a reason.
    let second = h.get(&keyed).restart(None).await.unwrap();
    assert!(matches!(second, Restarted::Refused(e) if e.contains("in progress")));
    let view = h.wait_for(&keyed, Status::Running).await;
    assert_eq!(
        view.machine_id.as_ref(),
        Some(&machine),
        "restart replaced the machine"
    );
    assert_eq!(view.tracked_image_tag.as_deref(), Some("v2.1"));
    let pid = h.provider.pid(&machine).unwrap();
    assert_ne!(pid, old_pid);
    assert!(!process_runs(old_pid));
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .into_owned();
    assert!(
        environ.split('\0').any(|v| v == "BURROW_IMAGE_TAG=v2.1"),
        "{environ}"
    );
    assert!(environ.split('\0').any(|v| v == "ADDED=later"), "{environ}");
    assert!(matches!(
        h.get(&keyed).restart(Some("bad tag".into())).await,
        Err(InstanceError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_start_times_out_to_stopped_and_a_restored_instance_never_destroys_itself() {
    let lifecycle = burrow_instance::LifecycleConfig {
        reconcile_transient: Duration::from_millis(100),
        reconcile_idle: Duration::from_millis(100),
        transient_timeout: Duration::from_millis(300),
        never_started_ttl: Duration::from_millis(1),
        ..quiet_lifecycle()
    };
    let mut h = Harness::slow_booting(
        lifecycle,
        Duration::from_millis(300),
        Duration::from_secs(600),
    )
    .await;
    let (instance_id, keyed) = instance_name();
    let p = provision(&user("judy"));
    h.get(&keyed).provision(p).await.unwrap();
    // The server goes away mid-start; the start's background work goes with it.
    h.restart().await;
    let view = h.wait_for(&keyed, Status::Stopped).await;
    let error = view.last_start_error.clone().unwrap();
    assert!(
        error.message.contains("did not become healthy"),
        "{error:?}"
    );

    // Destroy everything but the registry row, then lose the actor's file: the instance is
    // restored as provisioned, never started here — and must not destroy itself.
    assert!(h.get(&keyed).destroy(false).await.unwrap().finalized);
    // The machine the interrupted start made (never recorded by the actor) went too.
    assert!(
        h.provider.machines().unwrap().is_empty(),
        "an orphaned sandbox survived the destroy"
    );
    // The destroy deleted the actor, file and all.
    assert!(!h.actor_file(&keyed).exists());
    let view = h.debug(&keyed).await;
    assert_eq!(view.status.status, Some(Status::Provisioned));
    assert_eq!(view.restored_from, Some(RestoreSource::InstanceId));
    assert!(view.status.last_started_at.is_none());
    tokio::time::sleep(Duration::from_secs(1)).await; // ten reconcile periods
    assert_eq!(
        h.debug(&keyed).await.status.status,
        Some(Status::Provisioned)
    );
    let row = h.registry.get(instance_id).await.unwrap().unwrap();
    assert!(row.destroyed_at_ms.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_the_registry_knows_but_this_node_does_not_is_restored_by_its_id() {
    let mut h = Harness::start(quiet_lifecycle()).await;
    let kim = user("kim");
    let (_, keyed) = instance_name();
    h.get(&keyed).provision(provision(&kim)).await.unwrap();
    h.wait_for(&keyed, Status::Running).await;
    // Everything local goes (the registry row stays), and the node restarts.
    assert!(h.get(&keyed).destroy(false).await.unwrap().finalized);
    h.restart().await;
    let view = h.debug(&keyed).await;
    assert_eq!(view.status.status, Some(Status::Provisioned));
    assert_eq!(view.restored_from, Some(RestoreSource::InstanceId));
    assert_eq!(view.status.user_id, Some(kim));
    // A legacy actor never seen here stays unprovisioned, even though its user has a personal
    // instance in the registry.
    let legacy = ActorName::Legacy(user("kim"));
    assert_eq!(
        h.get(&legacy).status().await,
        Err(InstanceError::NotProvisioned)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_stored_before_they_were_refused_stay_out_of_the_sandbox_and_are_listed() {
    let mut h = Harness::start(quiet_lifecycle()).await;
    let (_, keyed) = instance_name();
    let mut p = provision(&user("olga"));
    p.env_vars.insert("KEPT".into(), "1".into());
    h.get(&keyed).provision(p).await.unwrap();
    h.wait_for(&keyed, Status::Running).await;
    h.get(&keyed).stop().await.unwrap();
    h.wait_for(&keyed, Status::Stopped).await;

    // An older version accepted these names; write them as it would have stored them.
    let file = h.actor_file(&keyed);
    h.restart_after(|| {
        let stored = std::collections::BTreeMap::from([
            ("KEPT".to_owned(), "1".to_owned()),
            ("LD_PRELOAD".to_owned(), "/nonexistent/evil.so".to_owned()),
            ("PATH".to_owned(), "/nonexistent/bin".to_owned()),
        ]);
        let bytes = bincode::serde::encode_to_vec(&stored, bincode::config::standard()).unwrap();
        let db = rusqlite::Connection::open(&file).unwrap();
        let changed = db
            .execute(
                "UPDATE _burrow_kv SET value = ?1 WHERE key = ?2",
                rusqlite::params![bytes, b"state/env_vars".as_slice()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    })
    .await;

    assert!(h.get(&keyed).start(false).await.unwrap());
    let view = h.wait_for(&keyed, Status::Running).await;
    let pid = h.provider.pid(view.machine_id.as_ref().unwrap()).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(vars.contains(&"KEPT=1".to_owned()), "{vars:?}");
    assert!(
        !vars.iter().any(|v| v.starts_with("LD_PRELOAD=")),
        "{vars:?}"
    );
    assert!(
        !vars.iter().any(|v| v.contains("/nonexistent/bin")),
        "{vars:?}"
    );

    let debug = h.get(&keyed).debug_status().await.unwrap();
    assert_eq!(
        debug.withheld.keys().collect::<Vec<_>>(),
        vec!["LD_PRELOAD", "PATH"],
        "{:?}",
        debug.withheld
    );
    assert!(debug.withheld["LD_PRELOAD"].contains("load code"));
    // The stored configuration itself is untouched (the owner can see and remove it).
    let config = h.get(&keyed).config().await.unwrap();
    assert!(config.env_vars.contains_key("LD_PRELOAD"));
    h.get(&keyed).destroy(true).await.unwrap();
}
