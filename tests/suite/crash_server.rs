//! Kill -9 under load, against the real binary and a real PostgreSQL registry.
//!
//! Clients keep writing configuration through the API; every acknowledged write goes into a
//! ledger. The server is killed at random moments and restarted. After each kill: every actor
//! file passes `PRAGMA integrity_check`; after each restart: every acknowledged write is there,
//! no instance stays starting or restarting past its (test-sized) timeout, and no sandbox is
//! duplicated. A second test breaks the output gate on purpose (replies before commits) and
//! requires the same checks to notice.
//!
//! The same load runs with `--durability replicated`, where each kill also loses the host: the
//! data directory is deleted and the sandbox processes killed before the restart, and still
//! nothing acknowledged may be lost (the log in PostgreSQL has it); with replies sent before
//! the log's append, that test must find losses.
//!
//! `BURROW_CRASH_ROUNDS` sets the number of kills (default 25); `BURROW_HOST_LOSS_ROUNDS` the
//! number of lost hosts (default 6).

use crate::common::walk;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow::identity::{InstanceId, UserId};
use burrow_client::{PlatformClient, ProvisionRequest};
use burrow_testkit::server::{BurrowProcess, ServeOptions, sandboxes};
use serde_json::{Value, json};

/// Test-sized lifecycle: a start or restart cut short by a kill is settled within seconds.
const TRANSIENT_TIMEOUT_MS: u64 = 2_000;

fn random_below(n: u64) -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % n
}

#[derive(Clone)]
struct Target {
    user: UserId,
    instance: Option<InstanceId>,
}

impl Target {
    fn label(&self) -> String {
        format!(
            "{}/{}",
            self.user,
            self.instance.map_or("legacy".into(), |i| i.to_string())
        )
    }

    fn query(&self) -> String {
        self.instance
            .map_or(String::new(), |i| format!("?instanceId={i}"))
    }
}

/// Acknowledged writes: per instance, per key, the highest value acknowledged.
type Ledger = Arc<Mutex<HashMap<String, BTreeMap<String, u64>>>>;

/// How many writes were acknowledged in all.
static ACKNOWLEDGED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Debug, Default)]
struct Report {
    kills: usize,
    acknowledged: usize,
    files_checked: usize,
    lost: Vec<String>,
    corrupt: Vec<String>,
}

struct Suite {
    process: BurrowProcess,
    http: reqwest::Client,
    targets: Vec<Target>,
    ledger: Ledger,
    mode: Mode,
    _db: burrow_testkit::pg::TestDatabase,
    _dir: tempfile::TempDir,
}

/// How the server keeps acknowledged writes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The default, `--durability process`: each kill keeps the data directory.
    Local,
    /// `--durability replicated`: each kill also loses the data directory and the sandboxes.
    HostLoss,
}

impl Suite {
    async fn start(fault_ms: Option<u64>, mode: Mode) -> Suite {
        let db = burrow_testkit::pg::fresh_database().await;
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServeOptions::new(dir.path().join("data"))
            .env("BURROW_RECONCILE_JITTER_MS", 0)
            .env("BURROW_RECONCILE_TRANSIENT_MS", 200)
            .env("BURROW_RECONCILE_IDLE_MS", 1_000)
            .env("BURROW_TRANSIENT_TIMEOUT_MS", TRANSIENT_TIMEOUT_MS)
            .env("BURROW_HEALTH_WAIT_MS", 10_000)
            // Evictions happen during the load too.
            .env("BURROW_IDLE_TIMEOUT_MS", 300);
        options.database_url = Some(db.url().to_owned());
        if mode == Mode::HostLoss {
            // Secrets are given, not generated: a keys file would go with the data directory.
            options = options
                .env("BURROW_DURABILITY", "replicated")
                .env("BURROW_TOKEN_SECRET", "t".repeat(40))
                .env("BURROW_INTERNAL_API_KEY", "i".repeat(40))
                .env("BURROW_GATEWAY_SECRET", "g".repeat(40))
                .env("BURROW_SECRETS_KEY", "5e".repeat(32));
        }
        if let Some(ms) = fault_ms {
            options = options.env("BURROW_FAULT_ACK_BEFORE_COMMIT_MS", ms);
        }
        let process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
            .await
            .unwrap();
        let client = PlatformClient::new(process.url(), process.key("internalApiKey"));
        let org = client.create_organization("Crash Org", None).await.unwrap();
        let user = |n: &str| n.parse::<UserId>().unwrap();
        let targets = vec![
            Target {
                user: user("alice"),
                instance: Some(InstanceId::new_random()),
            },
            Target {
                user: user("alice"),
                instance: Some(InstanceId::new_random()),
            },
            Target {
                user: user("alice"),
                instance: None,
            },
            Target {
                user: user("bob"),
                instance: None,
            },
            Target {
                user: user("carol"),
                instance: Some(InstanceId::new_random()),
            },
            Target {
                user: user("dave"),
                instance: Some(InstanceId::new_random()),
            },
        ];
        for (i, t) in targets.iter().enumerate() {
            let mut request = ProvisionRequest::new(&t.user);
            request.instance_id = t.instance;
            if i == 4 {
                request.org_id = Some(org);
            }
            request
                .secrets
                .insert("SEALED".into(), format!("secret-{i}"));
            client.provision(&request).await.unwrap();
        }
        Suite {
            process,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            targets,
            ledger: Arc::default(),
            mode,
            _db: db,
            _dir: dir,
        }
    }

