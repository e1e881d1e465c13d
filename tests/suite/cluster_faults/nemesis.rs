//! The nemesis: every few seconds one fault, dealt at random, injected and healed before the
//! next — kill -9 and restart, SIGSTOP for 0.5×, 1.5× or 3× the lease, a wiped data
//! directory, an immediate PostgreSQL restart (once per run), a slow or cut link between one
//! node and PostgreSQL, and a pause between a turn's append to the log and its local commit
//! (switched on in the running process, which is then killed or let go), and a stall: turns
//! held between their checks and their append while their node is paused past its lease (the
//! model's `Stall`), whose appends must then be refused.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use super::Run;
use super::history::{Fault, now_ms};
use super::proxy::Link;
use super::random::Random;
use crate::common::cluster::LEASE;

const KINDS: [&str; 10] = [
    "kill",
    "pause-0.5",
    "pause-1.5",
    "pause-3",
    "wipe",
    "postgres-restart",
    "link-delay",
    "link-cut",
    "pause-after-append",
    "stall",
];

/// Injects faults until `until_ms`, each healed before the next: the kinds are dealt from a
/// shuffled deck (every kind before any repeats; PostgreSQL restarts once per run).
pub async fn run(run: &mut Run, random: &mut Random, until_ms: u64) -> Vec<Fault> {
    let mut faults = Vec::new();
    let only = std::env::var("BURROW_CLUSTER_FAULT_ONLY").ok();
    if let Some(only) = &only {
        assert!(
            KINDS.contains(&only.as_str()),
            "BURROW_CLUSTER_FAULT_ONLY={only}: one of {KINDS:?}"
        );
    }
    let mut deck: Vec<&str> = Vec::new();
    let mut first_deck = true;
    while now_ms() + 8_000 < until_ms {
        tokio::time::sleep(Duration::from_millis(random.between(1_000, 3_000))).await;
        if deck.is_empty() {
            deck = KINDS
                .iter()
                .copied()
                .filter(|k| first_deck || *k != "postgres-restart")
                .collect();
            first_deck = false;
            for i in (1..deck.len()).rev() {
                deck.swap(i, random.below(i as u64 + 1) as usize);
            }
        }
        let kind = match &only {
            Some(only) => only.as_str(),
            None => deck.pop().expect("dealt"),
        };
        let node = random.below(3) as usize;
        let started_ms = now_ms();
        let (fault_node, takeover) = inject(run, random, kind, node).await;
        faults.push(Fault {
            what: kind.to_owned(),
            node: fault_node,
            started_ms,
            healed_ms: now_ms(),
            takeover,
        });
        eprintln!(
            "nemesis: {kind} on {} for {} ms",
            fault_node.map_or("postgres".to_owned(), |n| format!("node{n}")),
            now_ms() - started_ms
        );
    }
    faults
}

/// Injects one fault and heals it; returns the node it hit and whether that node's lists
/// were to be taken over.
async fn inject(run: &mut Run, random: &mut Random, kind: &str, n: usize) -> (Option<usize>, bool) {
    match kind {
        "kill" => {
            run.node(n).kill();
            tokio::time::sleep(Duration::from_millis(random.between(0, 5_000))).await;
            run.restart(n).await;
            (Some(n), true)
        }
        "pause-0.5" | "pause-1.5" | "pause-3" => {
            let times: f64 = kind["pause-".len()..].parse().unwrap();
            run.node(n).signal(Signal::SIGSTOP);
            tokio::time::sleep(LEASE.mul_f64(times)).await;
            run.node(n).signal(Signal::SIGCONT);
            (Some(n), times > 1.0)
        }
        "wipe" => {
            run.node(n).kill();
            std::fs::remove_dir_all(&run.options[n].data_dir).unwrap();
            run.restart(n).await;
            (Some(n), true)
        }
        "postgres-restart" => {
            run.postgres.stop_immediately().unwrap();
            tokio::time::sleep(Duration::from_millis(random.between(200, 1_000))).await;
            run.postgres.restart().unwrap();
            (None, false)
        }
        "link-delay" => {
            let delay = Duration::from_millis(random.between(50, 400));
            run.proxies[n].set(Link::Delay(delay));
            tokio::time::sleep(Duration::from_millis(random.between(1_000, 3_000))).await;
            run.proxies[n].set(Link::Pass);
            (Some(n), false)
        }
        "link-cut" => {
            run.proxies[n].set(Link::Blackhole);
            tokio::time::sleep(LEASE.mul_f64(1.5)).await;
            run.proxies[n].set(Link::Pass);
            (Some(n), true)
        }
        "pause-after-append" => {
            let pause = LEASE.mul_f64(1.5).as_millis() as u64;
            run.switch(n, "pauseAfterAppendMs", pause).await;
            tokio::time::sleep(Duration::from_millis(random.between(300, 1_500))).await;
            if random.below(2) == 0 {
                run.node(n).kill();
                tokio::time::sleep(Duration::from_millis(random.between(0, 2_000))).await;
                run.restart(n).await;
                (Some(n), true)
            } else {
                run.switch(n, "pauseAfterAppendMs", 0).await;
                (Some(n), false)
            }
        }
        "stall" => {
            // Held past the pause and a takeover, so that the held turns append after another
            // node has claimed their actors.
            run.switch(n, "pauseBeforeAppendMs", LEASE.as_millis() as u64 * 3)
                .await;
            // Only the turns that begin in this short window are held.
            tokio::time::sleep(Duration::from_millis(random.between(50, 300))).await;
            run.node(n).signal(Signal::SIGSTOP);
            tokio::time::sleep(LEASE.mul_f64(1.5)).await;
            run.node(n).signal(Signal::SIGCONT);
            run.switch(n, "pauseBeforeAppendMs", 0).await;
            (Some(n), true)
        }
        other => unreachable!("fault {other}"),
    }
}

impl Run {
    /// Switches the pause `which` (`pauseAfterAppendMs`, `pauseBeforeAppendMs`) on node `n`
    /// (0: off).
    async fn switch(&self, n: usize, which: &str, ms: u64) {
        let switched = self
            .http
            .post(format!("{}/_test/faults", self.url(n)))
            .bearer_auth(&self.admin)
            .json(&json!({ which: ms }))
            .send()
            .await;
        if !switched.as_ref().is_ok_and(|r| r.status() == 204) {
            eprintln!("nemesis: switching node{n}'s pause failed: {switched:?}");
        }
    }
}
