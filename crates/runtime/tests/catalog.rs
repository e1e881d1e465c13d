//! The catalog at scale: 50,000 actors listed with paging, rebuilt from the actor files when
//! deleted or damaged, and not one acknowledged actor lost to a kill -9 right after a burst of
//! creations. `harness = false`: the kill test re-runs this binary as its child.

mod harness;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use burrow_runtime::catalog::ActorRecord;
use burrow_runtime::{Abort, Actor, ActorId, Context, Handler, Message, Options, Runtime};
use harness::executor;

struct Nop;

impl Actor for Nop {}

struct Touch;

impl Message for Touch {
    type Reply = ();
}

impl Handler<Touch> for Nop {
    async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> {
        Ok(())
    }
}

async fn create(runtime: &Runtime, count: u64, prefix: &str, mut acked: impl FnMut(u64)) {
    let ns = runtime.namespace("nop", |_| Nop).unwrap();
    let names: Vec<u64> = (0..count).collect();
    for batch in names.chunks(256) {
        let calls: Vec<_> = batch
            .iter()
            .map(|i| ns.get_by_name(&format!("{prefix}{i}")).call(Touch))
            .collect();
        for (outcome, &i) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .zip(batch)
        {
            outcome.unwrap();
            acked(i);
        }
    }
}

async fn list_all(runtime: &Runtime, page: usize) -> Vec<ActorRecord> {
    let catalog = runtime.catalog();
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let batch = catalog.list("nop", after, page).await.unwrap();
        assert!(batch.len() <= page);
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        all.extend(batch);
    }
    all
}

fn catalog_files(dir: &Path) -> Vec<std::path::PathBuf> {
    ["catalog.db", "catalog.db-wal", "catalog.db-shm"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

fn fifty_thousand_actors_list_page_by_page_and_survive_a_rebuild() -> Result<String, String> {
    const ACTORS: u64 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    executor().block_on(async {
        let runtime = Runtime::open(Options::new(dir.path())).unwrap();
        create(&runtime, ACTORS, "a", |_| {}).await;
        let expected: BTreeSet<ActorId> = (0..ACTORS)
            .map(|i| ActorId::for_name("nop", &format!("a{i}")))
            .collect();

        let listed = list_all(&runtime, 1000).await;
        let ids: Vec<ActorId> = listed.iter().map(|r| r.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "pages are in id order, without repeats"
        );
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected);
        assert_eq!(runtime.catalog().count("nop").await.unwrap(), ACTORS);
        let one = runtime
            .catalog()
            .get("nop", ids[123])
            .await
            .unwrap()
            .unwrap();
        assert!(one.name.as_deref().is_some_and(|n| n.starts_with('a')));
        runtime.shutdown(Duration::from_secs(30)).await;

        // Deleted: rebuilt from the actor files, with the same actors, names and creation times.
        for file in catalog_files(dir.path()) {
            std::fs::remove_file(file).unwrap();
        }
        let runtime = Runtime::open(Options::new(dir.path())).unwrap();
        let startup = runtime.catalog_startup();
        assert!(startup.rebuilt);
        assert_eq!(startup.added as u64, ACTORS);
        let rebuilt = list_all(&runtime, 777).await;
        let key = |r: &ActorRecord| (r.id, r.name.clone(), r.created_at);
        assert_eq!(
            rebuilt.iter().map(key).collect::<Vec<_>>(),
            listed.iter().map(key).collect::<Vec<_>>()
        );
        runtime.shutdown(Duration::from_secs(30)).await;

        // Damaged: moved aside (kept) and rebuilt.
        for file in catalog_files(dir.path()) {
            std::fs::remove_file(file).unwrap();
        }
        std::fs::write(dir.path().join("catalog.db"), vec![0x42u8; 8192]).unwrap();
        let runtime = Runtime::open(Options::new(dir.path())).unwrap();
        assert!(runtime.catalog_startup().rebuilt);
        assert_eq!(runtime.catalog().count("nop").await.unwrap(), ACTORS);
        let kept = std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("catalog.db.damaged-")
        });
        assert!(kept, "the damaged catalog was not kept aside");
        runtime.shutdown(Duration::from_secs(30)).await;
    });
    Ok(format!(
        "{ACTORS} actors listed, rebuilt after deletion and after damage"
    ))
}

