//! A test actor that can do everything the runtime's tests need, and helpers around it.
#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Handler, LostState, Message};
use tokio::sync::oneshot;

/// What the tests observe from outside the actors.
#[derive(Default)]
pub struct Probe {
    pub activations: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub order: Mutex<Vec<u32>>,
}

pub enum Req {
    Put(String, String),
    Get(String),
    PutThenPanic(String, String),
    PutThenAbort(String, String),
    /// Puts the first pair, flushes, puts the second, aborts.
    FlushThenAbort((String, String), (String, String)),
    /// Records its sequence number, awaiting a while in the middle.
    Sequenced(u32),
    /// Says it has started, then waits for the gate before answering (see [`gate`]).
    Gated(Gate),
    /// Spawns background work that waits for `release`, then sends `Record(tag)`.
    Background(oneshot::Receiver<()>, String),
    /// Appends to the actor's own `log` table.
    Record(String),
    Log,
    /// Runs SQL; an error is an answer, not an abort.
    Sql(String),
    /// Signals `arrived`, then blocks the shard thread until `peer` arrives (or 10 s pass).
    Rendezvous(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>),
    Info,
    /// Nested transaction: keeps `kept`, rolls back `dropped`.
    Savepoints,
}

#[derive(Debug, PartialEq)]
pub enum Resp {
    Done,
    Value(Option<String>),
    Log(Vec<String>),
    SqlError(String),
    Met(bool),
    Info {
        name: Option<String>,
        lost: Option<LostState>,
    },
}

/// What a [`Req::Gated`] handler holds: it reports its start through `entered`, then waits for
/// `open` (or for its sender to be dropped).
pub struct Gate {
    entered: oneshot::Sender<()>,
    open: oneshot::Receiver<()>,
}

/// The test's side of a [`Gate`].
pub struct GateKeeper {
    entered: oneshot::Receiver<()>,
    open: oneshot::Sender<()>,
}

/// A gated request and the means to see it start and to let it finish.
pub fn gate() -> (GateKeeper, Req) {
    let (entered_tx, entered) = oneshot::channel();
    let (open, open_rx) = oneshot::channel();
    let gate = Gate {
        entered: entered_tx,
        open: open_rx,
    };
    (GateKeeper { entered, open }, Req::Gated(gate))
}

impl GateKeeper {
    /// Returns once the gated handler runs (its call is in its turn, out of the mailbox).
    pub async fn entered(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), &mut self.entered)
            .await
            .expect("the gated call never started")
            .expect("the gated call was dropped before it started");
    }

    /// Lets the gated handler answer.
    pub fn open(self) {
        let _ = self.open.send(());
    }
}

/// Returns once every call sent before it has been routed: queued in its actor's mailbox or
/// refused. Needs a runtime with one shard, which routes calls in the order they are sent.
pub async fn routed(ns: &burrow_runtime::Namespace<TestActor>) {
    ns.get_by_name("routed-barrier")
        .call(Req::Info)
        .await
        .expect("the barrier actor answers");
}

pub struct TestActor {
    probe: Arc<Probe>,
    lost: Option<LostState>,
}

impl TestActor {
    pub fn factory(probe: Arc<Probe>) -> impl Fn(&burrow_runtime::ActorInfo) -> TestActor {
        move |info| {
            probe.activations.fetch_add(1, Ordering::SeqCst);
            TestActor {
                probe: probe.clone(),
                lost: info.lost_state().cloned(),
            }
        }
    }
}

fn put(ctx: &Context<TestActor>, k: &str, v: &str) -> Result<(), Abort> {
    Ok(ctx.storage().put(k, v.as_bytes())?)
}

impl Message for Req {
    type Reply = Resp;
}

impl Actor for TestActor {}

