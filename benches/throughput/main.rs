//! Activation and call throughput, as a ratio of plain rusqlite doing the same work in the same
//! run (absolute rates on a shared machine are noise; the ratio is the figure that matters).
//!
//! `cargo bench --bench throughput`. Environment:
//! - `BURROW_BENCH_ACTORS` — actors per cold/re-activation run (default 20,000);
//! - `BURROW_BENCH_CALLS` — calls per warm run (default 20,000);
//! - `BURROW_BENCH_CONCURRENCY` — comma-separated caller counts (default `1,16,64,256`);
//! - `BURROW_BENCH_MODES` — comma-separated `process`, `machine`, `replicated`; `both` (the
//!   default) is the first two, `all` is all three. `replicated` starts its own PostgreSQL with
//!   fsync on (see `replicated.rs`);
//! - `BURROW_BENCH_RESTORE` — instances restored from PostgreSQL per restore run (default 2,000;
//!   0 skips the scenario, which starts a throwaway PostgreSQL cluster);
//! - `BURROW_BENCH_TURNS_PER_COMMIT` — the runtime's `max_turns_per_commit` (default: the
//!   runtime's default; 1 turns group commit off, for comparison);
//! - `BURROW_BENCH_SPIN_US` — the runtime's `spin_before_park` in µs (default: the runtime's);
//! - `BURROW_BENCH_CHECKPOINT_ABOVE` — the runtime's `checkpoint_above` in bytes (default: the
//!   runtime's default);
//! - `BURROW_BENCH_SCALE=1` — also run the scale scenario (process mode): cold activation with
//!   10,000 vs `BURROW_BENCH_SCALE_ACTORS` (default 1,000,000) actors already on disk; checks
//!   free disk space first.
//!
//! Writes a table to stdout, `target/burrow-bench/results.json` and
//! `target/burrow-bench/throughput.svg` (rate against concurrency, one panel per scenario).
//! `BURROW_BENCH_PLOT_FROM=<results.json>` only re-draws the plot of an earlier run, beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burrow_runtime::{
    Abort, Actor, Context, Durability, Handler, Message, Namespace, Options, Runtime,
};
use rusqlite::{Connection, OpenFlags};

const ROW: [u8; 200] = [0x5A; 200];

/// Longer than the runtime's wait before an idle actor's caches are freed (1 s).
const SETTLE: Duration = Duration::from_millis(1_500);

