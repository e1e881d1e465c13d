//! Activation and call throughput, as a ratio of plain rusqlite doing the same work in the same
//! run (absolute rates on a shared machine are noise; the ratio is the figure that matters).
//!
//! `cargo bench --bench throughput`. Environment:
//! - `BURROW_BENCH_ACTORS` — actors per cold/re-activation run (default 20,000);
//! - `BURROW_BENCH_CALLS` — calls per warm run (default 20,000);
//! - `BURROW_BENCH_CONCURRENCY` — comma-separated caller counts (default `1,16,64,256`);
//! - `BURROW_BENCH_MODES` — `process`, `machine` or both (default both).
//!
//! Writes a table to stdout and `target/burrow-bench/results.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burrow_runtime::{Abort, Actor, Context, Durability, Namespace, Options, Runtime};
use rusqlite::{Connection, OpenFlags};

const ROW: [u8; 200] = [0x5A; 200];

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

impl Actor for Bench {
    type Request = ();
    type Response = usize;

    async fn handle(&mut self, ctx: &mut Context<Self>, (): ()) -> Result<usize, Abort> {
        let storage = ctx.storage();
        storage.put("row", &row())?;
        Ok(storage.get("row")?.map_or(0, |v| v.len()))
    }
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `calls` calls with `concurrency` callers; `target(i)` names the actor of call `i`.
async fn drive(
    ns: &Namespace<Bench>,
    calls: u64,
    concurrency: usize,
    target: impl Fn(u64) -> String + Send + Sync + 'static,
) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let target = Arc::new(target);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (ns, next, target) = (ns.clone(), next.clone(), target.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break;
                    }
                    let n = ns.get_by_name(&target(i)).call(()).await.unwrap();
                    assert_eq!(n, ROW.len());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn open(dir: &Path, durability: Durability, max_resident: usize) -> (Runtime, Namespace<Bench>) {
    let runtime = Runtime::open(
        Options::new(dir)
            .durability(durability)
            .max_resident(max_resident),
    )
    .unwrap();
    let ns = runtime.namespace("bench", |_| Bench).unwrap();
    (runtime, ns)
}

// ---- the baseline: plain rusqlite, best settings for the durability, no Burrow tables ------

fn baseline_connect(path: &Path, create: bool, durability: Durability) -> Connection {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags_and_vfs(path, flags, c"unix-none").unwrap();
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE")
        .unwrap();
    let sync = match durability {
        Durability::Process => "NORMAL",
        Durability::Machine => "FULL",
    };
    if create {
        conn.execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY; PRAGMA journal_mode = WAL;",
        )
        .unwrap();
        if durability == Durability::Machine {
            std::fs::File::open(path).unwrap().sync_all().unwrap();
            std::fs::File::open(path.parent().unwrap())
                .unwrap()
                .sync_all()
                .unwrap();
        }
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}"))
        .unwrap();
    conn
}

fn baseline_call(conn: &Connection, create: bool) {
    if create {
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
            .unwrap();
    }
    conn.execute_batch("BEGIN").unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO t (k, v) VALUES ('row', ?1)",
        [&ROW[..]],
    )
    .unwrap();
    let n: i64 = conn
        .query_row("SELECT length(v) FROM t WHERE k = 'row'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, ROW.len());
    conn.execute_batch("COMMIT").unwrap();
}

/// Files per second, creating (or reopening) `count` files on `threads` threads.
fn baseline_files(
    dir: &Path,
    count: u64,
    threads: usize,
    create: bool,
    durability: Durability,
) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let next = next.clone();
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let sub = dir.join(format!("{:02x}", i % 256));
                    let _ = std::fs::create_dir(&sub);
                    let conn = baseline_connect(&sub.join(format!("{i}.db")), create, durability);
                    baseline_call(&conn, create);
                }
            });
        }
    });
    count as f64 / started.elapsed().as_secs_f64()
}