impl Handler<Req> for TestActor {
    async fn handle(&mut self, ctx: &mut Context<Self>, req: Req) -> Result<Resp, Abort> {
        match req {
            Req::Put(k, v) => put(ctx, &k, &v).map(|()| Resp::Done),
            Req::Get(k) => Ok(Resp::Value(
                ctx.storage()
                    .get::<Vec<u8>>(&k)?
                    .map(|v| String::from_utf8(v).unwrap()),
            )),
            Req::PutThenPanic(k, v) => {
                put(ctx, &k, &v)?;
                panic!("deliberate panic after writing {k}");
            }
            Req::PutThenAbort(k, v) => {
                put(ctx, &k, &v)?;
                Err(Abort::new(format!("deliberate abort after writing {k}")))
            }
            Req::FlushThenAbort((k1, v1), (k2, v2)) => {
                put(ctx, &k1, &v1)?;
                ctx.flush().await?;
                put(ctx, &k2, &v2)?;
                Err(Abort::new("deliberate abort after a flush"))
            }
            Req::Sequenced(n) => {
                let now = self.probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.probe.max_in_flight.fetch_max(now, Ordering::SeqCst);
                self.probe.order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(1)).await;
                tokio::task::yield_now().await;
                self.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(Resp::Done)
            }
            Req::Gated(Gate { entered, open }) => {
                let _ = entered.send(());
                let _ = open.await;
                Ok(Resp::Done)
            }
            Req::Background(release, tag) => {
                ctx.spawn_background(async move {
                    let _ = release.await;
                    Req::Record(tag)
                });
                Ok(Resp::Done)
            }
            Req::Record(tag) => {
                let sql = ctx.storage().sql();
                sql.execute_batch("CREATE TABLE IF NOT EXISTS log (entry TEXT)")?;
                sql.execute("INSERT INTO log VALUES (?1)", [tag])?;
                Ok(Resp::Done)
            }
            Req::Log => {
                let sql = ctx.storage().sql();
                sql.execute_batch("CREATE TABLE IF NOT EXISTS log (entry TEXT)")?;
                let mut stmt = sql.prepare("SELECT entry FROM log ORDER BY rowid")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(Resp::Log(rows.collect::<Result<_, _>>()?))
            }
            Req::Sql(text) => Ok(match ctx.storage().sql().execute_batch(&text) {
                Ok(()) => Resp::Done,
                Err(e) => Resp::SqlError(e.to_string()),
            }),
            Req::Rendezvous(arrived, peer) => {
                arrived.send(()).unwrap();
                Ok(Resp::Met(
                    peer.recv_timeout(Duration::from_secs(10)).is_ok(),
                ))
            }
            Req::Info => Ok(Resp::Info {
                name: ctx.name().map(str::to_owned),
                lost: self.lost.clone(),
            }),
            Req::Savepoints => {
                let storage = ctx.storage();
                storage.transaction(|s| s.put("kept", b"yes"))?;
                let failed: Result<(), rusqlite::Error> = storage.transaction(|s| {
                    s.put("dropped", b"yes")?;
                    s.transaction(|inner| inner.put("inner", b"yes"))?;
                    Err(rusqlite::Error::InvalidQuery)
                });
                assert!(failed.is_err());
                Ok(Resp::Done)
            }
        }
    }
}

/// Reads a key–value entry from a copy of an actor's files, opened with plain rusqlite and no
/// runtime: what a crash right now would leave.
pub fn read_from_copy(db: &Path, key: &str) -> Option<String> {
    read_copy(db, key, true)
}

/// Like [`read_from_copy`], from the database file alone, leaving its WAL out.
pub fn read_from_database_alone(db: &Path, key: &str) -> Option<String> {
    read_copy(db, key, false)
}

fn read_copy(db: &Path, key: &str, with_wal: bool) -> Option<String> {
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("copy.db");
    std::fs::copy(db, &target).unwrap();
    let wal = db.with_extension("db-wal");
    if with_wal && wal.exists() {
        std::fs::copy(&wal, copy.path().join("copy.db-wal")).unwrap();
    }
    let conn = rusqlite::Connection::open(&target).unwrap();
    conn.query_row(
        "SELECT value FROM _burrow_kv WHERE key = ?1",
        [key.as_bytes()],
        |r| r.get::<_, Vec<u8>>(0),
    )
    .ok()
    .map(|v| String::from_utf8(v).unwrap())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    ms_of(std::time::SystemTime::now())
}

/// A time as milliseconds since the Unix epoch.
pub fn ms_of(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Milliseconds since the Unix epoch as a time.
pub fn at_ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(ms as u64)
}

/// An actor that keeps a list of numbers.
pub struct Tally;

impl Actor for Tally {}

/// Appends `n`; replies with everything appended so far.
pub struct Append(pub u64);

impl Message for Append {
    type Reply = Vec<u64>;
}

impl Handler<Append> for Tally {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        Append(n): Append,
    ) -> Result<Vec<u64>, Abort> {
        let storage = ctx.storage();
        let mut seen: Vec<u64> = storage
            .get::<Vec<u8>>("seen")?
            .map(|b| {
                b.chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        seen.push(n);
        let bytes: Vec<u8> = seen.iter().flat_map(|n| n.to_le_bytes()).collect();
        storage.put("seen", &bytes)?;
        Ok(seen)
    }
}

/// Descriptors this process has open on files under `dir`.
pub fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir)))
        .count()
}
