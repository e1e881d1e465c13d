//! The catalog: one runtime-level SQLite database listing every actor.
//!
//! Writes come from many actors at once, so one writer thread group-commits them: it takes
//! every operation waiting, applies them in one transaction, commits, then acknowledges. An
//! actor's creation is acknowledged before its first turn's reply is released, so a crash can
//! never leave an acknowledged actor unknown to the catalog.
//!
//! The catalog is derived data: each actor's file records its own identity, so a missing or
//! damaged catalog is rebuilt from the data directory, and start-up adds any actor file the
//! catalog does not know.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::id::ActorId;
use crate::options::Durability;

/// File name of the catalog inside the data directory.
pub(crate) const CATALOG_FILE: &str = "catalog.db";

/// Actors per group commit at most; more simply wait for the next batch.
const BATCH: usize = 4096;

/// One actor as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRecord {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The name it was created under, if any.
    pub name: Option<String>,
    /// When its file was created, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it was last active (recorded when it is closed), in milliseconds since the epoch.
    pub last_active_ms: i64,
}

/// An alarm as the catalog's index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRecord {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The alarm's name.
    pub name: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it fires next: the due time, or the time of the next retry.
    pub fire_at_ms: i64,
    /// The delay chosen after the last failure (zero before any).
    pub backoff_ms: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// An alarm that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadAlarm {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The alarm's name.
    pub name: String,
    /// When it was due.
    pub due_ms: i64,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// When it was given up, in milliseconds since the epoch.
    pub dead_at_ms: i64,
}

pub(crate) type Ack = oneshot::Sender<Result<(), String>>;

