//! The container provider against a real Podman (the test kit's own API service and storage):
//! what a machine is in the engine, what survives what, and what an engine outage looks like.
//! Skipped with a message where Podman is not installed, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burrow_identity::{InstanceId, MachineId, OrgId, SandboxId, UserId};
use burrow_instance::env::{GATEWAY_TOKEN_ENV, IMAGE_TAG_ENV, SANDBOX_ID_ENV};
use burrow_instance::provider::{
    Labels, MachineSpec, MachineState, PodmanProvider, PodmanProviderConfig, ProviderError,
    SandboxProvider, build_gateway_image,
};
use burrow_testkit::podman::Engine;

const TOKEN: &str = "gateway-token-of-this-test-0000000000";

struct Fixture {
    engine: Engine,
    provider: PodmanProvider,
}

async fn fixture(test: &str) -> Option<Fixture> {
    let engine = Engine::start_or_skip(test)?;
    let provider = PodmanProvider::connect(PodmanProviderConfig::new(engine.socket()))
        .await
        .unwrap();
    let gateway = Path::new(env!("CARGO_BIN_EXE_burrow-instance-sandbox"));
    if let Err(e) = build_gateway_image(
        provider.engine(),
        gateway,
        "localhost/burrow-sandbox",
        "latest",
    )
    .await
    {
        panic!("building the image: {e}\n{}", engine.log());
    }
    Some(Fixture { engine, provider })
}

fn labels() -> Labels {
    Labels {
        user_id: "ann".parse::<UserId>().unwrap(),
        sandbox_id: SandboxId::InstanceKeyed(InstanceId::new_random()),
        org_id: Some(OrgId::new_random()),
    }
}

fn spec(labels: &Labels, extra: &[(&str, &str)]) -> MachineSpec {
    let mut env: std::collections::BTreeMap<String, String> = [
        (GATEWAY_TOKEN_ENV.to_owned(), TOKEN.to_owned()),
        (SANDBOX_ID_ENV.to_owned(), labels.sandbox_id.to_string()),
    ]
    .into();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    MachineSpec {
        labels: labels.clone(),
        env,
    }
}

