//! The cluster under faults, checked like Jepsen checks a database: three
//! `burrow serve --cluster` processes on one PostgreSQL (`fsync` and `synchronous_commit` on),
//! each reaching it through a TCP proxy the nemesis can slow or cut; 8 clients appending unique
//! elements to 20 lists and reading them whole through random nodes; a nemesis injecting one
//! fault every few seconds (`nemesis.rs`); every operation's invocation and completion
//! recorded, every acknowledgement logged by the node that made it; then a checker
//! (`checker.rs`) over the whole history. It fails on any anomaly, and on a takeover slower
//! than 3 × lease + 5 s.
//!
//! - `BURROW_CLUSTER_FAULT_SECS` (default 45): how long the workload runs.
//! - `BURROW_CLUSTER_FAULT_SEED`: replays a run's choices (faults, their nodes and durations,
//!   the clients' operations; timing still varies). Printed by every run.
//! - `BURROW_CLUSTER_FAULT_CHECK=FILE`: runs the checker again on a saved history.
//! - `BURROW_CLUSTER_FAULT_ONLY=KIND`: injects only faults of one kind (see `nemesis.rs`).
//! - `BURROW_CLUSTER_FAULT_MUTANT=unfenced`: the nodes append without the fence's epoch and head
//!   conditions; the test then passes only if one of three runs finds an anomaly (the checker's
//!   teeth).
//!
//! The whole history of a run is saved as JSON under the target directory.

mod checker;
mod history;
mod nemesis;
mod proxy;
mod random;
mod readiness;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burrow_testkit::server::{BurrowProcess, ServeOptions};
use serde_json::json;

use crate::common::cluster::{LEASE, ONE_AT_A_TIME, admin_token, bound, node_options, start_all};
use history::{History, Kind, Op, Outcome, now_ms, read_acks};
use proxy::{FaultProxy, Link};
use random::Random;

const CLIENTS: usize = 8;
const LISTS: u64 = 20;

