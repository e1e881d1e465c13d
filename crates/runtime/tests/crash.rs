//! Kill -9 loses no acknowledged write.
//!
//! A child process (this same binary, run with `child`) writes as fast as it can through the
//! runtime, many writers over several actors, and prints each write's number once `call` has
//! returned. The parent kills it with SIGKILL at a random moment, then opens every actor's file
//! with plain rusqlite — no runtime — and checks that every printed write is there. 20 rounds
//! by default (`BURROW_CRASH_ROUNDS` for more); each round restarts on the same data.
//!
//! A test binary of its own (`harness = false`) so that it can re-run itself as the child.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};

mod harness;

const ACTORS: u64 = 8;
const WRITERS: u64 = 32;
const PER_ROUND: u64 = 1_000_000_000;

struct Writer;

/// Records write number `n`.
struct Write(u64);

impl Message for Write {
    type Reply = ();
}

impl Actor for Writer {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        let sql = ctx.storage().sql();
        sql.execute_batch("CREATE TABLE IF NOT EXISTS writes (n INTEGER PRIMARY KEY)")?;
        Ok(())
    }
}

impl Handler<Write> for Writer {
    async fn handle(&mut self, ctx: &mut Context<Self>, Write(n): Write) -> Result<(), Abort> {
        let sql = ctx.storage().sql();
        sql.execute("INSERT INTO writes (n) VALUES (?1)", [n as i64])?;
        Ok(())
    }
}

fn actor_name(n: u64) -> String {
    format!("w{}", n % ACTORS)
}

/// The child: write round `round`'s numbers forever, printing each once acknowledged.
fn child(dir: &Path, round: u64) {
    harness::executor().block_on(async {
        let runtime = Runtime::open(Options::new(dir).shards(2)).unwrap();
        let ns = runtime.namespace("writer", |_| Writer).unwrap();
        for w in 0..WRITERS {
            let ns = ns.clone();
            tokio::spawn(async move {
                let mut i = w;
                loop {
                    let n = round * PER_ROUND + i;
                    ns.get_by_name(&actor_name(n)).call(Write(n)).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{n}").unwrap();
                    out.flush().unwrap();
                    i += WRITERS;
                }
            });
        }
        // Until killed.
        std::future::pending::<()>().await
    });
}

/// Everything in the actors' files, read with plain rusqlite.
fn written(dir: &Path) -> BTreeSet<u64> {
    // A runtime only to compute the paths; it opens no actor.
    let runtime = Runtime::open(Options::new(dir).shards(1)).unwrap();
    let ns = runtime.namespace("writer", |_| Writer).unwrap();
    let mut found = BTreeSet::new();
    for a in 0..ACTORS {
        let path = ns.path_of(&ns.id_from_name(&format!("w{a}")));
        if !path.exists() {
            continue;
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{}", path.display());
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'writes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if has_table {
            let mut stmt = conn.prepare("SELECT n FROM writes").unwrap();
            found.extend(
                stmt.query_map([], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .map(|n| n.unwrap() as u64),
            );
        }
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(runtime.shutdown(Duration::from_secs(5)));
    found
}

fn random_below(limit: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % limit
}

fn kill_9_loses_no_acknowledged_write() -> Result<String, String> {
    let rounds: u64 = std::env::var("BURROW_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged_total = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .arg("child")
            .arg(dir.path())
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<u64>().ok())
                .collect::<Vec<_>>()
        });
        // Anywhere from start-up (activation, file creation) to full speed.
        std::thread::sleep(Duration::from_millis(random_below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acknowledged = reader.join().unwrap();
        let found = written(dir.path());
        let missing: Vec<_> = acknowledged.iter().filter(|n| !found.contains(n)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "round {round}: {} of {} acknowledged writes missing after kill -9, e.g. {:?}",
                missing.len(),
                acknowledged.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        acknowledged_total += acknowledged.len();
    }
    if acknowledged_total == 0 {
        return Err("no write was ever acknowledged: the child did not run".into());
    }
    Ok(format!(
        "{rounds} kills, {acknowledged_total} acknowledged writes, none lost"
    ))
}

fn main() {
    harness::main(
        &[(
            "kill_9_loses_no_acknowledged_write",
            kill_9_loses_no_acknowledged_write,
        )],
        |args| child(Path::new(&args[0]), args[1].parse().unwrap()),
    );
}
