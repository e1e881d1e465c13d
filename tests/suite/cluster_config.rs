//! `burrow serve --cluster`: what it refuses to start without (each named), and a node's place
//! in `GET /api/admin/cluster` across a restart and a clean stop.

use std::process::Command;
use std::time::Duration;

use burrow_testkit::server::{BurrowProcess, ServeOptions};

const SECRETS: [(&str, &str); 5] = [
    crate::common::GIVEN_SECRETS[0],
    crate::common::GIVEN_SECRETS[1],
    crate::common::GIVEN_SECRETS[2],
    crate::common::GIVEN_SECRETS[3],
    (
        "BURROW_CLUSTER_SECRET",
        "cccccccccccccccccccccccccccccccccccccccc",
    ),
];

/// Runs `burrow serve --cluster` with `args` and `env`; it must exit at once with a usage
/// error, and its stderr is returned.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .args(args)
        .env_remove("BURROW_CLUSTER_SECRET")
        .env_remove("BURROW_ADVERTISE_URL")
        .env_remove("BURROW_DURABILITY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn what_a_node_needs_is_named_when_it_is_missing() {
    let url = ["--advertise-url", "http://127.0.0.1:7001"];
    let stderr = refused(&[], &SECRETS);
    assert!(stderr.contains("--advertise-url"), "{stderr}");
    let stderr = refused(&url, &SECRETS[..4]);
    assert!(stderr.contains("BURROW_CLUSTER_SECRET"), "{stderr}");
    let short = [
        SECRETS[0],
        SECRETS[1],
        SECRETS[2],
        SECRETS[3],
        ("BURROW_CLUSTER_SECRET", "short"),
    ];
    let stderr = refused(&url, &short);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    let stderr = refused(&[&url[..], &["--durability", "process"]].concat(), &SECRETS);
    assert!(
        stderr.contains("--durability replicated, not process"),
        "{stderr}"
    );
    let stderr = refused(&[&url[..], &["--node-id", " "]].concat(), &SECRETS);
    assert!(stderr.contains("--node-id"), "{stderr}");
    let stderr = refused(&["--advertise-url", "nowhere"], &SECRETS);
    assert!(stderr.contains("is not a URL"), "{stderr}");
}

async fn cluster_view(process: &BurrowProcess, token: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/admin/cluster", process.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_node_joins_under_a_new_incarnation_at_each_start_and_leaves_when_stopped() {
    let db = burrow_testkit::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path().join("data"))
        .env("BURROW_CLUSTER", "true")
        .env("BURROW_ADVERTISE_URL", "http://127.0.0.1:7001")
        .env("BURROW_LEASE_MS", 2_000);
    for (name, value) in SECRETS {
        options = options.env(name, value);
    }
    options.database_url = Some(db.url().to_owned());
    let mut process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap();
    let admin = burrow::server::tokens::issue(
        SECRETS[0].1,
        &"root".parse().unwrap(),
        true,
        Duration::from_secs(600),
    );
    let user = burrow::server::tokens::issue(
        SECRETS[0].1,
        &"ann".parse().unwrap(),
        false,
        Duration::from_secs(600),
    );
    assert_eq!(cluster_view(&process, &user).await.status(), 403);
    let node = |view: serde_json::Value| view["nodes"][0].clone();
    let first = node(cluster_view(&process, &admin).await.json().await.unwrap());
    assert_eq!(
        first["nodeId"], "127.0.0.1-7001",
        "derived from the advertised URL"
    );
    assert_eq!(first["advertiseUrl"], "http://127.0.0.1:7001");
    assert_eq!(first["incarnation"], 1);
    assert_eq!(first["status"], "alive");
    // The lease is kept: three leases later it is still alive.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = node(cluster_view(&process, &admin).await.json().await.unwrap());
    assert_eq!(later["status"], "alive");
    assert!(later["leaseExpiresAt"].as_i64() > first["leaseExpiresAt"].as_i64());
    process.restart().await.unwrap();
    let second = node(cluster_view(&process, &admin).await.json().await.unwrap());
    assert_eq!(
        (second["incarnation"].clone(), second["status"].clone()),
        (2.into(), "alive".into())
    );
    // A clean stop leaves the cluster: its lease ends at once.
    assert!(
        process
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    let client = db.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT status, lease_expires_at <= clock_timestamp() FROM burrow_node",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("left".into(), true)
    );
}

#[test]
fn a_token_from_a_given_secret_touches_no_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-created");
    let token = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args(["token", "--user", "ann", "--data-dir"])
            .arg(&data)
            .current_dir(dir.path())
            .env("BURROW_TOKEN_SECRET", secret)
            .env_remove("BURROW_DATA_DIR")
            .output()
            .unwrap()
    };
    let out = token(SECRETS[0].1);
    assert!(out.status.success(), "{out:?}");
    let issued = String::from_utf8(out.stdout).unwrap();
    let caller = burrow::server::tokens::verify(SECRETS[0].1, issued.trim()).expect("valid");
    assert_eq!(caller.user_id.to_string(), "ann");
    assert!(!data.exists(), "the data directory was created");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
    let out = token("short");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BURROW_TOKEN_SECRET"));
}

#[test]
fn a_sandbox_host_nobody_can_reach_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sandbox-host",
            "0.0.0.0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("BURROW_SANDBOX_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--sandbox-host 0.0.0.0"), "{stderr}");
}
