//! The baseline: plain rusqlite doing the same user-visible work, with the best settings for
//! the durability and no Burrow tables; the plain-file parts run in a child process.

use super::*;

pub(crate) fn baseline_connect(path: &Path, create: bool, durability: Durability) -> Connection {
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
        Durability::Process | Durability::Replicated => "NORMAL",
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

pub(crate) fn baseline_call(conn: &Connection, create: bool) {
    if create {
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
            .unwrap();
    }
    conn.execute_batch("BEGIN").unwrap();
    // A row that differs from call to call, as Burrow's actor writes: SQLite skips rewriting
    // a cell with identical content, which made every baseline commit after the first a no-op
    // (no WAL append, no fsync) until 2026-11-27. Statements are cached, as Burrow caches
    // them (until 2026-12-02 the baseline prepared both on every call).
    conn.prepare_cached("INSERT OR REPLACE INTO t (k, v) VALUES ('row', ?1)")
        .unwrap()
        .execute([row()])
        .unwrap();
    let n: i64 = conn
        .prepare_cached("SELECT length(v) FROM t WHERE k = 'row'")
        .unwrap()
        .query_row([], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, ROW.len());
    conn.execute_batch("COMMIT").unwrap();
}

/// Files per second, creating (or reopening) `count` files, numbered from `first`, on
/// `threads` threads.
pub(crate) fn baseline_files(
    dir: &Path,
    first: u64,
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
                    let i = first + i;
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

/// Writes back what earlier scenarios left dirty, so that each measurement starts from the
/// same state of the page cache instead of paying for its predecessor's writeback.
pub(crate) fn settle() {
    nix::unistd::sync();
}

/// Set in the child process that measures the plain-file baselines of one mode.
pub(crate) const BASELINE_CHILD: &str = "BURROW_BENCH_BASELINE_CHILD";
/// How many threads the child's baselines use.
pub(crate) const BASELINE_THREADS: &str = "BURROW_BENCH_BASELINE_THREADS";

/// The plain-file baselines of `mode` on `threads` threads (cold files/s, reopened files/s,
/// warm transactions/s on one connection, warm transactions/s over 1,000 connections),
/// measured in a fresh process running this same bench. In the parent they ran after the
/// memory phase had freed several hundred MiB, and their rate moved with the heap that phase
/// left behind: the same baseline code measured 12.6 % faster in one build than in another.
pub(crate) fn plain_baselines_in_child(mode: &str, threads: usize) -> [f64; 4] {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(BASELINE_CHILD, mode)
        .env(BASELINE_THREADS, threads.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "baseline child failed: {}",
        out.status
    );
    let last = String::from_utf8_lossy(&out.stdout);
    let last = last.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("baseline child printed {last:?}: {e}"))
}

/// Transactions per second on one open connection (the warm-call baseline, per shard).
pub(crate) fn baseline_warm(dir: &Path, calls: u64, durability: Durability) -> f64 {
    let conn = baseline_connect(&dir.join("warm.db"), true, durability);
    baseline_call(&conn, true);
    let started = Instant::now();
    for _ in 0..calls {
        baseline_call(&conn, false);
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// Transactions per second over 1,000 open connections taken in turn, on `threads` threads
/// (each with its own 1,000 / `threads`): the 1,000-actor warm baseline. Until 2026-12-02
/// that baseline was one connection's rate times the shard count, which never paid for
/// switching between files.
pub(crate) fn baseline_warm_many(
    dir: &Path,
    calls: u64,
    threads: usize,
    durability: Durability,
) -> f64 {
    let per_thread = 1_000 / threads;
    let started = std::sync::Mutex::new(None::<Instant>);
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (barrier, started) = (&barrier, &started);
            s.spawn(move || {
                let conns: Vec<Connection> = (0..per_thread)
                    .map(|i| {
                        let conn = baseline_connect(
                            &dir.join(format!("many-{t}-{i}.db")),
                            true,
                            durability,
                        );
                        baseline_call(&conn, true);
                        conn
                    })
                    .collect();
                barrier.wait();
                started.lock().unwrap().get_or_insert_with(Instant::now);
                for i in 0..calls / threads as u64 {
                    baseline_call(&conns[i as usize % per_thread], false);
                }
            });
        }
    });
    let began = started.into_inner().unwrap().expect("threads ran");
    calls as f64 / began.elapsed().as_secs_f64()
}