async fn wait_healthy(provider: &PodmanProvider, id: &MachineId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !provider.healthy(id).await.unwrap() {
        assert!(Instant::now() < deadline, "{id} never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The engine's id of the container behind a machine (it changes when the machine is
/// recreated; the machine id does not).
async fn container_id(provider: &PodmanProvider, id: &MachineId) -> String {
    let found = provider
        .engine()
        .inspect_container(id.as_str(), None)
        .await
        .unwrap();
    found.id.unwrap()
}

/// Where the engine keeps a volume's files on the host.
fn mountpoint(engine: &Engine, volume: &str) -> Option<PathBuf> {
    let out = engine
        .podman()
        .args(["volume", "inspect", "--format", "{{.Mountpoint}}", volume])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

#[tokio::test]
async fn a_machine_is_a_locked_down_labelled_container_whose_volume_outlives_it() {
    let Some(Fixture { engine, provider }) = fixture("containers::locked_down").await else {
        return;
    };
    let labels = labels();
    let machine = provider.create(spec(&labels, &[])).await.unwrap();
    wait_healthy(&provider, &machine.id).await;
    assert_eq!(
        machine.volume_id.as_str(),
        format!("burrow-{}", labels.sandbox_id)
    );

    // What the engine was asked for is what it runs.
    let found = provider
        .engine()
        .inspect_container(machine.id.as_str(), None)
        .await
        .unwrap();
    let config = found.config.unwrap();
    let container_labels = config.labels.unwrap();
    assert_eq!(container_labels["burrow.user-id"], "ann");
    assert_eq!(
        container_labels["burrow.sandbox-id"],
        labels.sandbox_id.to_string()
    );
    assert_eq!(
        container_labels["burrow.org-id"],
        labels.org_id.unwrap().to_string()
    );
    assert_eq!(
        container_labels["burrow.instance-id"],
        labels.sandbox_id.instance_id().unwrap().to_string()
    );
    assert_eq!(
        config.image.as_deref(),
        Some("localhost/burrow-sandbox:latest")
    );
    assert_eq!(config.user.as_deref(), Some("10000:10000"));
    let host = found.host_config.unwrap();
    assert_eq!(host.memory, Some(512 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(256));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.init, Some(true));
    // The container's first process (its init), seen from the host: no capabilities, and no
    // way to gain any.
    let pid = found
        .state
        .unwrap()
        .pid
        .expect("a running container has a pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        let value = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
        assert_eq!(value.trim(), "0000000000000000", "{field} of {pid}");
    }
    let no_new = status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .unwrap();
    assert_eq!(no_new.trim(), "1");

    // The gateway answers through the published port, and only with its token.
    let address = provider
        .get(&machine.id)
        .await
        .unwrap()
        .unwrap()
        .address
        .expect("an address while running");
    let http = reqwest::Client::new();
    let url = format!("http://{address}/hello");
    let with = http
        .get(&url)
        .header("x-burrow-proxy-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(with.status().is_success(), "{}", with.status());
    let without = http.get(&url).send().await.unwrap();
    assert_eq!(without.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Data on the volume survives stop and start, a recreation and the machine's deletion.
    let volume = mountpoint(&engine, machine.volume_id.as_str()).expect("the volume exists");
    std::fs::write(volume.join("kept"), "yes").unwrap();
    provider.stop(&machine.id).await.unwrap();
    let stopped = provider.get(&machine.id).await.unwrap().unwrap();
    assert_eq!(stopped.state, MachineState::Stopped);
    assert_eq!(stopped.address, None);
    assert!(!provider.healthy(&machine.id).await.unwrap());

    let before = container_id(&provider, &machine.id).await;
    provider
        .start(&machine.id, spec(&labels, &[]).env)
        .await
        .unwrap();
    wait_healthy(&provider, &machine.id).await;
    assert_eq!(
        container_id(&provider, &machine.id).await,
        before,
        "the same environment starts the same container"
    );

    let changed = spec(&labels, &[("GREETING", "hi")]);
    provider.start(&machine.id, changed.env).await.unwrap();
    wait_healthy(&provider, &machine.id).await;
    assert_ne!(
        container_id(&provider, &machine.id).await,
        before,
        "another environment recreates the container under the same machine id"
    );
    let listed = provider
        .list(&labels.user_id, &labels.sandbox_id)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, machine.id);

    provider.delete_machine(&machine.id).await.unwrap();
    assert_eq!(provider.get(&machine.id).await.unwrap(), None);
    assert!(
        provider
            .list(&labels.user_id, &labels.sandbox_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(std::fs::read_to_string(volume.join("kept")).unwrap(), "yes");

    // A new machine for the same sandbox mounts the same volume; only delete_volume removes it.
    let again = provider.create(spec(&labels, &[])).await.unwrap();
    assert_eq!(again.volume_id, machine.volume_id);
    wait_healthy(&provider, &again.id).await;
    let in_use = provider.delete_volume(&again.volume_id).await;
    assert!(
        matches!(in_use, Err(ProviderError::Failed(_))),
        "a volume a container uses is not removed: {in_use:?}"
    );
    provider.delete_machine(&again.id).await.unwrap();
    provider.delete_volume(&again.volume_id).await.unwrap();
    assert_eq!(mountpoint(&engine, again.volume_id.as_str()), None);
    provider.delete_volume(&again.volume_id).await.unwrap();
}

#[tokio::test]
async fn a_missing_image_tag_is_refused_and_another_tag_recreates_the_container() {
    let Some(Fixture {
        engine: _engine,
        provider,
    }) = fixture("containers::image_tags").await
    else {
        return;
    };
    let labels = labels();
    let machine = provider.create(spec(&labels, &[])).await.unwrap();
    wait_healthy(&provider, &machine.id).await;

    let gateway = Path::new(env!("CARGO_BIN_EXE_burrow-instance-sandbox"));
    let second = build_gateway_image(provider.engine(), gateway, "localhost/burrow-sandbox", "v2")
        .await
        .unwrap();
    provider
        .start(&machine.id, spec(&labels, &[(IMAGE_TAG_ENV, "v2")]).env)
        .await
        .unwrap();
    wait_healthy(&provider, &machine.id).await;
    let found = provider
        .engine()
        .inspect_container(machine.id.as_str(), None)
        .await
        .unwrap();
    assert_eq!(
        found.config.unwrap().image.as_deref(),
        Some("localhost/burrow-sandbox:v2")
    );
    assert_eq!(found.image.as_deref(), Some(second.as_str()));

    // A tag that does not exist changes nothing: the container keeps running as it was.
    let before = found.id.unwrap();
    let missing = provider
        .start(&machine.id, spec(&labels, &[(IMAGE_TAG_ENV, "nope")]).env)
        .await;
    match missing {
        Err(ProviderError::Invalid(why)) => {
            assert!(why.contains("localhost/burrow-sandbox:nope"), "{why}")
        }
        other => panic!("starting into a missing tag: {other:?}"),
    }
    let after = provider
        .engine()
        .inspect_container(machine.id.as_str(), None)
        .await
        .unwrap();
    assert_eq!(after.id.unwrap(), before, "the container was not replaced");
    assert!(
        provider.healthy(&machine.id).await.unwrap(),
        "and still serves"
    );
    provider.delete_machine(&machine.id).await.unwrap();
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_a_failure_never_a_missing_machine() {
    let Some(Fixture {
        mut engine,
        provider,
    }) = fixture("containers::outage").await
    else {
        return;
    };
    let labels = labels();
    let machine = provider.create(spec(&labels, &[])).await.unwrap();
    engine.stop_service();
    let failed = |r: Result<(), ProviderError>, what: &str| match r {
        Err(ProviderError::Failed(_)) => {}
        other => panic!("{what} during an outage: {other:?}"),
    };
    failed(provider.get(&machine.id).await.map(|_| ()), "get");
    failed(provider.healthy(&machine.id).await.map(|_| ()), "healthy");
    failed(
        provider
            .list(&labels.user_id, &labels.sandbox_id)
            .await
            .map(|_| ()),
        "list",
    );
    failed(provider.stop(&machine.id).await, "stop");
    failed(provider.delete_machine(&machine.id).await, "delete_machine");
}

/// Runs a gateway container that is not Burrow's (no labels) under `name`, from outside.
fn run_foreign(engine: &Engine, name: &str) {
    let out = engine
        .podman()
        .args([
            "run",
            "-d",
            "--name",
            name,
            "localhost/burrow-sandbox:latest",
        ])
        .args(["--token", "not-burrows", "--listen", "0.0.0.0:8080"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "running {name}: {stderr}");
}

#[tokio::test]
async fn a_container_without_burrows_labels_is_never_touched() {
    let Some(Fixture { engine, provider }) = fixture("containers::foreign").await else {
        return;
    };
    // Someone else's container, under a name of the provider's own form.
    let name = format!("c{}", "0".repeat(32));
    run_foreign(&engine, &name);
    let id: MachineId = name.parse().unwrap();
    assert_eq!(provider.get(&id).await.unwrap(), None);
    assert!(matches!(
        provider.stop(&id).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        provider.start(&id, Default::default()).await,
        Err(ProviderError::NotFound(_))
    ));
    provider.delete_machine(&id).await.unwrap();
    let state = engine
        .podman()
        .args(["inspect", "--format", "{{.State.Status}}", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");
}

/// Runs `curl` on the host inside the network namespace of the process `pid` (a container's):
/// what that container could reach, without any tool in its image. Answers the HTTP status, or
/// `None` when nothing answered.
fn curl_from(pid: i64, url: &str) -> Option<u16> {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "curl", "-s", "-m", "5"])
        .args(["-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .ok()
        .filter(|&code| code != 0)
}

#[tokio::test]
async fn a_container_cannot_reach_another_sandboxs_gateway() {
    let Some(Fixture {
        engine: _engine,
        provider,
    }) = fixture("containers::isolation").await
    else {
        return;
    };
    let mut inside = Vec::new();
    for _ in 0..2 {
        let machine = provider.create(spec(&labels(), &[])).await.unwrap();
        wait_healthy(&provider, &machine.id).await;
        let found = provider
            .engine()
            .inspect_container(machine.id.as_str(), None)
            .await
            .unwrap();
        let pid = found.state.unwrap().pid.unwrap();
        let networks = found.network_settings.unwrap().networks.unwrap();
        let ip = networks
            .values()
            .find_map(|n| n.ip_address.clone().filter(|ip| !ip.is_empty()))
            .expect("an address on its network");
        inside.push((pid, ip));
    }
    let health = burrow_sandbox::HEALTH_PATH;
    let (a, b) = (&inside[0], &inside[1]);
    assert_eq!(
        curl_from(b.0, &format!("http://{}:8080{health}", b.1)),
        Some(200),
        "a gateway is reached at its address from its own network"
    );
    assert_eq!(
        curl_from(a.0, &format!("http://{}:8080{health}", b.1)),
        None,
        "another sandbox's gateway is not reachable"
    );
}

#[tokio::test]
async fn a_container_killed_from_outside_is_reported_with_its_exit_code() {
    let Some(Fixture { engine, provider }) = fixture("containers::exits").await else {
        return;
    };
    let machine = provider.create(spec(&labels(), &[])).await.unwrap();
    wait_healthy(&provider, &machine.id).await;
    let ours = container_id(&provider, &machine.id).await;
    let foreign = format!("c{}", "f".repeat(32));
    run_foreign(&engine, &foreign);

    // Read from before the kills, so a subscription that starts late misses nothing.
    let since = burrow_state::now_ms() - 1000;
    for name in [foreign.as_str(), machine.id.as_str()] {
        let kill = engine.podman().args(["kill", name]).output().unwrap();
        assert!(
            kill.status.success(),
            "{}",
            String::from_utf8_lossy(&kill.stderr)
        );
    }
    let mut exits = std::pin::pin!(provider.exits(Some(since)));
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::StreamExt::next(&mut exits),
    )
    .await
    .expect("an exit within 30 s")
    .expect("the stream is open")
    .unwrap();
    assert_eq!(
        exit.machine_id, machine.id,
        "the foreign container's exit is not reported"
    );
    assert_eq!(exit.container_id, ours);
    assert_eq!(exit.code, Some(137));
    assert!(exit.at_ms >= since - 1000, "{} before {since}", exit.at_ms);
    // Podman 4.3 shows a killed container as `stopped` (not a Docker state, which the client
    // cannot read) until its cleanup has run; then `exited`.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match provider.get(&machine.id).await {
            Ok(Some(m)) if m.state == MachineState::Stopped => break,
            other => assert!(Instant::now() < deadline, "never seen stopped: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
