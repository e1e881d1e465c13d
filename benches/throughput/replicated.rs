//! Replicated mode (`BURROW_BENCH_MODES` naming `replicated`): the same actor with every
//! turn appended to the PostgreSQL turn log before its reply leaves, against a throwaway
//! cluster started with `fsync = on` and `synchronous_commit = on` on this machine's disk.
//!
//! Baselines in the same run: a plain writer doing one PostgreSQL `INSERT` of a turn's bytes per
//! call at the same concurrency (one connection per caller, up to [`MAX_CONNECTIONS`]), and
//! Burrow's process mode running the same scenario just before, reported as a ratio.

use super::*;
use burrow_log_postgres::PgTurnLog;
use burrow_runtime::turn_log::TurnLog;
use burrow_testkit::pg::Cluster;

/// Connections of the `INSERT` baseline at most: the cluster allows 200, and the log's own pool
/// and the bench's size queries need some.
const MAX_CONNECTIONS: usize = 128;

/// The log's tables, whose on-disk size is the log's growth.
const LOG_TABLES: &str = "pg_total_relation_size('burrow_log_entry') + pg_total_relation_size('burrow_log_actor') \
     + pg_total_relation_size('burrow_log_alarm')";

/// What the scenarios of one concurrency measured.
pub struct Measured {
    pub rows: Vec<Row>,
    /// Log bytes on disk per actor after the cold pass (one turn each), and per turn over the
    /// warm 1,000-actor pass.
    pub growth: (f64, f64),
    /// Grouped statements and the appends they carried over the whole concurrency.
    pub grouping: (u64, u64),
}

/// A durable PostgreSQL cluster for the whole run.
pub struct Pg {
    cluster: Cluster,
    databases: AtomicU64,
}

impl Pg {
    pub fn start() -> Pg {
        let cluster = Cluster::start_durable().expect("a throwaway PostgreSQL cluster");
        Pg {
            cluster,
            databases: AtomicU64::new(0),
        }
    }

    /// A database of its own for one pass: a log that starts empty, so that every cold actor
    /// is new to it as well as to the data directory.
    async fn database(&self) -> String {
        let name = format!("bench{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let admin = self.cluster.connect("postgres").await.unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.cluster.url(&name)
    }

    /// What to say about the server under the table.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL {} with fsync = on, synchronous_commit = on, full_page_writes = on, data in {}",
            self.version(),
            self.cluster.dir().display()
        )
    }

    fn version(&self) -> String {
        let data = self.cluster.dir().join("data/PG_VERSION");
        std::fs::read_to_string(data).map_or_else(|_| "?".into(), |v| v.trim().to_owned())
    }
}

async fn connect_log(url: &str) -> Arc<PgTurnLog> {
    Arc::new(
        PgTurnLog::connect(url, Duration::from_secs(30))
            .await
            .expect("the turn log"),
    )
}

/// A plain connection to `url`, driven on the current runtime.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The log tables' size on disk (0 without a log).
async fn log_bytes(db: Option<&tokio_postgres::Client>) -> i64 {
    match db {
        Some(db) => db
            .query_one(&format!("SELECT ({LOG_TABLES})::bigint"), &[])
            .await
            .unwrap()
            .get(0),
        None => 0,
    }
}

/// The mean size of a turn's patchset in the log: what the baseline inserts.
async fn entry_bytes(db: &tokio_postgres::Client) -> usize {
    let mean: Option<f64> = db
        .query_one(
            "SELECT avg(length(body))::float8 FROM burrow_log_entry WHERE kind = 'patchset'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    mean.unwrap_or(ROW.len() as f64).round() as usize
}

fn replicated(dir: &Path, log: &Arc<dyn TurnLog>, max_resident: usize) -> Runtime {
    let options = options(dir, Durability::Replicated, max_resident)
        .turn_log(log.clone())
        .append_timeout(Duration::from_secs(30));
    Runtime::open(options).unwrap()
}

/// The three scenarios in one mode: cold activation of `actors`, then `calls` warm calls to one
/// actor and to 1,000 resident ones. With a log, also how the log grew.
async fn scenarios(
    log: Option<(&tokio_postgres::Client, &Arc<dyn TurnLog>)>,
    actors: u64,
    calls: u64,
    c: usize,
) -> ([Timed; 3], (f64, f64)) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = match log {
        Some((_, log)) => replicated(dir.path(), log, 2_000),
        None => Runtime::open(options(dir.path(), Durability::Process, 2_000)).unwrap(),
    };
    let ns = runtime.namespace("bench", |_| Bench).unwrap();
    let db = log.map(|(db, _)| db);
    let before = log_bytes(db).await;
    let cold = drive_timed(&ns, actors, c, |i| format!("cold{i}")).await;
    let after_cold = log_bytes(db).await;
    let one = drive_timed(&ns, calls, c, |_| "hot".to_owned()).await;
    drive(&ns, 1_000, 64, |i| format!("r{i}")).await; // make 1,000 resident
    let before_many = log_bytes(db).await;
    let many = drive_timed(&ns, calls, c, |i| format!("r{}", i % 1_000)).await;
    let after_many = log_bytes(db).await;
    runtime.shutdown(Duration::from_secs(60)).await;
    let growth = (
        (after_cold - before) as f64 / actors as f64,
        (after_many - before_many) as f64 / calls as f64,
    );
    ([cold, one, many], growth)
}