/// Three nodes, their proxies and PostgreSQL.
pub(crate) struct Run {
    pub postgres: burrow_testkit::pg::Cluster,
    pub proxies: Vec<FaultProxy>,
    pub options: Vec<ServeOptions>,
    nodes: Vec<BurrowProcess>,
    pub http: reqwest::Client,
    pub admin: String,
    acks: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Run {
    async fn start(extra: &[(&str, &str)]) -> Run {
        let postgres = tokio::task::spawn_blocking(burrow_testkit::pg::Cluster::start_durable)
            .await
            .unwrap()
            .expect("a durable PostgreSQL");
        let dir = tempfile::tempdir().unwrap();
        let mut proxies = Vec::new();
        let mut options = Vec::new();
        let mut acks = Vec::new();
        for i in 0..3 {
            let proxy = FaultProxy::start(postgres.port()).await;
            let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
            // Outside the data directory, which the nemesis wipes.
            let ack_log = dir.path().join(format!("acks-node{i}.jsonl"));
            let o = node_options(&dir.path().join(format!("node{i}")), i, &url, extra)
                .env("BURROW_FAULT_ACK_LOG", ack_log.display());
            proxies.push(proxy);
            options.push(o);
            acks.push(ack_log);
        }
        let nodes = start_all(&options).await;
        Run {
            postgres,
            proxies,
            options,
            nodes,
            http: client(),
            admin: admin_token(),
            acks,
            _dir: dir,
        }
    }

    pub fn node(&mut self, n: usize) -> &mut BurrowProcess {
        &mut self.nodes[n]
    }

    /// Node `n`'s address, which stays the same across restarts.
    pub fn url(&self, n: usize) -> String {
        format!("http://{}", self.options[n].listen)
    }

    /// Restarts node `n`, as often as it takes (PostgreSQL may be restarting too).
    pub async fn restart(&mut self, n: usize) {
        for attempt in 1.. {
            match self.nodes[n].restart().await {
                Ok(()) => return,
                Err(e) if attempt < 5 => eprintln!("restarting node{n}: {e}"),
                Err(e) => panic!("node{n} does not start again: {e}"),
            }
        }
    }

    /// Every fault healed: links pass, no node paused, every node serving.
    async fn heal(&mut self) {
        for proxy in &self.proxies {
            proxy.set(Link::Pass);
        }
        for n in 0..3 {
            self.nodes[n].signal(nix::sys::signal::Signal::SIGCONT);
            if self.nodes[n].pid().is_none() {
                self.restart(n).await;
            }
        }
    }

    /// What node `n` counted of fencing and takeovers, as `name value` pairs.
    async fn counters(&self, n: usize) -> String {
        let text = match self
            .http
            .get(format!("{}/metrics", self.url(n)))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => return e.to_string(),
        };
        text.lines()
            .filter(|l| {
                [
                    "burrow_log_fenced_total",
                    "burrow_cluster_takeovers_total",
                    "burrow_log_append_failures_total",
                    "burrow_activations_outlived_total",
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        // Past the time a node takes to give up on a paused holder (a lease and a bit), so that
        // a call can end in a takeover; short enough that a client waiting on a paused node
        // or a held turn goes on, as clients do, and the other nodes keep being asked.
        .timeout(LEASE.mul_f64(2.5))
        .build()
        .unwrap()
}

/// One client: operations one after another, each on a random list through a random node.
async fn workload(c: usize, seed: u64, urls: Arc<Vec<String>>, until_ms: u64) -> Vec<Op> {
    let (http, admin) = (client(), admin_token());
    let mut random = Random::new(seed ^ (c as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut ops = Vec::new();
    while now_ms() < until_ms {
        let id = format!("c{c}-{}", ops.len());
        let list = format!("l{}", random.below(LISTS));
        let node = random.below(3) as usize;
        let kind = if random.below(4) == 0 {
            Kind::Read
        } else {
            Kind::Append(id.clone())
        };
        let invoked_ms = now_ms();
        let url = format!("{}/_test/lists/{list}", urls[node]);
        let request = match &kind {
            Kind::Append(e) => http.post(url).json(&json!({ "element": e })),
            Kind::Read => http.get(url).query(&[("op", &id)]),
        };
        let outcome = outcome(request.bearer_auth(&admin).send().await).await;
        ops.push(Op {
            id,
            client: c,
            list,
            node,
            kind,
            invoked_ms,
            completed_ms: now_ms(),
            outcome,
        });
        tokio::time::sleep(Duration::from_millis(random.between(5, 20))).await;
    }
    ops
}

async fn outcome(sent: reqwest::Result<reqwest::Response>) -> Outcome {
    let response = match sent {
        Ok(r) => r,
        // Nothing reached a node.
        Err(e) if e.is_connect() => return Outcome::Failed,
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    let status = response.status();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Outcome::Unknown(format!("{status}: {body}"));
    }
    match response.json::<serde_json::Value>().await {
        Ok(ack) => Outcome::Ok {
            epoch: ack["epoch"].as_u64().unwrap_or(0),
            seq: ack["seq"].as_u64().unwrap_or(0),
            elements: ack
                .get("elements")
                .map(|e| serde_json::from_value(e.clone()).expect("a list of strings")),
        },
        Err(e) => Outcome::Unknown(format!("reading the answer: {e}")),
    }
}

/// After healing: every list read through the nodes in turn, until one answers (all of them
/// within two takeover bounds).
async fn final_reads(run: &Run) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    for l in 0..LISTS {
        let list = format!("l{l}");
        for attempt in 0.. {
            let response = run
                .http
                .get(format!("{}/_test/lists/{list}", run.url(attempt % 3)))
                .query(&[("op", format!("final-{list}"))])
                .bearer_auth(&run.admin)
                .send()
                .await;
            let refused = match response {
                Ok(r) if r.status() == 200 => {
                    let ack: serde_json::Value = r.json().await.unwrap();
                    out.push((
                        list,
                        serde_json::from_value(ack["elements"].clone()).unwrap(),
                    ));
                    break;
                }
                Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > bound() * 2 {
                // The checker reports the list unserved.
                eprintln!("list {list} is not served after healing: {refused}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    out
}

/// The log's entries of every list: (list, seq, epoch).
async fn entries(run: &Run) -> Vec<(String, u64, u64)> {
    let db = run.postgres.connect("postgres").await.unwrap();
    db.query(
        "SELECT a.name, e.seq, e.epoch FROM burrow_log_entry e
           JOIN burrow_log_actor a ON a.namespace = e.namespace AND a.actor_id = e.actor_id
          WHERE e.namespace = 'list'",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let (seq, epoch): (i64, i64) = (r.get(1), r.get(2));
        (r.get(0), seq as u64, epoch as u64)
    })
    .collect()
}

/// One whole run: workload and nemesis, healing, final reads, the history.
async fn one_run(seed: u64, secs: u64, extra: &[(&str, &str)]) -> History {
    let mut run = Run::start(extra).await;
    let urls = Arc::new((0..3).map(|n| run.url(n)).collect::<Vec<_>>());
    let until_ms = now_ms() + secs * 1_000;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(workload(c, seed, urls.clone(), until_ms)))
        .collect();
    let ticker = tokio::spawn(harness_stalls(until_ms));
    let mut random = Random::new(seed);
    let faults = nemesis::run(&mut run, &mut random, until_ms).await;
    let mut ops = Vec::new();
    for c in clients {
        ops.extend(c.await.unwrap());
    }
    run.heal().await;
    let final_reads = final_reads(&run).await;
    for n in 0..3 {
        eprintln!("node{n} (since its last start): {}", run.counters(n).await);
    }
    let entries = entries(&run).await;
    let acks = (0..3).flat_map(|n| read_acks(&run.acks[n], n)).collect();
    History {
        seed,
        lease_ms: LEASE.as_millis() as u64,
        ops,
        faults,
        acks,
        entries,
        final_reads,
        harness_stalls: ticker.await.unwrap(),
    }
}

/// Ticks every 100 ms until `until_ms`; returns the spans in which a tick came over a second
/// late (the test process was not running).
async fn harness_stalls(until_ms: u64) -> Vec<(u64, u64)> {
    let mut stalls = Vec::new();
    let mut last = now_ms();
    while last < until_ms {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = now_ms();
        if now - last > 1_100 {
            eprintln!("the test process stalled for {} ms", now - last);
            stalls.push((last, now));
        }
        last = now;
    }
    stalls
}

fn save(h: &History) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-faults-{}.json", h.seed));
    std::fs::write(&path, serde_json::to_vec(h).unwrap()).unwrap();
    path
}

fn summary(h: &History, report: &checker::Report) {
    let count = |f: &dyn Fn(&Op) -> bool| h.ops.iter().filter(|op| f(op)).count();
    eprintln!(
        "cluster faults (seed {}): {} operations: {} ok, {} failed, {} unknown; {} appends acknowledged",
        h.seed,
        h.ops.len(),
        count(&|op| op.ok()),
        count(&|op| op.outcome == Outcome::Failed),
        count(&|op| matches!(op.outcome, Outcome::Unknown(_))),
        count(&|op| op.ok() && op.element().is_some()),
    );
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &h.faults {
        *kinds.entry(&f.what).or_default() += 1;
    }
    eprintln!("faults injected: {} {kinds:?}", h.faults.len());
    let q =
        |p| checker::quantile(&report.takeovers_ms, p).map_or("-".into(), |v| format!("{v} ms"));
    eprintln!(
        "takeover after kills and long pauses: p50 {}, p99 {} ({} takeovers)",
        q(0.5),
        q(0.99),
        report.takeovers_ms.len()
    );
    if !h.harness_stalls.is_empty() {
        eprintln!(
            "the test process stalled {} times; takeovers across a stall, not judged: {:?} ms",
            h.harness_stalls.len(),
            report.takeovers_across_stalls_ms
        );
    }
    let (ok, all) = report.untouched;
    eprintln!(
        "operations untouched by faults: {ok} of {all} succeeded ({:.2} %)",
        100.0 * ok as f64 / all.max(1) as f64
    );
    eprintln!("anomalies: {}", report.anomalies.len());
    for a in report.anomalies.iter().take(30) {
        eprintln!("  {a}");
    }
}

fn seed() -> u64 {
    std::env::var("BURROW_CLUSTER_FAULT_SEED")
        .ok()
        .map(|s| s.parse().expect("BURROW_CLUSTER_FAULT_SEED: a number"))
        .unwrap_or_else(now_ms)
}

fn secs() -> u64 {
    std::env::var("BURROW_CLUSTER_FAULT_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("BURROW_CLUSTER_FAULT_SECS: a number of seconds")
        })
        .unwrap_or(45)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_under_faults_loses_nothing_and_stays_linearizable() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Ok(saved) = std::env::var("BURROW_CLUSTER_FAULT_CHECK") {
        // Checks a saved history again, without running anything.
        let h: History = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        let report = checker::check(&h);
        summary(&h, &report);
        assert!(report.anomalies.is_empty(), "{saved}: anomalies");
        return;
    }
    let mutant = std::env::var("BURROW_CLUSTER_FAULT_MUTANT").ok();
    match mutant.as_deref() {
        None | Some("") => {}
        Some("unfenced") => return teeth().await,
        Some(other) => panic!("BURROW_CLUSTER_FAULT_MUTANT={other}: only `unfenced` exists"),
    }
    let h = one_run(seed(), secs(), &[]).await;
    let report = checker::check(&h);
    summary(&h, &report);
    let saved = save(&h);
    assert!(
        report.anomalies.is_empty(),
        "{} anomalies (history: {}; replay with BURROW_CLUSTER_FAULT_SEED={})",
        report.anomalies.len(),
        saved.display(),
        h.seed
    );
    let p99 = checker::quantile(&report.takeovers_ms, 0.99).unwrap_or(0);
    assert!(
        Duration::from_millis(p99) <= bound(),
        "takeover p99 {p99} ms is over {:?} (history: {})",
        bound(),
        saved.display()
    );
    assert!(
        h.ops.iter().filter(|op| op.ok()).count() > 100,
        "too few operations succeeded for the run to mean anything"
    );
}

/// With appends unfenced, one of three runs must find an anomaly.
async fn teeth() {
    for run in 1..=3 {
        let h = one_run(
            seed() + run,
            secs(),
            &[("BURROW_FAULT_UNFENCED_APPEND", "1")],
        )
        .await;
        let report = checker::check(&h);
        summary(&h, &report);
        save(&h);
        if !report.anomalies.is_empty() {
            eprintln!("the unfenced mutant was caught in run {run}");
            return;
        }
    }
    panic!("three runs with unfenced appends found no anomaly: the checker has no teeth");
}

mod checker_tests;
