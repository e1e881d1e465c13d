//! The throwaway PostgreSQL: shared databases, dedicated clusters, outages and clean-up.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burrow_testkit::pg::{Cluster, fresh_database, sweep_stale_clusters};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

const PROBE: &str = env!("CARGO_BIN_EXE_burrow-testkit-probe");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_cluster_outage_leaves_the_shared_cluster_serving() {
    // Load on the shared cluster for the whole outage, counting queries while it lasts.
    let shared = fresh_database().await;
    let shared_client = shared.connect().await.unwrap();
    let in_outage = Arc::new(AtomicBool::new(false));
    let during_outage = Arc::new(AtomicU64::new(0));
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (in_outage, during_outage, stop_load) =
            (in_outage.clone(), during_outage.clone(), stop_load.clone());
        async move {
            while !stop_load.load(Ordering::SeqCst) {
                let row = shared_client.query_one("SELECT 41 + 1", &[]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), 42);
                if in_outage.load(Ordering::SeqCst) {
                    during_outage.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let mut cluster = tokio::task::block_in_place(Cluster::start).unwrap();
    let port = cluster.port();
    let client = cluster.connect("postgres").await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (id int PRIMARY KEY, v text); INSERT INTO kept VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();

    in_outage.store(true, Ordering::SeqCst);
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    assert!(!cluster.is_running());
    let err = client.query("SELECT * FROM kept", &[]).await.unwrap_err();
    assert!(err.is_closed() || err.as_db_error().is_some(), "{err}");
    let refused = cluster.connect("postgres").await.unwrap_err();
    assert!(refused.to_string().contains("connect"), "{refused}");
    // Give the load a moment to prove itself while this cluster is down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while during_outage.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    tokio::task::block_in_place(|| cluster.restart()).unwrap();
    in_outage.store(false, Ordering::SeqCst);
    assert_eq!(cluster.port(), port);
    let client = cluster.connect("postgres").await.unwrap();
    let rows = client
        .query("SELECT v FROM kept ORDER BY id", &[])
        .await
        .unwrap();
    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, ["one", "two"]);

    stop_load.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert!(
        during_outage.load(Ordering::SeqCst) >= 5,
        "the shared cluster served nothing during the outage"
    );
}

#[tokio::test]
async fn fresh_databases_are_empty_and_apart() {
    let (a, b) = tokio::join!(fresh_database(), fresh_database());
    assert_ne!(a.name(), b.name());
    let (ca, cb) = (a.connect().await.unwrap(), b.connect().await.unwrap());
    for (client, value) in [(&ca, "a"), (&cb, "b")] {
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 0);
        client
            .batch_execute(&format!(
                "CREATE TABLE t (v text); INSERT INTO t VALUES ('{value}')"
            ))
            .await
            .unwrap();
    }
    for (client, value) in [(&ca, "a"), (&cb, "b")] {
        let got: String = client
            .query_one("SELECT v FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(got, value);
    }
    let db: String = ca
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, a.name());
    assert_eq!(a.config().get_dbname(), Some(a.name()));
}

#[tokio::test]
async fn dropping_a_cluster_stops_it_and_removes_its_directory() {
    let cluster = Cluster::start().unwrap();
    let (dir, port) = (cluster.dir().to_owned(), cluster.port());
    cluster.connect("postgres").await.unwrap();
    assert!(dir.join("data").is_dir());
    drop(cluster);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Starts the helper that holds a cluster, in a process group of its own, and reads what it
/// prints.
fn spawn_holder() -> (std::process::Child, PathBuf, u16) {
    let mut child = Command::new(PROBE)
        .arg("hold-cluster")
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (dir, port) = line
        .trim()
        .rsplit_once(' ')
        .expect("holder prints `<dir> <port>`");
    (child, PathBuf::from(dir), port.parse().unwrap())
}

fn kill_group(child: &mut std::process::Child) {
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

fn wait_until_gone(dir: &Path, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !dir.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_watchdog_cleans_up_after_an_owner_killed_with_sigkill() {
    let (mut holder, dir, port) = spawn_holder();
    assert!(dir.join("data").is_dir());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    kill_group(&mut holder);
    assert!(
        wait_until_gone(&dir, port),
        "{} survived its owner",
        dir.display()
    );
}

/// The processes whose command line mentions `needle` (the watchdog names its directory).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn a_sweep_removes_clusters_whose_owner_and_watchdog_were_killed() {
    let (mut holder, dir, port) = spawn_holder();
    let dir_text = dir.to_str().unwrap();
    let watchdogs: Vec<i32> = processes_mentioning(dir_text)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("burrow-testkit-watchdog"))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(watchdogs.len(), 1, "expected one watchdog for {dir_text}");
    kill(Pid::from_raw(watchdogs[0]), Signal::SIGKILL).unwrap();
    kill_group(&mut holder);

    // Nobody is left to clean up: the cluster stays, and its server may well still run.
    std::thread::sleep(Duration::from_millis(300));
    assert!(dir.exists());

    assert!(sweep_stale_clusters() >= 1);
    assert!(
        wait_until_gone(&dir, port),
        "the sweep left {}",
        dir.display()
    );
}

#[tokio::test]
async fn an_external_server_hands_out_databases_and_gets_them_back() {
    let cluster = Cluster::start().unwrap();
    let output = Command::new(PROBE)
        .arg("fresh-database")
        .env("BURROW_TEST_DATABASE_URL", cluster.url("postgres"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8(output.stdout).unwrap();
    let config: tokio_postgres::Config = url.trim().parse().unwrap();
    assert_eq!(config.get_ports(), [cluster.port()]);
    let name = config.get_dbname().unwrap().to_owned();
    assert!(name.starts_with("burrow_test_"), "{name}");

    // The probe dropped its database on the way out: nothing is left on a server not ours.
    let client = cluster.connect("postgres").await.unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "{name} was not dropped");
}

#[test]
fn a_bad_external_url_is_named_in_the_error() {
    let output = Command::new(PROBE)
        .arg("fresh-database")
        .env("BURROW_TEST_DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains(r#"BURROW_TEST_DATABASE_URL "mysql://localhost/x" is not a postgres:// URL"#),
        "{stderr}"
    );
}