pub(crate) enum Op {
    /// Records an actor (or, if known, moves its last-active time forward).
    Upsert {
        namespace: Arc<str>,
        id: ActorId,
        name: Option<Arc<str>>,
        created_at_ms: i64,
        last_active_ms: i64,
        ack: Option<Ack>,
    },
    /// Forgets an actor and its alarms.
    Delete {
        namespace: Arc<str>,
        id: ActorId,
        ack: Ack,
    },
    /// Indexes an alarm (replacing one of the same name), before the turn that sets it commits.
    AlarmSet {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        ack: Option<Ack>,
    },
    /// Drops an alarm's entry if it is still the one due at `due_ms`.
    AlarmDone {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
    },
    /// Drops an alarm's entry whatever its due time (the actor deleted it).
    AlarmDelete {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
    },
    /// Records a failed attempt and when to try again.
    AlarmRetry {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        attempt: u32,
        fire_at_ms: i64,
        backoff_ms: i64,
        error: String,
    },
    /// Moves an alarm to the dead-letter list.
    AlarmDead {
        namespace: Arc<str>,
        id: ActorId,
        name: String,
        due_ms: i64,
        attempts: u32,
        error: String,
        at_ms: i64,
    },
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actors (
    namespace TEXT NOT NULL,
    id BLOB NOT NULL,
    name TEXT,
    created_at_ms INTEGER NOT NULL,
    last_active_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    namespace TEXT NOT NULL,
    id BLOB NOT NULL,
    name TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    fire_at_ms INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (namespace, id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alarms_by_fire_at ON alarms (fire_at_ms);
CREATE TABLE IF NOT EXISTS dead_alarms (
    namespace TEXT NOT NULL,
    id BLOB NOT NULL,
    name TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
";

/// The catalog's writer and a connection for reads.
pub(crate) struct Store {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Op>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Opened on first use; closed at shutdown (and reopened if read after it).
    reader: Mutex<Option<Connection>>,
    /// Called after each commit that changed the alarm index (the scheduler's wake-up).
    alarm_listener: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

fn open_rw(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL")?;
    conn.execute_batch(match durability {
        Durability::Process => "PRAGMA synchronous = NORMAL",
        Durability::Machine => "PRAGMA synchronous = FULL",
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub(crate) fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// What start-up did to the catalog.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogStartup {
    /// The catalog was missing or damaged and was rebuilt from the actor files.
    pub rebuilt: bool,
    /// Actor files found on disk that the catalog did not list, now added.
    pub added: usize,
    /// Actor files that record no identity, left for activation to deal with.
    pub unreadable: usize,
}

impl Store {
    /// Opens the catalog (rebuilding it if missing or damaged), reconciles it with the actor
    /// files, and starts the writer thread.
    pub(crate) fn open(
        data_dir: &Path,
        durability: Durability,
    ) -> Result<(Store, CatalogStartup), std::io::Error> {
        let path = data_dir.join(CATALOG_FILE);
        let mut startup = CatalogStartup::default();
        let actors_exist = std::fs::read_dir(data_dir.join("actors"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        startup.rebuilt = !path.exists() && actors_exist;
        let conn = match open_rw(&path, durability).and_then(|c| {
            c.query_row("SELECT count(*) FROM actors", [], |_| Ok(()))
                .map(|()| c)
        }) {
            Ok(conn) => conn,
            Err(e) if is_damage(&e) => {
                let aside = path.with_extension(format!("db.damaged-{}", now_ms()));
                tracing::warn!(catalog = %path.display(), to = %aside.display(), "catalog damaged ({e}); rebuilding it from the actor files");
                for suffix in ["-wal", "-shm"] {
                    let side = PathBuf::from(format!("{}{suffix}", path.display()));
                    if side.exists() {
                        std::fs::rename(&side, format!("{}{suffix}", aside.display()))?;
                    }
                }
                std::fs::rename(&path, &aside)?;
                startup.rebuilt = true;
                open_rw(&path, durability).map_err(std::io::Error::other)?
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        reconcile(&conn, data_dir, &mut startup).map_err(std::io::Error::other)?;
        if startup.rebuilt || startup.added > 0 {
            tracing::info!(
                rebuilt = startup.rebuilt,
                added = startup.added,
                "catalog reconciled with the data directory"
            );
        }
        let (tx, rx) = mpsc::channel();
        let alarm_listener: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::default();
        let listener = alarm_listener.clone();
        let thread = std::thread::Builder::new()
            .name("burrow-catalog".into())
            .spawn(move || run_writer(conn, rx, listener))?;
        Ok((
            Store {
                path,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                reader: Mutex::new(None),
                alarm_listener,
            },
            startup,
        ))
    }

    /// Registers the function called after each commit that changed the alarm index.
    pub(crate) fn on_alarm_commit(&self, listener: Box<dyn Fn() + Send + Sync>) {
        let _ = self.alarm_listener.set(listener);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a write; `false` if the catalog is closed.
    pub(crate) fn send(&self, op: Op) -> bool {
        match &*self.writer.lock().expect("not poisoned") {
            Some(tx) => tx.send(op).is_ok(),
            None => false,
        }
    }

    /// Commits what is queued and stops the writer.
    pub(crate) fn close(&self) {
        drop(self.reader.lock().expect("not poisoned").take());
        drop(self.writer.lock().expect("not poisoned").take());
        if let Some(thread) = self.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }

    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut reader = self.reader.lock().expect("not poisoned");
        if reader.is_none() {
            *reader = Some(open_ro(&self.path)?);
        }
        f(reader.as_ref().expect("opened above"))
    }
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<ActorRecord> {
    Ok(ActorRecord {
        namespace: row.get(0)?,
        id: id_from_column(row, 1)?,
        name: row.get(2)?,
        created_at_ms: row.get(3)?,
        last_active_ms: row.get(4)?,
    })
}

/// Up to `limit` actors of `namespace` with ids after `after`, in id order.
pub(crate) fn list(
    conn: &Connection,
    namespace: &str,
    after: Option<ActorId>,
    limit: usize,
) -> rusqlite::Result<Vec<ActorRecord>> {
    let after = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
    let mut stmt = conn.prepare_cached(
        "SELECT namespace, id, name, created_at_ms, last_active_ms FROM actors
         WHERE namespace = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    stmt.query_map(params![namespace, after, limit as i64], record)?
        .collect()
}

pub(crate) fn get(
    conn: &Connection,
    namespace: &str,
    id: &ActorId,
) -> rusqlite::Result<Option<ActorRecord>> {
    conn.prepare_cached(
        "SELECT namespace, id, name, created_at_ms, last_active_ms FROM actors
         WHERE namespace = ?1 AND id = ?2",
    )?
    .query_row(params![namespace, id.as_bytes().as_slice()], record)
    .optional()
}

pub(crate) fn count(conn: &Connection, namespace: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM actors WHERE namespace = ?1")?
        .query_row([namespace], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn id_from_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<ActorId> {
    let id: Vec<u8> = row.get(index)?;
    ActorId::from_bytes(&id).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Blob,
            "actor id is not 32 bytes".into(),
        )
    })
}

fn alarm_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRecord> {
    Ok(AlarmRecord {
        namespace: row.get(0)?,
        id: id_from_column(row, 1)?,
        name: row.get(2)?,
        due_ms: row.get(3)?,
        attempts: row.get(4)?,
        fire_at_ms: row.get(5)?,
        last_error: row.get(6)?,
        backoff_ms: row.get(7)?,
    })
}

const ALARM_COLUMNS: &str =
    "namespace, id, name, due_ms, attempts, fire_at_ms, last_error, backoff_ms";

/// Alarms due by `now` (at most `limit`, earliest first), and the next fire time after `now`.
pub(crate) fn due_alarms(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<AlarmRecord>, Option<i64>)> {
    let due = conn
        .prepare_cached(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE fire_at_ms <= ?1 ORDER BY fire_at_ms LIMIT ?2"
        ))?
        .query_map(params![now, limit as i64], alarm_record)?
        .collect::<Result<Vec<_>, _>>()?;
    let next = conn
        .prepare_cached("SELECT min(fire_at_ms) FROM alarms WHERE fire_at_ms > ?1")?
        .query_row([now], |r| r.get(0))?;
    Ok((due, next))
}

pub(crate) fn alarms_of(
    conn: &Connection,
    namespace: &str,
    id: &ActorId,
) -> rusqlite::Result<Vec<AlarmRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE namespace = ?1 AND id = ?2 ORDER BY name"
    ))?
    .query_map(params![namespace, id.as_bytes().as_slice()], alarm_record)?
    .collect()
}

pub(crate) fn dead_alarms(conn: &Connection, namespace: &str) -> rusqlite::Result<Vec<DeadAlarm>> {
    conn.prepare_cached(
        "SELECT namespace, id, name, due_ms, attempts, last_error, dead_at_ms FROM dead_alarms
         WHERE namespace = ?1 ORDER BY dead_at_ms, rowid",
    )?
    .query_map([namespace], |row| {
        Ok(DeadAlarm {
            namespace: row.get(0)?,
            id: id_from_column(row, 1)?,
            name: row.get(2)?,
            due_ms: row.get(3)?,
            attempts: row.get(4)?,
            last_error: row.get(5)?,
            dead_at_ms: row.get(6)?,
        })
    })?
    .collect()
}

pub(crate) fn namespaces(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT namespace FROM actors ORDER BY namespace")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

fn run_writer(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    alarm_listener: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>,
) {
    while let Ok(first) = rx.recv() {
        crate::faults::catalog_delay();
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = apply(&mut conn, &batch).map_err(|e| format!("catalog write failed: {e}"));
        if let Err(e) = &outcome {
            tracing::error!("{e}");
        }
        let alarms_changed = batch.iter().any(|op| !matches!(op, Op::Upsert { .. }));
        if alarms_changed && let Some(listener) = alarm_listener.get() {
            listener();
        }
        for op in batch {
            let ack = match op {
                Op::Upsert { ack, .. } | Op::AlarmSet { ack, .. } => ack,
                Op::Delete { ack, .. } => Some(ack),
                _ => None,
            };
            if let Some(ack) = ack {
                let _ = ack.send(outcome.clone());
            }
        }
    }
}

fn apply(conn: &mut Connection, batch: &[Op]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO actors (namespace, id, name, created_at_ms, last_active_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (namespace, id) DO UPDATE SET
               name = coalesce(name, excluded.name),
               last_active_ms = max(last_active_ms, excluded.last_active_ms)",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM actors WHERE namespace = ?1 AND id = ?2")?;
        let mut delete_alarms =
            tx.prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2")?;
        let mut alarm_set = tx.prepare_cached(
            "INSERT OR REPLACE INTO alarms (namespace, id, name, due_ms, attempts, fire_at_ms)
             VALUES (?1, ?2, ?3, ?4, 0, ?4)",
        )?;
        let mut alarm_done = tx.prepare_cached(
            "DELETE FROM alarms WHERE namespace = ?1 AND id = ?2 AND name = ?3 AND due_ms = ?4",
        )?;
        let mut alarm_delete =
            tx.prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2 AND name = ?3")?;
        let mut alarm_retry = tx.prepare_cached(
            "UPDATE alarms SET attempts = ?5, fire_at_ms = ?6, last_error = ?7, backoff_ms = ?8
             WHERE namespace = ?1 AND id = ?2 AND name = ?3 AND due_ms = ?4",
        )?;
        let mut alarm_dead = tx.prepare_cached(
            "INSERT INTO dead_alarms (namespace, id, name, due_ms, attempts, last_error, dead_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for op in batch {
            match op {
                Op::Upsert {
                    namespace,
                    id,
                    name,
                    created_at_ms,
                    last_active_ms,
                    ..
                } => {
                    upsert.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name.as_deref(),
                        created_at_ms,
                        last_active_ms
                    ])?;
                }
                Op::Delete { namespace, id, .. } => {
                    delete.execute(params![&**namespace, id.as_bytes().as_slice()])?;
                    delete_alarms.execute(params![&**namespace, id.as_bytes().as_slice()])?;
                }
                Op::AlarmSet {
                    namespace,
                    id,
                    name,
                    due_ms,
                    ..
                } => {
                    alarm_set.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms
                    ])?;
                }
                Op::AlarmDone {
                    namespace,
                    id,
                    name,
                    due_ms,
                } => {
                    alarm_done.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms
                    ])?;
                }
                Op::AlarmDelete {
                    namespace,
                    id,
                    name,
                } => {
                    alarm_delete.execute(params![&**namespace, id.as_bytes().as_slice(), name])?;
                }
                Op::AlarmRetry {
                    namespace,
                    id,
                    name,
                    due_ms,
                    attempt,
                    fire_at_ms,
                    backoff_ms,
                    error,
                } => {
                    alarm_retry.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms,
                        attempt,
                        fire_at_ms,
                        error,
                        backoff_ms
                    ])?;
                }
                Op::AlarmDead {
                    namespace,
                    id,
                    name,
                    due_ms,
                    attempts,
                    error,
                    at_ms,
                } => {
                    let key = params![&**namespace, id.as_bytes().as_slice(), name, due_ms];
                    alarm_done.execute(key)?;
                    alarm_dead.execute(params![
                        &**namespace,
                        id.as_bytes().as_slice(),
                        name,
                        due_ms,
                        attempts,
                        error,
                        at_ms
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// Whether a file name is an actor's database (`<64 hex>.db`), and its id.
pub(crate) fn actor_file_id(file_name: &str) -> Option<ActorId> {
    file_name.strip_suffix(".db")?.parse().ok()
}

/// Adds every actor file the catalog does not know, reading each one's identity.
fn reconcile(
    conn: &Connection,
    data_dir: &Path,
    startup: &mut CatalogStartup,
) -> rusqlite::Result<()> {
    let Ok(namespaces) = std::fs::read_dir(data_dir.join("actors")) else {
        return Ok(());
    };
    for ns_dir in namespaces.flatten() {
        let Some(namespace) = ns_dir.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let known: HashSet<Vec<u8>> = {
            let mut stmt = conn.prepare("SELECT id FROM actors WHERE namespace = ?1")?;
            stmt.query_map([&namespace], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let Ok(shards) = std::fs::read_dir(ns_dir.path()) else {
            continue;
        };
        for file in shards
            .flatten()
            .filter_map(|d| std::fs::read_dir(d.path()).ok())
            .flatten()
            .flatten()
        {
            let Some(id) = file.file_name().to_str().and_then(actor_file_id) else {
                continue;
            };
            if known.contains(id.as_bytes().as_slice()) {
                continue;
            }
            match read_identity(&file.path()) {
                Some((ns, recorded_id, name, created, alarms))
                    if ns == namespace && recorded_id == id =>
                {
                    for (alarm, due) in alarms {
                        conn.execute(
                            "INSERT OR IGNORE INTO alarms (namespace, id, name, due_ms, attempts, fire_at_ms)
                             VALUES (?1, ?2, ?3, ?4, 0, ?4)",
                            params![namespace, id.as_bytes().as_slice(), alarm, due],
                        )?;
                    }
                    let last_active = file
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(created, |d| d.as_millis() as i64);
                    conn.execute(
                        "INSERT OR IGNORE INTO actors (namespace, id, name, created_at_ms, last_active_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![namespace, id.as_bytes().as_slice(), name, created, last_active],
                    )?;
                    startup.added += 1;
                }
                _ => startup.unreadable += 1,
            }
        }
    }
    Ok(())
}

type FileIdentity = (String, ActorId, Option<String>, i64, Vec<(String, i64)>);

/// The identity and alarms an actor file records, read without writing to it.
fn read_identity(path: &Path) -> Option<FileIdentity> {
    // Opened the way the runtime opens it, so that reading changes nothing on disk.
    let conn = crate::storage::Storage::connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE,
        Durability::Process,
    )
    .ok()?;
    let mut stmt = conn
        .prepare("SELECT key, value FROM _burrow_meta WHERE key IN ('namespace', 'id', 'name', 'created_at_ms')")
        .ok()?;
    let rows: Vec<(String, rusqlite::types::Value)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let text = |key: &str| {
        rows.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                rusqlite::types::Value::Text(s) => Some(s.clone()),
                _ => None,
            })
    };
    let created = rows
        .iter()
        .find(|(k, _)| k == "created_at_ms")
        .and_then(|(_, v)| match v {
            rusqlite::types::Value::Integer(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0);
    let alarms = conn
        .prepare("SELECT name, due_ms FROM _burrow_alarms")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .unwrap_or_default();
    Some((
        text("namespace")?,
        text("id")?.parse().ok()?,
        text("name"),
        created,
        alarms,
    ))
}

/// The catalog of every actor in a runtime's data directory: list, count, look up, delete and
/// export actors, whether or not they are resident. From [`Runtime::catalog`](crate::Runtime::catalog).
#[derive(Clone, Debug)]
pub struct Catalog {
    runtime: crate::Runtime,
}

fn read_failed(e: impl std::fmt::Display) -> crate::CallError {
    crate::CallError::new(
        crate::ErrorKind::TransientIo,
        format!("reading the catalog: {e}"),
    )
}

impl Catalog {
    pub(crate) fn new(runtime: crate::Runtime) -> Catalog {
        Catalog { runtime }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, crate::CallError> {
        let store = self.runtime.store().clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(read_failed)?
            .map_err(read_failed)
    }

    /// The namespaces that have actors.
    pub async fn namespaces(&self) -> Result<Vec<String>, crate::CallError> {
        self.read(namespaces).await
    }

    /// Up to `limit` actors of `namespace` whose ids come after `after`, in id order: pass the
    /// last id of one page to get the next.
    pub async fn list(
        &self,
        namespace: &str,
        after: Option<ActorId>,
        limit: usize,
    ) -> Result<Vec<ActorRecord>, crate::CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| list(c, &namespace, after, limit)).await
    }

    /// How many actors `namespace` has.
    pub async fn count(&self, namespace: &str) -> Result<u64, crate::CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| count(c, &namespace)).await
    }

    /// One actor's record, if the catalog has it.
    pub async fn get(
        &self,
        namespace: &str,
        id: ActorId,
    ) -> Result<Option<ActorRecord>, crate::CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| get(c, &namespace, &id)).await
    }

    /// The pending alarms of one actor, as indexed (with retry state).
    pub async fn alarms(
        &self,
        namespace: &str,
        id: ActorId,
    ) -> Result<Vec<AlarmRecord>, crate::CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| alarms_of(c, &namespace, &id)).await
    }

    /// The dead-letter list of `namespace`: alarms whose handler failed every attempt.
    pub async fn dead_alarms(&self, namespace: &str) -> Result<Vec<DeadAlarm>, crate::CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| dead_alarms(c, &namespace)).await
    }

    /// Deletes an actor: closes it if it is resident and idle (a busy actor is an
    /// [`ActorReset`](crate::ErrorKind::ActorReset) error: try again), removes its files and
    /// its catalog entry. Returns whether there was anything to delete. The next call to the
    /// actor creates it afresh.
    pub async fn delete(&self, namespace: &str, id: ActorId) -> Result<bool, crate::CallError> {
        let path = self.actor_path(namespace, &id)?;
        let key = self
            .runtime
            .namespace_index(namespace)
            .map(|index| (index, id));
        let (done, outcome) = oneshot::channel();
        self.runtime.on_shard(
            id,
            Box::new(move |shard| {
                let result = (|| {
                    if let Some(key) = key {
                        shard.close_for_admin(key)?;
                    }
                    let mut existed = false;
                    for suffix in ["", "-wal", "-shm"] {
                        let file = PathBuf::from(format!("{}{suffix}", path.display()));
                        match std::fs::remove_file(&file) {
                            Ok(()) => existed = true,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(crate::CallError::new(
                                    crate::ErrorKind::TransientIo,
                                    format!("deleting {}: {e}", file.display()),
                                ));
                            }
                        }
                    }
                    Ok(existed)
                })();
                let _ = done.send(result);
            }),
        )?;
        let existed = outcome.await.map_err(|_| {
            crate::CallError::new(crate::ErrorKind::ShuttingDown, "the runtime shut down")
        })??;
        let known = self.get(namespace, id).await?.is_some();
        let (ack, recorded) = oneshot::channel();
        self.runtime.store().send(Op::Delete {
            namespace: Arc::from(namespace),
            id,
            ack,
        });
        recorded
            .await
            .unwrap_or_else(|_| Err("the catalog writer stopped".into()))
            .map_err(|e| crate::CallError::new(crate::ErrorKind::TransientIo, e))?;
        Ok(existed || known)
    }

    /// Copies an actor's database to a new file at `dest` with SQLite's backup API (the actor
    /// is closed first if it is resident and idle). `dest` must not exist.
    pub async fn export(
        &self,
        namespace: &str,
        id: ActorId,
        dest: &Path,
    ) -> Result<(), crate::CallError> {
        let invalid = |m: String| crate::CallError::new(crate::ErrorKind::InvalidInput, m);
        if dest.exists() {
            return Err(invalid(format!(
                "{} exists; export never overwrites",
                dest.display()
            )));
        }
        let path = self.actor_path(namespace, &id)?;
        let key = self
            .runtime
            .namespace_index(namespace)
            .map(|index| (index, id));
        let dest = dest.to_owned();
        let (done, outcome) = oneshot::channel();
        self.runtime.on_shard(
            id,
            Box::new(move |shard| {
                let result = (|| {
                    if let Some(key) = key {
                        shard.close_for_admin(key)?;
                    }
                    if !path.exists() {
                        return Err(invalid(format!("actor {id} of {path:?} has no file")));
                    }
                    let io = |e: rusqlite::Error| {
                        crate::CallError::new(
                            crate::ErrorKind::TransientIo,
                            format!("exporting actor {id}: {e}"),
                        )
                    };
                    let source = crate::storage::Storage::connect(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE,
                        shard.durability(),
                    )
                    .map_err(io)?;
                    let mut target = Connection::open(&dest).map_err(io)?;
                    rusqlite::backup::Backup::new(&source, &mut target)
                        .and_then(|b| b.run_to_completion(1024, std::time::Duration::ZERO, None))
                        .map_err(io)
                })();
                let _ = done.send(result);
            }),
        )?;
        outcome.await.map_err(|_| {
            crate::CallError::new(crate::ErrorKind::ShuttingDown, "the runtime shut down")
        })?
    }

    fn actor_path(&self, namespace: &str, id: &ActorId) -> Result<PathBuf, crate::CallError> {
        crate::runtime::validate_namespace(namespace)
            .map_err(|e| crate::CallError::new(crate::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(crate::namespace::actor_path(
            &self.runtime.data_dir().join("actors").join(namespace),
            id,
        ))
    }
}