/// One `INSERT` of `bytes` bytes per call, `calls` calls from `concurrency` callers, each
/// caller on a connection of its own (shared round-robin above [`MAX_CONNECTIONS`]).
async fn insert_baseline(url: &str, bytes: usize, calls: u64, concurrency: usize) -> Timed {
    let mut clients = Vec::new();
    for _ in 0..concurrency.clamp(1, MAX_CONNECTIONS) {
        clients.push(connect(url).await);
    }
    clients[0]
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_turn (
                 id bigserial PRIMARY KEY, actor text NOT NULL, body bytea NOT NULL)",
        )
        .await
        .unwrap();
    let mut statements = Vec::new();
    for client in &clients {
        statements.push(
            client
                .prepare("INSERT INTO bench_turn (actor, body) VALUES ($1, $2)")
                .await
                .unwrap(),
        );
    }
    let clients = Arc::new(clients.into_iter().zip(statements).collect::<Vec<_>>());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (clients, next) = (clients.clone(), next.clone());
            tokio::spawn(async move {
                let (client, insert) = &clients[w % clients.len()];
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break latencies;
                    }
                    let mut body = row();
                    body.resize(bytes, 0x5A);
                    let actor = format!("r{}", i % 1_000);
                    let sent = Instant::now();
                    client.execute(insert, &[&actor, &body]).await.unwrap();
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    Timed::from(calls, started.elapsed(), latencies)
}

/// Every scenario at concurrency `c`: Burrow replicated (a fresh log), Burrow process mode,
/// and the `INSERT` baseline (a fresh database).
pub async fn measure(pg: &Pg, actors: u64, calls: u64, c: usize) -> Measured {
    let url = pg.database().await;
    let log = connect_log(&url).await;
    let shared: Arc<dyn TurnLog> = log.clone();
    settle();
    let db = connect(&url).await;
    let (burrow, growth) = scenarios(Some((&db, &shared)), actors, calls, c).await;
    let bytes = entry_bytes(&db).await;
    let grouping = log.grouping();
    drop((log, shared));
    settle();
    let (process, _) = scenarios(None, actors, calls, c).await;
    let base_url = pg.database().await;
    settle();
    let base = insert_baseline(&base_url, bytes, calls, c).await;
    let names = ["cold activation", "warm, 1 actor", "warm, 1,000 actors"];
    let rows = names
        .iter()
        .zip(burrow.iter().zip(&process))
        .map(|(name, (b, p))| Row {
            mode: "replicated",
            scenario: (*name).into(),
            concurrency: c,
            rate: b.rate,
            baseline: base.rate,
            latency: Some((b.p50, b.p99, base.p50, base.p99)),
            process: Some(p.rate),
        })
        .collect();
    Measured {
        rows,
        growth,
        grouping,
    }
}

/// The replicated rows as their own table, with latency and the ratio to process mode.
pub fn print(rows: &[Row], growth: &[(usize, (f64, f64))], grouping: (u64, u64), server: &str) {
    println!(
        "\nreplicated: {server}\nbaseline: one INSERT of a turn's bytes per call, one connection per caller (up to {MAX_CONNECTIONS})\n"
    );
    println!(
        "{:<20} {:>5} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "scenario",
        "conc",
        "burrow/s",
        "insert/s",
        "ratio",
        "/process",
        "p50 ms",
        "p99 ms",
        "ins p50",
        "ins p99"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for r in rows.iter().filter(|r| r.mode == "replicated") {
        let (p50, p99, b50, b99) = r.latency.unwrap_or_default();
        println!(
            "{:<20} {:>5} {:>10.0} {:>10.0} {:>7.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            r.scenario,
            r.concurrency,
            r.rate,
            r.baseline,
            r.rate / r.baseline,
            r.process.map_or(f64::NAN, |p| r.rate / p),
            ms(p50),
            ms(p99),
            ms(b50),
            ms(b99),
        );
    }
    println!(
        "\nlog growth on disk (PostgreSQL relation sizes, default retention: nothing compacted):"
    );
    for (c, (actor, turn)) in growth {
        println!(
            "  concurrency {c:>3}: {:>7.0} bytes per new actor (its first turn), {:>6.0} bytes per warm turn",
            actor, turn
        );
    }
    if grouping.0 > 0 {
        println!(
            "appends per grouped statement: {:.1} ({} appends in {} statements)",
            grouping.1 as f64 / grouping.0 as f64,
            grouping.1,
            grouping.0
        );
    }
}
