//! The catalog's database (`catalog.db`): one runtime-level SQLite file listing every actor and
//! indexing every pending alarm.
//!
//! Writes come from many actors at once, so one writer thread group-commits them
//! ([`writer`]). Reads go through one read-only connection ([`queries`]). The catalog is
//! derived data: each actor's file records its own identity, so a missing or damaged catalog is
//! rebuilt from the data directory at start-up ([`rebuild`]). The public face is the
//! `catalog` module's `Catalog`, above this one.

pub(crate) mod queries;
mod rebuild;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

use crate::clock::Clock;
use crate::durability::Durability;
use crate::error::is_corruption;
use crate::id::ActorId;
use crate::layout::{CATALOG_FILE, actors_dir, move_aside};

pub(crate) use writer::CatalogWrite;

/// One actor as the catalog knows it (see the `Catalog` example).
///
/// ```
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// let lamps = runtime.namespace("lamp", |_| A)?;
/// lamps.get_by_name("desk").call(Touch).await?;
/// let record: burrow_runtime::catalog::ActorRecord =
///     runtime.catalog().get("lamp", lamps.id_from_name("desk")).await?.expect("listed");
/// assert_eq!((record.namespace.as_str(), record.name.as_deref()), ("lamp", Some("desk")));
/// assert!(record.last_active >= record.created_at);
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRecord {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The name it was created under, if any.
    pub name: Option<String>,
    /// When its file was created.
    pub created_at: SystemTime,
    /// When it was last active (recorded when it is closed).
    pub last_active: SystemTime,
}

/// An alarm as the catalog's index holds it, from `Catalog::alarms`.
///
/// ```
/// # use std::time::{Duration, SystemTime};
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// struct Remind;
/// impl Message for Remind { type Reply = (); }
/// struct Person;
/// impl Actor for Person {}
/// impl Handler<Remind> for Person {
///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Remind) -> Result<(), Abort> {
///         ctx.set_alarm("birthday", SystemTime::now() + Duration::from_secs(86_400))
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// let people = runtime.namespace("person", |_| Person)?;
/// people.get_by_name("ada").call(Remind).await?;
/// let alarm: &burrow_runtime::catalog::AlarmRecord =
///     &runtime.catalog().alarms("person", people.id_from_name("ada")).await?[0];
/// assert_eq!(alarm.last_error, None);
/// assert_eq!(alarm.backoff, Duration::ZERO);
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRecord {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The alarm's name.
    pub name: String,
    /// When it is due.
    pub due: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it fires next: the due time, or the time of the next retry.
    pub fire_at: SystemTime,
    /// The delay chosen after the last failure (zero before any).
    pub backoff: Duration,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// An alarm that failed every attempt, from `Catalog::dead_alarms`.
///
/// ```
/// // An operator's report of everything that gave up.
/// fn report(dead: &[burrow_runtime::catalog::DeadAlarm]) -> Vec<String> {
///     dead.iter()
///         .map(|d| format!("{}/{} alarm {:?}: {} attempts, last: {}", d.namespace, d.id, d.name, d.attempts, d.last_error))
///         .collect()
/// }
/// assert!(report(&[]).is_empty()); // see `Catalog::dead_alarms` for a list that is not empty
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadAlarm {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// The alarm's name.
    pub name: String,
    /// When it was due.
    pub due: SystemTime,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// When it was given up.
    pub dead_at: SystemTime,
}

/// An actor file moved aside as unusable, from `Catalog::quarantined` (the file itself is
/// kept where `moved_to` says; the actor started afresh, or from its log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedFile {
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub id: ActorId,
    /// Why: `empty`, `no_identity`, `wrong_identity` or `corrupt`.
    pub reason: String,
    /// Where the file is now.
    pub moved_to: PathBuf,
    /// When it was moved.
    pub at: SystemTime,
}