/// Transactions per second on one open connection (the warm-call baseline, per shard).
fn baseline_warm(dir: &Path, calls: u64, durability: Durability) -> f64 {
    let conn = baseline_connect(&dir.join("warm.db"), true, durability);
    baseline_call(&conn, true);
    let started = Instant::now();
    for _ in 0..calls {
        baseline_call(&conn, false);
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// The in-memory ceiling: a tokio task per key behind a channel, no storage.
async fn in_memory(keys: u64, calls: u64, concurrency: usize) -> f64 {
    type Req = tokio::sync::oneshot::Sender<usize>;
    let senders: Arc<Vec<tokio::sync::mpsc::UnboundedSender<Req>>> = Arc::new(
        (0..keys)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Req>();
                tokio::spawn(async move {
                    while let Some(reply) = rx.recv().await {
                        let _ = reply.send(ROW.len());
                    }
                });
                tx
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (senders, next) = (senders.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break;
                    }
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    senders[(i % keys) as usize].send(tx).unwrap();
                    assert_eq!(rx.await.unwrap(), ROW.len());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

struct Row {
    mode: &'static str,
    scenario: String,
    concurrency: usize,
    rate: f64,
    baseline: f64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let actors: u64 = env("BURROW_BENCH_ACTORS", 20_000);
    let calls: u64 = env("BURROW_BENCH_CALLS", 20_000);
    let sweep: Vec<usize> = env("BURROW_BENCH_CONCURRENCY", "1,16,64,256".to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let modes: Vec<Durability> = match env("BURROW_BENCH_MODES", "both".to_owned()).as_str() {
        "process" => vec![Durability::Process],
        "machine" => vec![Durability::Machine],
        _ => vec![Durability::Process, Durability::Machine],
    };
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exec = executor();
    let mut rows = Vec::new();
    for durability in modes {
        let mode = match durability {
            Durability::Process => "process",
            Durability::Machine => "machine",
        };
        let base_dir = tempfile::tempdir().unwrap();
        let cold_base = baseline_files(base_dir.path(), actors, shards, true, durability);
        let warm_files = baseline_files(base_dir.path(), actors, shards, false, durability);
        let warm_base = baseline_warm(base_dir.path(), calls, durability);
        drop(base_dir);
        for &c in &sweep {
            let dir = tempfile::tempdir().unwrap();
            let (cold, reactivation) = exec.block_on(async {
                let (runtime, ns) = open(dir.path(), durability, 1_000);
                let cold = drive(&ns, actors, c, |i| i.to_string()).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                let (runtime, ns) = open(dir.path(), durability, 1_000);
                let re = drive(&ns, actors, c, |i| i.to_string()).await;
                runtime.shutdown(Duration::from_secs(60)).await;
                (cold, re)
            });
            rows.push(Row {
                mode,
                scenario: "cold activation".into(),
                concurrency: c,
                rate: cold,
                baseline: cold_base,
            });
            rows.push(Row {
                mode,
                scenario: "re-activation".into(),
                concurrency: c,
                rate: reactivation,
                baseline: warm_files,
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
            });
            rows.push(Row {
                mode,
                scenario: "warm, 1,000 actors".into(),
                concurrency: c,
                rate: many,
                baseline: warm_base * shards as f64,
            });
        }
    }
    let ceiling: Vec<(usize, f64)> = sweep
        .iter()
        .map(|&c| (c, exec.block_on(in_memory(1_000, calls, c))))
        .collect();

    // Memory per resident idle actor.
    let mut memory = Vec::new();
    for resident in [1_000u64, 5_000] {
        let dir = tempfile::tempdir().unwrap();
        let (before_rss, before_fds) = (rss_kib(), fds());
        let (after_rss, after_fds) = exec.block_on(async {
            let (runtime, ns) = open(dir.path(), Durability::Process, 6_000);
            drive(&ns, resident, 64, |i| format!("m{i}")).await;
            let measured = (rss_kib(), fds());
            runtime.shutdown(Duration::from_secs(60)).await;
            measured
        });
        memory.push((
            resident,
            after_rss.saturating_sub(before_rss) as f64 / resident as f64,
            after_fds.saturating_sub(before_fds) as f64 / resident as f64,
        ));
    }

    println!(
        "\nBurrow throughput ({actors} actors, {calls} warm calls, {shards} shards; baseline: plain rusqlite on {shards} threads)\n"
    );
    println!(
        "{:<8} {:<20} {:>5} {:>12} {:>12} {:>7}",
        "mode", "scenario", "conc", "burrow/s", "baseline/s", "ratio"
    );
    for r in &rows {
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
    println!("\nin-memory ceiling (task per key + channel, 1,000 keys):");
    for (c, rate) in &ceiling {
        println!("  concurrency {c:>3}: {rate:>10.0}/s");
    }
    println!("\nmemory per resident idle actor:");
    for (n, kib, fd) in &memory {
        println!("  {n:>5} resident: {kib:>6.1} KiB RSS, {fd:.2} descriptors");
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
        })).collect::<Vec<_>>(),
        "in_memory_ceiling": ceiling.iter().map(|(c, r)| serde_json::json!({"concurrency": c, "rate": r})).collect::<Vec<_>>(),
        "memory": memory.iter().map(|(n, kib, fd)| serde_json::json!({"resident": n, "rss_kib_per_actor": kib, "fds_per_actor": fd})).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    println!("\nwrote {}", out.join("results.json").display());
}