const BURST: u64 = 2_000;
const ROUNDS: u64 = 8;

/// The child: 64 workers create a burst of new actors named after the round, each printed
/// as soon as it is acknowledged; then `done`, and it waits to be killed.
fn child(args: &[String]) {
    const WORKERS: u64 = 64;
    let dir = Path::new(&args[0]);
    let round = args[1].clone();
    executor().block_on(async {
        let runtime = Runtime::open(Options::new(dir)).unwrap();
        let ns = runtime.namespace("nop", |_| Nop).unwrap();
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (ns, round) = (ns.clone(), round.clone());
                tokio::spawn(async move {
                    for i in (w..BURST).step_by(WORKERS as usize) {
                        ns.get_by_name(&format!("r{round}-{i}"))
                            .call(Touch)
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{i}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for w in futures_util::future::join_all(workers).await {
            w.unwrap();
        }
        println!("done");
        std::future::pending::<()>().await
    });
}

fn random_below(limit: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % limit
}

/// Kills the child mid-burst at a random moment in most rounds, and right after the burst
/// in the last; after each kill, every acknowledged actor must be in the catalog.
fn a_kill_during_or_right_after_a_burst_loses_no_actor_from_the_catalog() -> Result<String, String>
{
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("child")
            .arg(dir.path())
            .arg(round.to_string())
            // A slow catalog: replies would overtake it if they did not wait for it.
            .env("BURROW_FAULT_CATALOG_DELAY_MS", "20")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let last = round == ROUNDS - 1;
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "done" {
                    return (acked, true);
                }
                acked.push(line.parse::<u64>().unwrap());
            }
            (acked, false)
        });
        let (acked, finished) = if last {
            // Right after the burst: the reader returns at `done`, and the kill follows at once.
            let outcome = reader.join().unwrap();
            child.kill().unwrap();
            outcome
        } else {
            std::thread::sleep(Duration::from_millis(100 + random_below(1500)));
            child.kill().unwrap();
            reader.join().unwrap()
        };
        child.wait().unwrap();
        if last && !finished {
            return Err("the last round's child never finished its burst".into());
        }
        // Read the catalog itself, with no runtime: start-up reconciliation would hide a loss.
        // A kill during the child's start can leave the catalog without its tables (on a busy
        // machine the start outlasts the shortest wait): then it lists nothing, and any
        // acknowledged actor counts as missing below.
        let conn = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
        let names: BTreeSet<String> =
            match conn.prepare("SELECT name FROM actors WHERE namespace = 'nop'") {
                Ok(mut stmt) => stmt
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(|n| n.unwrap())
                    .collect(),
                Err(e) if e.to_string().contains("no such table") => BTreeSet::new(),
                Err(e) => panic!("reading the catalog: {e}"),
            };
        let missing: Vec<_> = acked
            .iter()
            .map(|i| format!("r{round}-{i}"))
            .filter(|n| !names.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "round {round}: {} of {} acknowledged actors missing from the catalog, e.g. {:?}",
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        total += acked.len();
    }
    Ok(format!(
        "{ROUNDS} kills, {total} acknowledged actors, all in the catalog"
    ))
}

fn main() {
    harness::main(
        &[
            (
                "fifty_thousand_actors_list_page_by_page_and_survive_a_rebuild",
                fifty_thousand_actors_list_page_by_page_and_survive_a_rebuild,
            ),
            (
                "a_kill_during_or_right_after_a_burst_loses_no_actor_from_the_catalog",
                a_kill_during_or_right_after_a_burst_loses_no_actor_from_the_catalog,
            ),
        ],
        child,
    );
}