/// A ~200-byte row that differs from call to call (a rewrite of identical bytes could let
/// SQLite skip work a real write does).
fn row() -> Vec<u8> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut row = ROW.to_vec();
    row[..8].copy_from_slice(&CALLS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    row
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The benchmark actor: one call writes a ~200-byte row and reads it back.
struct Bench;

impl Actor for Bench {}

/// Writes the row and reads it back; replies with its length.
struct Touch;

impl Message for Touch {
    type Reply = usize;
}

impl Handler<Touch> for Bench {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Touch) -> Result<usize, Abort> {
        let storage = ctx.storage();
        storage.put("row", &row())?;
        Ok(storage.get::<Vec<u8>>("row")?.map_or(0, |v| v.len()))
    }
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The runtime's options for a bench run, with the environment's knobs applied.
fn options(dir: &Path, durability: Durability, max_resident: usize) -> Options {
    let mut options = Options::new(dir)
        .durability(durability)
        .max_resident(max_resident);
    if let Ok(turns) = std::env::var("BURROW_BENCH_TURNS_PER_COMMIT") {
        options = options.max_turns_per_commit(turns.parse().expect("a number of turns"));
    }
    if let Ok(us) = std::env::var("BURROW_BENCH_SPIN_US") {
        let us = us.parse().expect("microseconds");
        options = options.spin_before_park(Duration::from_micros(us));
    }
    if let Ok(bytes) = std::env::var("BURROW_BENCH_CHECKPOINT_ABOVE") {
        options = options.checkpoint_above(bytes.parse().expect("a number of bytes"));
    }
    options
}

fn open(dir: &Path, durability: Durability, max_resident: usize) -> (Runtime, Namespace<Bench>) {
    let runtime = Runtime::open(options(dir, durability, max_resident)).unwrap();
    let ns = runtime.namespace("bench", |_| Bench).unwrap();
    (runtime, ns)
}

mod baseline;
mod drive;
mod measure;
mod plot;
mod replicated;
mod restore;

use baseline::*;
use drive::*;
use measure::*;
use plot::plot;

struct Row {
    mode: &'static str,
    scenario: String,
    concurrency: usize,
    rate: f64,
    baseline: f64,
    /// Burrow's p50 and p99, then the baseline's, where the scenario times its calls.
    latency: Option<(Duration, Duration, Duration, Duration)>,
    /// Burrow's process mode in the same scenario, for the replicated rows.
    process: Option<f64>,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Re-draw the plot of an earlier run without running anything.
    if let Ok(json) = std::env::var("BURROW_BENCH_PLOT_FROM") {
        let results: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let rows: Vec<Row> = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Row {
                mode: match r["mode"].as_str() {
                    Some("machine") => "machine",
                    Some("replicated") => "replicated",
                    _ => "process",
                },
                scenario: r["scenario"].as_str().unwrap().to_owned(),
                concurrency: r["concurrency"].as_u64().unwrap() as usize,
                rate: r["rate"].as_f64().unwrap(),
                baseline: r["baseline"].as_f64().unwrap(),
                latency: None,
                process: None,
            })
            .collect();
        let svg = PathBuf::from(&json).with_extension("svg");
        plot(&rows, &svg).unwrap();
        println!("wrote {}", svg.display());
        return;
    }
    let actors: u64 = env("BURROW_BENCH_ACTORS", 20_000);
    let calls: u64 = env("BURROW_BENCH_CALLS", 20_000);
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Ok(mode) = std::env::var(BASELINE_CHILD) {
        let durability = if mode == "machine" {
            Durability::Machine
        } else {
            Durability::Process
        };
        let threads: usize = env(BASELINE_THREADS, shards);
        let base_dir = tempfile::tempdir().unwrap();
        settle();
        let cold = baseline_files(base_dir.path(), 0, actors, threads, true, durability);
        let reopen = baseline_files(base_dir.path(), 0, actors, threads, false, durability);
        let warm = baseline_warm(base_dir.path(), calls, durability);
        let many = baseline_warm_many(base_dir.path(), calls, threads, durability);
        println!("{}", serde_json::json!([cold, reopen, warm, many]));
        return;
    }
    let sweep: Vec<usize> = env("BURROW_BENCH_CONCURRENCY", "1,16,64,256".to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let named = env("BURROW_BENCH_MODES", "both".to_owned());
    let mut modes: Vec<Durability> = Vec::new();
    for name in named.split(',').map(str::trim) {
        let more: &[Durability] = match name {
            "process" => &[Durability::Process],
            "machine" => &[Durability::Machine],
            "replicated" => &[Durability::Replicated],
            "both" => &[Durability::Process, Durability::Machine],
            "all" => &[
                Durability::Process,
                Durability::Machine,
                Durability::Replicated,
            ],
            other => panic!(
                "BURROW_BENCH_MODES: unknown mode {other:?} (process, machine, replicated, both, all)"
            ),
        };
        for mode in more {
            if !modes.contains(mode) {
                modes.push(*mode);
            }
        }
    }
    let replicated_too = modes.contains(&Durability::Replicated);
    modes.retain(|m| *m != Durability::Replicated);
    let exec = executor();

    // Memory per resident idle actor, first: later scenarios leave freed memory behind that
    // new actors would reuse, which would hide their cost from an RSS difference.
    let mut memory = Vec::new();
    for resident in [1_000u64, 5_000] {
        let dir = tempfile::tempdir().unwrap();
        let (before_rss, before_fds) = (rss_kib(), fds());
        let (after_rss, after_fds, settled) = exec.block_on(async {
            let (runtime, ns) = open(dir.path(), Durability::Process, 12_000);
            drive(&ns, resident, 64, |i| format!("m{i}")).await;
            let measured = (rss_kib(), fds());
            // Once idle for a while, actors free their caches; memory freed inside the heap
            // stays in the RSS but is reused, so what an idle actor costs for good shows in
            // a second batch activated after the first has settled.
            tokio::time::sleep(SETTLE).await;
            let first = rss_kib();
            let more = resident / 2; // both batches resident stay within 20,000 descriptors
            drive(&ns, more, 64, |i| format!("n{i}")).await;
            tokio::time::sleep(SETTLE).await;
            let settled = rss_kib().saturating_sub(first) as f64 / more as f64;
            runtime.shutdown(Duration::from_secs(60)).await;
            (measured.0, measured.1, settled)
        });
        memory.push((
            resident,
            after_rss.saturating_sub(before_rss) as f64 / resident as f64,
            after_fds.saturating_sub(before_fds) as f64 / resident as f64,
            settled,
        ));
    }

    let mut rows = Vec::new();
    let mut disk: Vec<(&str, f64)> = Vec::new();
    for durability in modes {
        let mode = durability.name();
        // A baseline gets as many threads as Burrow has callers, up to the shard count: one
        // caller's calls run one at a time in both (until 2026-12-02 the baselines always
        // used every shard's thread, so one caller could never reach more than 1/shards).
        let mut baselines = std::collections::BTreeMap::new();
        for &c in &sweep {
            let threads = c.clamp(1, shards);
            if let std::collections::btree_map::Entry::Vacant(e) = baselines.entry(threads) {
                e.insert(plain_baselines_in_child(mode, threads));
            }
        }
        for &c in &sweep {
            let [cold_base, warm_files, warm_base, warm_many] = baselines[&c.clamp(1, shards)];
            let dir = tempfile::tempdir().unwrap();
            settle();
            let (cold, reactivation) = exec.block_on(async {
                let (runtime, ns) = open(dir.path(), durability, 1_000);
                let cold = drive(&ns, actors, c, |i| i.to_string()).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                let (runtime, ns) = open(dir.path(), durability, 1_000);
                let re = drive(&ns, actors, c, |i| i.to_string()).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                (cold, re)
            });
            if !disk.iter().any(|(m, _)| *m == mode) {
                // Every actor has had two turns and been closed (evicted or shut down).
                let kib = allocated_kib(&dir.path().join("actors")) as f64 / actors as f64;
                disk.push((mode, kib));
            }
            rows.push(Row {
                mode,
                scenario: "cold activation".into(),
                concurrency: c,
                rate: cold,
                baseline: cold_base,
                latency: None,
                process: None,
            });
            rows.push(Row {
                mode,
                scenario: "re-activation".into(),
                concurrency: c,
                rate: reactivation,
                baseline: warm_files,
                latency: None,
                process: None,
            });
            let dir = tempfile::tempdir().unwrap();
            let (one, many) = exec.block_on(async {
                let (runtime, ns) = open(dir.path(), durability, 2_000);
                let one = drive(&ns, calls, c, |_| "hot".to_owned()).await;
                drive(&ns, 1_000, 64, |i| format!("r{i}")).await; // make 1,000 resident
                let many = drive(&ns, calls, c, |i| format!("r{}", i % 1_000)).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                (one, many)
            });
            rows.push(Row {
                mode,
                scenario: "warm, 1 actor".into(),
                concurrency: c,
                rate: one,
                baseline: warm_base,
                latency: None,
                process: None,
            });
            rows.push(Row {
                mode,
                scenario: "warm, 1,000 actors".into(),
                concurrency: c,
                rate: many,
                baseline: warm_many,
                latency: None,
                process: None,
            });
        }
    }
    // Re-activation of actors with a production-like WAL: a few hundred turns each since
    // their last checkpoint (process mode: the WAL's re-reading at open does not depend on
    // the mode, and the setup would take minutes of fsyncs in machine mode).
    let busy: u64 = env("BURROW_BENCH_BUSY_ACTORS", 200);
    let turns: u64 = env("BURROW_BENCH_BUSY_TURNS", 300);
    if busy > 0 && rows.iter().any(|r| r.mode == "process") {
        let durability = Durability::Process;
        let dir = tempfile::tempdir().unwrap();
        exec.block_on(async {
            let (runtime, ns) = open(dir.path(), durability, busy as usize + 16);
            drive(&ns, busy * turns, 16, move |i| format!("busy{}", i % busy)).await;
            runtime.shutdown(Duration::from_secs(60)).await;
        });
        let base_dir = tempfile::tempdir().unwrap();
        for i in 0..busy {
            let conn = baseline_connect(&base_dir.path().join(format!("{i}.db")), true, durability);
            baseline_call(&conn, true);
            for _ in 1..turns {
                baseline_call(&conn, false);
            }
        }
        for &c in &sweep {
            settle();
            let rate = exec.block_on(async {
                let (runtime, ns) = open(dir.path(), durability, busy as usize + 16);
                let rate = drive(&ns, busy, c, |i| format!("busy{i}")).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                rate
            });
            settle();
            let threads = c.clamp(1, shards);
            let next = AtomicU64::new(0);
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= busy {
                                break;
                            }
                            let path = base_dir.path().join(format!("{i}.db"));
                            baseline_call(&baseline_connect(&path, false, durability), false);
                        }
                    });
                }
            });
            let base = busy as f64 / started.elapsed().as_secs_f64();
            rows.push(Row {
                mode: "process",
                scenario: format!("re-activation, {turns}-turn WAL"),
                concurrency: c,
                rate,
                baseline: base,
                latency: None,
                process: None,
            });
        }
    }
    // Replicated mode, against PostgreSQL with fsync on (its own cluster).
    let mut growth = Vec::new();
    let mut grouping = (0, 0);
    let mut server = None;
    if replicated_too {
        let pg = replicated::Pg::start();
        for &c in &sweep {
            let measured = exec.block_on(replicated::measure(&pg, actors, calls, c));
            rows.extend(measured.rows);
            growth.push((c, measured.growth));
            grouping.0 += measured.grouping.0;
            grouping.1 += measured.grouping.1;
        }
        server = Some(pg.describe());
    }

    // Restore from PostgreSQL (both modes).
    let restore_n: u64 = env("BURROW_BENCH_RESTORE", 2_000);
    if restore_n > 0 {
        let fixture = exec.block_on(restore::fixture(restore_n));
        for durability in [Durability::Process, Durability::Machine] {
            let mode = durability.name();
            if !rows.iter().any(|r| r.mode == mode) {
                continue;
            }
            for &c in &sweep {
                let dir = tempfile::tempdir().unwrap();
                let base = exec.block_on(restore::baseline(&fixture, dir.path(), durability, c));
                let rate = exec.block_on(restore::burrow(&fixture, dir.path(), durability, c));
                rows.push(Row {
                    mode,
                    scenario: "restore from PostgreSQL".into(),
                    concurrency: c,
                    rate,
                    baseline: base,
                    latency: None,
                    process: None,
                });
            }
        }
    }

    // Scale: does activation slow down with many actors on disk? (opt-in, process mode)
    let mut scale = Vec::new();
    let mut scale_baseline: Vec<(u64, f64)> = Vec::new();
    if env("BURROW_BENCH_SCALE", 0u8) == 1 {
        let target: u64 = env("BURROW_BENCH_SCALE_ACTORS", 1_000_000);
        let dir = tempfile::tempdir().unwrap();
        // Measured: ~29 KiB per Burrow actor on disk (database pages plus a WAL that closing
        // does not checkpoint), ~10 KiB per baseline file.
        let needed = target * 48 * 1024;
        let free = free_bytes(dir.path());
        if free < needed {
            println!(
                "scale: skipped — {target} actors need about {} GiB free, {} GiB available",
                needed >> 30,
                free >> 30
            );
        } else {
            let measure = 10_000u64;
            exec.block_on(async {
                let (runtime, ns) = open(dir.path(), Durability::Process, 1_000);
                let mut on_disk = 0u64;
                for level in [10_000u64, target] {
                    let fill_from = on_disk;
                    drive(&ns, level - fill_from, 64, move |i| {
                        format!("fill{}", fill_from + i)
                    })
                    .await;
                    on_disk = level;
                    let tag = level;
                    let rate = drive(&ns, measure, 64, move |i| format!("new{tag}-{i}")).await;
                    on_disk += measure;
                    println!("scale: {level} actors on disk → cold activation {rate:.0}/s");
                    scale.push((level, rate));
                }
                runtime.shutdown(Duration::from_secs(120)).await;
            });
            // The same for plain files, to tell the file system's slowdown from Burrow's.
            let base_dir = tempfile::tempdir().unwrap();
            let mut on_disk = 0u64;
            for level in [10_000u64, target] {
                baseline_files(
                    base_dir.path(),
                    on_disk,
                    level - on_disk,
                    shards,
                    true,
                    Durability::Process,
                );
                let rate = baseline_files(
                    base_dir.path(),
                    level,
                    measure,
                    shards,
                    true,
                    Durability::Process,
                );
                on_disk = level + measure;
                println!("scale: {level} plain files on disk → baseline creation {rate:.0}/s");
                scale_baseline.push((level, rate));
            }
        }
    }

    let ceiling: Vec<(usize, f64)> = sweep
        .iter()
        .map(|&c| (c, exec.block_on(in_memory(1_000, calls, c))))
        .collect();

    println!(
        "\nBurrow throughput ({actors} actors, {calls} warm calls, {shards} shards; baseline: plain rusqlite on one thread per caller, up to {shards})\n"
    );
    println!(
        "{:<8} {:<20} {:>5} {:>12} {:>12} {:>7}",
        "mode", "scenario", "conc", "burrow/s", "baseline/s", "ratio"
    );
    for r in rows.iter().filter(|r| r.mode != "replicated") {
        println!(
            "{:<8} {:<20} {:>5} {:>12.0} {:>12.0} {:>7.2}",
            r.mode,
            r.scenario,
            r.concurrency,
            r.rate,
            r.baseline,
            r.rate / r.baseline
        );
    }
    if let Some(server) = &server {
        replicated::print(&rows, &growth, grouping, server);
    }
    if let [(small, small_rate), (large, large_rate)] = scale[..] {
        println!(
            "\nscale: cold activation with {large} on disk is {:.2} of the rate with {small}",
            large_rate / small_rate
        );
        if let [(_, base_small), (_, base_large)] = scale_baseline[..] {
            println!(
                "scale: plain file creation with {large} on disk is {:.2} of the rate with {small}; \
                 Burrow's ratio to the baseline goes from {:.2} to {:.2}",
                base_large / base_small,
                small_rate / base_small,
                large_rate / base_large
            );
        }
    }
    println!("\nin-memory ceiling (task per key + channel, 1,000 keys):");
    for (c, rate) in &ceiling {
        println!("  concurrency {c:>3}: {rate:>10.0}/s");
    }
    println!("\nmemory per resident idle actor:");
    for (n, kib, fd, settled) in &memory {
        println!(
            "  {n:>5} resident: {kib:>6.1} KiB RSS, {fd:.2} descriptors; \
             {settled:.1} KiB each for {} more once all have been idle {SETTLE:?}",
            n / 2
        );
    }
    println!("\ndisk per actor after two turns and eviction (allocated blocks):");
    for (mode, kib) in &disk {
        println!("  {mode}: {kib:>6.1} KiB");
    }

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/burrow-bench");
    std::fs::create_dir_all(&out).unwrap();
    let json = serde_json::json!({
        "actors": actors,
        "calls": calls,
        "shards": shards,
        "results": rows.iter().map(|r| serde_json::json!({
            "mode": r.mode, "scenario": r.scenario, "concurrency": r.concurrency,
            "rate": r.rate, "baseline": r.baseline, "ratio": r.rate / r.baseline,
            "latency_us": r.latency.map(|(p50, p99, b50, b99)| serde_json::json!({
                "p50": p50.as_micros(), "p99": p99.as_micros(),
                "baseline_p50": b50.as_micros(), "baseline_p99": b99.as_micros(),
            })),
            "process_rate": r.process,
        })).collect::<Vec<_>>(),
        "replicated_growth": growth.iter().map(|(c, (actor, turn))| serde_json::json!({"concurrency": c, "bytes_per_actor": actor, "bytes_per_turn": turn})).collect::<Vec<_>>(),
        "replicated_server": server,
        "in_memory_ceiling": ceiling.iter().map(|(c, r)| serde_json::json!({"concurrency": c, "rate": r})).collect::<Vec<_>>(),
        "memory": memory.iter().map(|(n, kib, fd, settled)| serde_json::json!({"resident": n, "rss_kib_per_actor": kib, "fds_per_actor": fd, "rss_kib_per_settled_idle_actor": settled})).collect::<Vec<_>>(),
        "disk": disk.iter().map(|(mode, kib)| serde_json::json!({"mode": mode, "kib_per_actor": kib})).collect::<Vec<_>>(),
        "scale": scale.iter().zip(scale_baseline.iter().map(Some).chain(std::iter::repeat(None))).map(|((n, rate), base)| serde_json::json!({"on_disk": n, "cold_rate": rate, "baseline_rate": base.map(|b| b.1)})).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    match plot(&rows, &out.join("throughput.svg")) {
        Ok(()) => println!("wrote {}", out.join("throughput.svg").display()),
        Err(e) => println!("the plot failed: {e}"),
    }
    println!("\nwrote {}", out.join("results.json").display());
}
