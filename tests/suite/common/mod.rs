//! The real `burrow` binary for end-to-end tests.

#![allow(dead_code)]

pub mod cluster;

use std::time::{Duration, Instant};

use burrow::identity::{InstanceId, UserId};
use burrow_client::{PlatformClient, ProvisionRequest};
use burrow_testkit::server::{BurrowProcess, ServeOptions};

/// The four secrets replicated durability needs given (each long enough), by variable.
pub const GIVEN_SECRETS: [(&str, &str); 4] = [
    (
        "BURROW_TOKEN_SECRET",
        "tttttttttttttttttttttttttttttttttttttttt",
    ),
    (
        "BURROW_INTERNAL_API_KEY",
        "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    ),
    (
        "BURROW_GATEWAY_SECRET",
        "gggggggggggggggggggggggggggggggggggggggg",
    ),
    (
        "BURROW_SECRETS_KEY",
        "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
    ),
];

pub struct Served {
    pub process: BurrowProcess,
    pub client: PlatformClient,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn serve() -> Served {
    serve_with(|o| o).await
}

pub async fn serve_with(configure: impl FnOnce(ServeOptions) -> ServeOptions) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let options = configure(
        ServeOptions::new(dir.path().join("data"))
            .env("BURROW_RECONCILE_JITTER_MS", 0)
            .env("BURROW_HEALTH_WAIT_MS", 30_000),
    );
    let process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap();
    let client = PlatformClient::new(process.url(), process.key("internalApiKey"));
    Served {
        process,
        client,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _dir: dir,
    }
}

impl Served {
    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        burrow::server::tokens::issue(
            &self.process.key("tokenSecret"),
            &user.parse().unwrap(),
            admin,
            Duration::from_secs(600),
        )
    }

    /// `GET path` as JSON, with a bearer token if given.
    pub async fn get_json(&self, path: &str, bearer: Option<&str>) -> serde_json::Value {
        let mut request = self.http.get(format!("{}{path}", self.url()));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.url());
        let response = self.http.get(url).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Provisions and waits until running.
    pub async fn running(&self, user: &UserId, instance: Option<InstanceId>) {
        let mut request = ProvisionRequest::new(user);
        request.instance_id = instance;
        self.client.provision(&request).await.unwrap();
        self.wait_status(user, instance, "running").await;
    }

    pub async fn wait_status(&self, user: &UserId, instance: Option<InstanceId>, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.client.status(user, instance).await.unwrap();
            if s.status.as_deref() == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {status}: {s:?}\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

/// Every file below `dir`, recursively (nothing if it does not exist).
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