/// What start-up did to the catalog, from
/// [`Runtime::catalog_startup`](crate::Runtime::catalog_startup).
///
/// ```
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// runtime.namespace("lamp", |_| A)?.get_by_name("desk").call(Touch).await?;
/// assert!(!runtime.catalog_startup().rebuilt);
/// runtime.shutdown(Duration::from_secs(5)).await;
/// // The catalog is lost; the actors' files are not.
/// for entry in std::fs::read_dir(dir.path())? {
///     let path = entry?.path();
///     if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("catalog")) {
///         std::fs::remove_file(path)?;
///     }
/// }
/// let runtime = Runtime::open(Options::new(dir.path()))?;
/// let startup = runtime.catalog_startup();
/// assert!(startup.rebuilt);
/// assert_eq!(runtime.catalog().count("lamp").await?, 1);
/// # runtime.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogStartup {
    /// The catalog was missing or damaged and was rebuilt from the actor files.
    pub rebuilt: bool,
    /// Actor files found on disk that the catalog did not list, now added.
    pub added: usize,
    /// Actor files that record no identity, left for activation to deal with.
    pub unreadable: usize,
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
CREATE TABLE IF NOT EXISTS quarantined (
    namespace TEXT NOT NULL,
    id BLOB NOT NULL,
    reason TEXT NOT NULL,
    moved_to TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
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

/// The function called after each commit that changed the alarm index.
type AlarmListener = Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>;

/// The catalog database: its writer thread and a connection for reads.
pub(crate) struct CatalogDb {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<CatalogWrite>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Opened on first use; closed at shutdown (and reopened if read after it).
    reader: Mutex<Option<Connection>>,
    /// Called after each commit that changed the alarm index (the scheduler's wake-up).
    alarm_listener: AlarmListener,
}

fn open_rw(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL")?;
    conn.execute_batch(durability.synchronous_pragma())?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// A read-only connection to the catalog.
pub(crate) fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl CatalogDb {
    /// Opens the catalog (rebuilding it if missing or damaged), reconciles it with the actor
    /// files, and starts the writer thread.
    pub(crate) fn open(
        data_dir: &Path,
        durability: Durability,
        clock: &Clock,
    ) -> Result<(CatalogDb, CatalogStartup), std::io::Error> {
        let path = data_dir.join(CATALOG_FILE);
        let mut startup = CatalogStartup::default();
        let actors_exist = std::fs::read_dir(actors_dir(data_dir))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        startup.rebuilt = !path.exists() && actors_exist;
        let conn = match open_rw(&path, durability).and_then(|c| {
            c.query_row("SELECT count(*) FROM actors", [], |_| Ok(()))
                .map(|()| c)
        }) {
            Ok(conn) => conn,
            Err(e) if is_corruption(&e) => {
                let aside = move_aside(&path, "damaged", clock.now_ms())?;
                tracing::warn!(catalog = %path.display(), to = %aside.display(), "catalog damaged ({e}); rebuilding it from the actor files");
                startup.rebuilt = true;
                open_rw(&path, durability).map_err(std::io::Error::other)?
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        rebuild::reconcile(&conn, data_dir, &mut startup).map_err(std::io::Error::other)?;
        if startup.rebuilt || startup.added > 0 {
            tracing::info!(
                rebuilt = startup.rebuilt,
                added = startup.added,
                "catalog reconciled with the data directory"
            );
        }
        let (tx, rx) = mpsc::channel();
        let alarm_listener: AlarmListener = Arc::default();
        let listener = alarm_listener.clone();
        let thread = std::thread::Builder::new()
            .name("burrow-catalog".into())
            .spawn(move || writer::run(conn, rx, listener))?;
        Ok((
            CatalogDb {
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
    pub(crate) fn send(&self, write: CatalogWrite) -> bool {
        match &*self.writer.lock().expect("not poisoned") {
            Some(tx) => tx.send(write).is_ok(),
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

    /// Runs `f` on the shared read-only connection.
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
