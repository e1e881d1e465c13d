//! Three `burrow serve --cluster` nodes on one PostgreSQL, for the cluster suites.

use std::time::{Duration, Instant};

use burrow::identity::InstanceId;
use burrow_testkit::server::{BurrowProcess, ServeOptions};
use serde_json::json;

pub const LEASE: Duration = Duration::from_secs(2);
pub const CLUSTER_SECRET: &str = "cccccccccccccccccccccccccccccccccccccccc";

/// The generous bound every takeover must meet.
pub fn bound() -> Duration {
    LEASE * 3 + Duration::from_secs(5)
}

pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Cluster {
    pub nodes: Vec<Option<BurrowProcess>>,
    pub options: Vec<ServeOptions>,
    pub db: burrow_testkit::pg::TestDatabase,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_with(&[]).await
    }

    /// Three nodes with these variables set on each, besides the cluster's own.
    pub async fn start_with(extra: &[(&str, &str)]) -> Cluster {
        let db = burrow_testkit::pg::fresh_database().await;
        let dir = tempfile::tempdir().unwrap();
        let options: Vec<_> = (0..3)
            .map(|i| node_options(&dir.path().join(format!("node{i}")), i, db.url(), extra))
            .collect();
        let nodes = start_all(&options).await.into_iter().map(Some).collect();
        Cluster {
            nodes,
            options,
            db,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    pub fn url(&self, i: usize) -> String {
        self.nodes[i].as_ref().expect("running").url()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..3).filter(|&i| self.nodes[i].is_some()).collect()
    }

    /// The node id and epoch PostgreSQL records for the instance's actor.
    pub async fn holder(&self, instance: &InstanceId) -> (Option<String>, i64) {
        let client = self.db.connect().await.unwrap();
        let row = client
            .query_one(
                "SELECT node_id, epoch FROM burrow_log_actor WHERE namespace = 'instance' AND name = $1",
                &[&format!("i:{instance}")],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    pub async fn holder_index(&self, instance: &InstanceId) -> usize {
        let (node, _) = self.holder(instance).await;
        let node = node.expect("the actor is held");
        node.trim_start_matches("node").parse().unwrap()
    }

    pub async fn provision(&self, via: usize, instance: &InstanceId) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/api/platform/provision", self.url(via)))
            .header("x-internal-api-key", super::GIVEN_SECRETS[1].1)
            .json(&json!({"userId": "ann", "instanceId": instance.to_string()}))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Sets `name = value` through node `via`; whether it was acknowledged.
    pub async fn set(&self, via: usize, instance: &InstanceId, name: &str, value: &str) -> bool {
        self.http
            .patch(format!(
                "{}/api/user/config?instanceId={instance}",
                self.url(via)
            ))
            .bearer_auth(token())
            .json(&json!({"envVars": {name: value}}))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    pub async fn config(&self, via: usize, instance: &InstanceId) -> Option<serde_json::Value> {
        let response = self
            .http
            .get(format!(
                "{}/api/user/config?instanceId={instance}",
                self.url(via)
            ))
            .bearer_auth(token())
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        response.json().await.ok()
    }

    /// Waits until node `via` serves the configuration; returns it and how long it took.
    pub async fn served_by(
        &self,
        via: usize,
        instance: &InstanceId,
    ) -> (serde_json::Value, Duration) {
        let started = Instant::now();
        loop {
            if let Some(config) = self.config(via, instance).await {
                return (config, started.elapsed());
            }
            assert!(
                started.elapsed() < bound(),
                "node{via} did not serve the instance within {:?}",
                bound()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn admin(&self, via: usize, path: &str) -> serde_json::Value {
        let token = admin_token();
        let response = self
            .http
            .get(format!("{}/api/admin/{path}", self.url(via)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} via node{via}");
        response.json().await.unwrap()
    }

    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url(i)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Node `i` of a cluster on `database_url`, on a port of its own (kept across restarts), with
/// `extra` variables besides the cluster's own.
pub fn node_options(
    data_dir: &std::path::Path,
    i: usize,
    database_url: &str,
    extra: &[(&str, &str)],
) -> ServeOptions {
    let port = free_port();
    let mut o = ServeOptions::new(data_dir)
        .env("BURROW_CLUSTER", "1")
        .env("BURROW_ADVERTISE_URL", format!("http://127.0.0.1:{port}"))
        .env("BURROW_NODE_ID", format!("node{i}"))
        .env("BURROW_LEASE_MS", LEASE.as_millis())
        .env("BURROW_CLUSTER_SECRET", CLUSTER_SECRET)
        .env("BURROW_RECONCILE_RUNNING_MS", 1_000)
        .env("BURROW_RECONCILE_TRANSIENT_MS", 1_000)
        .env("BURROW_RECONCILE_JITTER_MS", 0)
        .env("BURROW_HEALTH_WAIT_MS", 30_000);
    for (name, value) in super::GIVEN_SECRETS {
        o = o.env(name, value);
    }
    for (name, value) in extra {
        o = o.env(name, value);
    }
    o.database_url = Some(database_url.to_owned());
    o.listen = format!("127.0.0.1:{port}");
    o
}

/// An admin token.
pub fn admin_token() -> String {
    burrow::server::tokens::issue(
        super::GIVEN_SECRETS[0].1,
        &"root".parse().unwrap(),
        true,
        Duration::from_secs(3600),
    )
}

/// Starts every node at once, on a fresh database, as an operator starting a cluster would.
pub async fn start_all(options: &[ServeOptions]) -> Vec<BurrowProcess> {
    let starting: Vec<_> = options
        .iter()
        .map(|o| tokio::spawn(start(o.clone())))
        .collect();
    let mut nodes = Vec::new();
    for node in starting {
        nodes.push(node.await.unwrap());
    }
    nodes
}

pub async fn start(options: ServeOptions) -> BurrowProcess {
    BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap()
}

pub fn token() -> String {
    burrow::server::tokens::issue(
        super::GIVEN_SECRETS[0].1,
        &"ann".parse().unwrap(),
        false,
        Duration::from_secs(600),
    )
}

/// The actor files in a node's data directory.
pub fn actor_files(options: &ServeOptions) -> usize {
    super::walk(&options.data_dir.join("runtime"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .filter(|p| !p.to_string_lossy().contains("catalog"))
        .count()
}

/// Every acknowledged `name = value` must be in the configuration.
pub fn assert_ledger(config: &serde_json::Value, ledger: &[(String, String)]) {
    for (name, value) in ledger {
        assert_eq!(
            config["envVars"][name], *value,
            "acknowledged {name}={value} is lost: {config}"
        );
    }
}
