//! What the runtime tests of this crate share: a small actor with SQL and key–value state, and
//! helpers to open a replicated runtime and find its files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use burrow_runtime::alarm::Alarm;
use burrow_runtime::turn_log::TurnLog;
use burrow_runtime::{
    Abort, Actor, ActorId, Context, Durability, Handler, Message, Namespace, Options, Runtime,
};

/// A list of items in SQL and a count in the key–value table.
pub struct Ledger;

impl Actor for Ledger {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        ctx.storage().sql().execute_batch(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        )?;
        Ok(())
    }

    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        if alarm.name.starts_with("fail") {
            return Err(Abort::new("this alarm fails on purpose"));
        }
        ctx.storage().sql().execute(
            "INSERT INTO items (body) VALUES (?1)",
            [format!("fired: {}", alarm.name)],
        )?;
        Ok(())
    }
}

/// Adds an item, flushes, then fails: the flushed item stays, the turn's later write does not.
pub struct FlushThenFail(pub String);
impl Message for FlushThenFail {
    type Reply = ();
}

impl Handler<FlushThenFail> for Ledger {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        FlushThenFail(body): FlushThenFail,
    ) -> Result<(), Abort> {
        ctx.storage()
            .sql()
            .execute("INSERT INTO items (body) VALUES (?1)", [&body])?;
        ctx.flush().await?;
        ctx.storage()
            .sql()
            .execute("INSERT INTO items (body) VALUES ('after the flush')", [])?;
        Err(Abort::new("failing after the flush"))
    }
}

/// Deletes the actor once the turn commits.
pub struct Forget;
impl Message for Forget {
    type Reply = ();
}

impl Handler<Forget> for Ledger {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Forget) -> Result<(), Abort> {
        ctx.delete_after_commit();
        Ok(())
    }
}

/// Sets the alarm `.0` to fire after `.1`.
pub struct Remind(pub String, pub Duration);
impl Message for Remind {
    type Reply = ();
}

impl Handler<Remind> for Ledger {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        Remind(name, after): Remind,
    ) -> Result<(), Abort> {
        ctx.set_alarm(&name, SystemTime::now() + after)
    }
}

/// Appends an item; replies with the number of items.
pub struct Add(pub String);
impl Message for Add {
    type Reply = i64;
}

impl Handler<Add> for Ledger {
    async fn handle(&mut self, ctx: &mut Context<Self>, Add(body): Add) -> Result<i64, Abort> {
        let storage = ctx.storage();
        storage
            .sql()
            .execute("INSERT INTO items (body) VALUES (?1)", [&body])?;
        let count = storage.get::<i64>("count")?.unwrap_or(0) + 1;
        storage.put("count", &count)?;
        Ok(count)
    }
}

/// Every item, in order, and the count.
pub struct Read;
impl Message for Read {
    type Reply = (Vec<String>, i64);
}

impl Handler<Read> for Ledger {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        _: Read,
    ) -> Result<(Vec<String>, i64), Abort> {
        let storage = ctx.storage();
        let items = storage
            .sql()
            .prepare("SELECT body FROM items ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok((items, storage.get::<i64>("count")?.unwrap_or(0)))
    }
}

/// Creates a table the log could not follow.
pub struct Loose;
impl Message for Loose {
    type Reply = ();
}

impl Handler<Loose> for Ledger {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Loose) -> Result<(), Abort> {
        ctx.storage().sql().execute_batch(
            "CREATE TABLE loose (a TEXT, b TEXT); INSERT INTO loose VALUES ('x', 'y')",
        )?;
        Ok(())
    }
}

pub fn open(dir: &Path, log: &Arc<dyn TurnLog>) -> (Runtime, Namespace<Ledger>) {
    open_with(dir, log, |o| o)
}

/// [`open`] with more options.
pub fn open_with(
    dir: &Path,
    log: &Arc<dyn TurnLog>,
    more: impl FnOnce(Options) -> Options,
) -> (Runtime, Namespace<Ledger>) {
    let runtime = Runtime::open(more(
        Options::new(dir)
            .shards(1)
            .durability(Durability::Replicated)
            .turn_log(log.clone())
            .append_timeout(Duration::from_secs(3)),
    ))
    .unwrap();
    let ns = runtime.namespace("ledger", |_| Ledger).unwrap();
    (runtime, ns)
}

/// The log key of the ledger actor called `name`.
pub fn ledger_key(name: &str) -> burrow_runtime::turn_log::LogKey {
    burrow_runtime::turn_log::LogKey {
        namespace: "ledger".into(),
        id: ActorId::for_name("ledger", name),
    }
}

pub fn actor_file(dir: &Path, name: &str) -> PathBuf {
    let hex = ActorId::for_name("ledger", name).to_string();
    dir.join("actors/ledger")
        .join(&hex[..2])
        .join(format!("{hex}.db"))
}

pub fn quarantined(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.join("actors")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".db.quarantined")
                && !p.to_string_lossy().ends_with("-wal")
            {
                found.push(p);
            }
        }
    }
    found
}

/// A fresh database of the shared test server, and the log in it bounded by `timeout`.
pub async fn fresh_log(
    timeout: Duration,
) -> (
    burrow_testkit::pg::TestDatabase,
    burrow_log_postgres::PgTurnLog,
) {
    let db = burrow_testkit::pg::fresh_database().await;
    let log = burrow_log_postgres::PgTurnLog::connect(db.url(), timeout)
        .await
        .unwrap();
    (db, log)
}

/// Waits until PostgreSQL's clock says node `id`'s lease has run out.
pub async fn until_expired(log: &burrow_log_postgres::PgTurnLog, id: &str) {
    while burrow_log_postgres::membership::nodes(log)
        .await
        .unwrap()
        .iter()
        .any(|n| n.node_id == id && n.lease_running)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ledger's items in the SQLite file at `path` (an export, a rebuilt file), in order.
pub fn items_in(path: &Path) -> Vec<String> {
    rusqlite::Connection::open(path)
        .unwrap()
        .prepare("SELECT body FROM items ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn items(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("item {i}")).collect()
}