    fn token(&self, user: &UserId) -> String {
        burrow::server::tokens::issue(
            &self.process.key("tokenSecret"),
            user,
            false,
            Duration::from_secs(3600),
        )
    }

    fn client(&self) -> PlatformClient {
        PlatformClient::new(self.process.url(), self.process.key("internalApiKey"))
    }

    /// Waits until no instance is starting or restarting, and restarts stopped ones.
    async fn settle(&self, report: &mut Report) {
        let client = self.client();
        for t in &self.targets {
            // Its timeout, a reconcile period, and a start of its own.
            let deadline = Instant::now()
                + Duration::from_millis(TRANSIENT_TIMEOUT_MS)
                + Duration::from_secs(15);
            loop {
                let status = client
                    .status(&t.user, t.instance)
                    .await
                    .unwrap()
                    .status
                    .unwrap_or_default();
                match status.as_str() {
                    "running" => break,
                    "stopped" | "provisioned" => {
                        client.start(&t.user, t.instance, true).await.unwrap();
                    }
                    _ => {}
                }
                if Instant::now() > deadline {
                    let debug = client.debug_status(&t.user, t.instance).await.ok();
                    report.lost.push(format!(
                        "{} stayed {status} past its timeout: {}",
                        t.label(),
                        debug.map_or_else(String::new, |d| d.to_string())
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// One round of load: a writer per instance, plus an occasional restart; returns when the
    /// server has been killed and every writer has stopped.
    async fn load_and_kill(&mut self, report: &mut Report) {
        let mut writers = Vec::new();
        for t in self.targets.clone() {
            let (http, url, token, ledger) = (
                self.http.clone(),
                format!("{}/api/user/config{}", self.process.url(), t.query()),
                self.token(&t.user),
                self.ledger.clone(),
            );
            writers.push(tokio::spawn(async move {
                let mut seq = ledger
                    .lock()
                    .unwrap()
                    .get(&t.label())
                    .map_or(0, |keys| keys.values().copied().max().unwrap_or(0));
                loop {
                    seq += 1;
                    let key = format!("K{}", seq % 40);
                    let sent = http
                        .patch(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "envVars": { key.clone(): seq.to_string() } }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let mut ledger = ledger.lock().unwrap();
                            let acked =
                                ledger.entry(t.label()).or_default().entry(key).or_insert(0);
                            *acked = (*acked).max(seq);
                            ACKNOWLEDGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(r) if r.status().is_server_error() || r.status() == 429 => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(r) => panic!("{}: unexpected {}", t.label(), r.status()),
                        // The server is gone: this round is over.
                        Err(_) => return,
                    }
                }
            }));
        }
        // Kills land during starts too, not only during writes.
        let restarted = self.targets[random_below(self.targets.len() as u64) as usize].clone();
        let client = self.client();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(random_below(300))).await;
            let _ = client
                .restart(&restarted.user, restarted.instance, None)
                .await;
        });
        tokio::time::sleep(Duration::from_millis(150 + random_below(700))).await;
        self.process.kill();
        report.kills += 1;
        for w in writers {
            w.await.unwrap();
        }
    }

    /// Every actor file (copied with its WAL, as the server left them) passes an integrity check.
    fn check_files(&self, report: &mut Report) {
        let root = self.process.data_dir().join("runtime").join("actors");
        let scratch = tempfile::tempdir().unwrap();
        for file in walk(&root)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
        {
            let copy = scratch.path().join("check.db");
            std::fs::copy(&file, &copy).unwrap();
            let wal = PathBuf::from(format!("{}-wal", file.display()));
            let copy_wal = PathBuf::from(format!("{}-wal", copy.display()));
            let _ = std::fs::remove_file(&copy_wal);
            if wal.exists() {
                std::fs::copy(&wal, &copy_wal).unwrap();
            }
            let conn = rusqlite::Connection::open(&copy).unwrap();
            let verdict: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap_or_else(|e| e.to_string());
            if verdict != "ok" {
                report
                    .corrupt
                    .push(format!("{}: {verdict}", file.display()));
            }
            drop(conn);
            let _ = std::fs::remove_file(&copy_wal);
            report.files_checked += 1;
        }
    }

    /// Every acknowledged write is readable.
    async fn check_ledger(&self, report: &mut Report) {
        let ledger = self.ledger.lock().unwrap().clone();
        for t in &self.targets {
            let Some(acked) = ledger.get(&t.label()) else {
                continue;
            };
            let config: Value = self
                .http
                .get(format!(
                    "{}/api/user/config{}",
                    self.process.url(),
                    t.query()
                ))
                .bearer_auth(self.token(&t.user))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for (key, seq) in acked {
                let stored = config["envVars"][key]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok());
                if stored.is_none_or(|v| v < *seq) {
                    report.lost.push(format!(
                        "{}: {key} acknowledged at {seq}, found {stored:?}",
                        t.label()
                    ));
                }
            }
            if self.mode == Mode::HostLoss {
                // Rebuilt from the log, not restored from the registry with its
                // configuration wiped.
                let debug = self
                    .client()
                    .debug_status(&t.user, t.instance)
                    .await
                    .unwrap();
                if debug["configurationLost"] != json!(false) || !debug["restoredAt"].is_null() {
                    report.lost.push(format!(
                        "{}: came back through a registry restore: {debug}",
                        t.label()
                    ));
                }
            }
            if config["secretNames"] != json!(["SEALED"]) {
                report
                    .lost
                    .push(format!("{}: secrets {}", t.label(), config["secretNames"]));
            }
        }
        report.acknowledged = ACKNOWLEDGED.load(std::sync::atomic::Ordering::Relaxed);
    }

    fn check_sandboxes(&self, report: &mut Report) {
        let mut per_sandbox: HashMap<String, usize> = HashMap::new();
        for s in sandboxes(self.process.data_dir()) {
            *per_sandbox.entry(s.sandbox_id).or_default() += 1;
        }
        for (sandbox, n) in per_sandbox {
            if n > 1 {
                report
                    .lost
                    .push(format!("sandbox {sandbox} runs {n} times"));
            }
        }
    }

    /// The host is gone: its sandboxes die with it and its disk is replaced by an empty one.
    fn lose_host(&self) {
        for pid in self.process.sandbox_pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::fs::remove_dir_all(self.process.data_dir()).unwrap();
    }

    async fn rounds(&mut self, rounds: usize, stop_at_first_loss: bool) -> Report {
        let mut report = Report::default();
        self.settle(&mut report).await;
        for round in 0..rounds {
            self.load_and_kill(&mut report).await;
            self.check_files(&mut report);
            if self.mode == Mode::HostLoss {
                self.lose_host();
            }
            self.process.restart().await.unwrap();
            self.check_ledger(&mut report).await;
            self.settle(&mut report).await;
            self.check_sandboxes(&mut report);
            if stop_at_first_loss && !report.lost.is_empty() {
                break;
            }
            eprintln!(
                "round {round}: {} kills, {} writes acknowledged (all tests of this binary), {} files checked",
                report.kills, report.acknowledged, report.files_checked
            );
        }
        report
    }

    /// Fails with the server's log if anything acknowledged was lost or any file is corrupt.
    fn assert_nothing_lost(&self, report: &Report, rounds: usize) {
        if !report.lost.is_empty() {
            let log = self.process.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            panic!(
                "lost: {:#?}\nlog (last 200 lines, newest first):\n{}",
                report.lost,
                tail.join("\n")
            );
        }
        assert!(report.corrupt.is_empty(), "corrupt: {:#?}", report.corrupt);
        assert_eq!(report.kills, rounds);
        assert!(report.acknowledged > 0);
    }
}

/// A round count from the environment, or the default.
fn rounds_from(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_kill_9() {
    let rounds = rounds_from("BURROW_CRASH_ROUNDS", 25);
    let mut suite = Suite::start(None, Mode::Local).await;
    let report = suite.rounds(rounds, false).await;
    eprintln!("{report:?}");
    suite.assert_nothing_lost(&report, rounds);
    assert!(report.files_checked >= rounds * suite.targets.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_test_fails_when_replies_precede_commits() {
    let mut suite = Suite::start(Some(300), Mode::Local).await;
    let report = suite.rounds(10, true).await;
    eprintln!("{report:?}");
    assert!(
        !report.lost.is_empty(),
        "with replies sent before their commits the kill test found nothing lost: it has no teeth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_the_host_is_lost() {
    let rounds = rounds_from("BURROW_HOST_LOSS_ROUNDS", 6);
    let mut suite = Suite::start(None, Mode::HostLoss).await;
    let report = suite.rounds(rounds, false).await;
    eprintln!("{report:?}");
    suite.assert_nothing_lost(&report, rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_loss_test_fails_when_replies_precede_the_append() {
    let mut suite = Suite::start(Some(300), Mode::HostLoss).await;
    let report = suite.rounds(10, true).await;
    eprintln!("{report:?}");
    assert!(
        !report.lost.is_empty(),
        "with replies sent before the log's append the host-loss test found nothing lost: it has no teeth"
    );
}
