//! A full disk, for real: the data directory is a small tmpfs (mounted by the test, which
//! needs root — CI runs as root). While it is full, writes fail with a clear error and the
//! server keeps serving; nothing is acknowledged that is not on disk (checked across a kill
//! -9); once space is freed, everything works again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burrow::identity::{InstanceId, UserId};
use burrow_client::{PlatformClient, ProvisionRequest};
use burrow_testkit::server::{BurrowProcess, ServeOptions};
use serde_json::{Value, json};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed",
            dir.display()
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir`; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Whatever is left is smaller than a chunk: take it too, byte by byte in small steps.
    let mut small = vec![0u8; 512];
    while f.write_all(&small).is_ok() {}
    small.truncate(1);
    while f.write_all(&small).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_loses_nothing_acknowledged_and_recovers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(dir.path(), "48m");
    let mut process = BurrowProcess::start(
        env!("CARGO_BIN_EXE_burrow").as_ref(),
        ServeOptions::new(dir.path().join("data")).env("BURROW_RECONCILE_JITTER_MS", 0),
    )
    .await
    .unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));
    let alice: UserId = "alice".parse().unwrap();
    let id = InstanceId::new_random();
    let mut request = ProvisionRequest::new(&alice);
    request.instance_id = Some(id);
    client.provision(&request).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = burrow::server::tokens::issue(
        &process.key("tokenSecret"),
        &alice,
        false,
        Duration::from_secs(600),
    );
    let url = |p: &str| format!("{}{p}?instanceId={id}", process.url());
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let write = |n: usize| {
        let (http, url, token) = (http.clone(), url("/api/user/config"), token.clone());
        async move {
            let key = format!("K{n}");
            let value = format!("v{n}-{}", "x".repeat(2000));
            let response = http
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"envVars": {key.clone(): value.clone()}}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("write {n}: the server did not answer: {e}"));
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, key, value)
        }
    };
    for n in 0..5 {
        let (status, body, key, value) = write(n).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.push((key, value));
    }

    let filler = fill(dir.path());
    let mut refusals = Vec::new();
    for n in 5..40 {
        let (status, body, key, value) = write(n).await;
        match status {
            200 => acknowledged.push((key, value)),
            _ => {
                assert!(body["error"].is_string(), "{status}: {body}");
                refusals.push((status, body));
            }
        }
    }
    assert!(!refusals.is_empty(), "the full disk accepted every write");
    assert!(
        refusals
            .iter()
            .any(|(status, body)| *status == 507 && body["error"] == "Insufficient storage"),
        "no refusal says the disk is full: {refusals:?}"
    );
    // Still serving.
    let health = http
        .get(format!("{}/healthz", process.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Space comes back: writes work again (the actor may first need a fresh activation).
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 100;
    loop {
        let (status, body, key, value) = write(n).await;
        n += 1;
        if status == 200 {
            acknowledged.push((key, value));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never recovered: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing acknowledged was only in memory: kill -9, restart, read back.
    process.kill();
    process.restart().await.unwrap();
    let token = burrow::server::tokens::issue(
        &process.key("tokenSecret"),
        &alice,
        false,
        Duration::from_secs(600),
    );
    let config: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/user/config?instanceId={id}", process.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in &acknowledged {
        assert_eq!(
            config["envVars"][key].as_str(),
            Some(value.as_str()),
            "{key} was acknowledged and lost"
        );
    }
    eprintln!(
        "{} writes acknowledged, {} refused while full: {:?}",
        acknowledged.len(),
        refusals.len(),
        refusals.first()
    );
}
