//! The catalog: every actor in a runtime's data directory, and every pending alarm, whether or
//! not the actors are resident. From [`Runtime::catalog`](crate::Runtime::catalog).
//!
//! Writes from all shards are group-committed by one writer thread; a new actor's first reply
//! waits for the batch that records it, so an acknowledged actor is never missing from the
//! catalog after a crash. The catalog is derived data: every actor file records its own
//! identity, and a missing or damaged catalog is rebuilt from the files at start-up
//! ([`Runtime::catalog_startup`](crate::Runtime::catalog_startup)).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::catalog_db::{CatalogDb, CatalogWrite, queries};
use crate::dispatcher::Dispatcher;
use crate::error::{CallError, ErrorKind};
use crate::id::ActorId;
use crate::layout::{actor_path, namespace_dir, remove_database, validate_namespace};
use crate::storage::Storage;

pub use crate::catalog_db::{ActorRecord, AlarmRecord, CatalogStartup, DeadAlarm, QuarantinedFile};

/// The catalog of every actor in a runtime's data directory: list, count, look up, delete and
/// export actors, whether or not they are resident.
///
/// ```
/// # use burrow_runtime::{Actor, Handler, Message, Context, Abort, Options, Runtime};
/// # struct Touch;
/// # impl Message for Touch { type Reply = (); }
/// # struct A;
/// # impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let runtime = Runtime::open(Options::new(dir.path()))?;
/// let things = runtime.namespace("thing", |_| A)?;
/// things.get_by_name("lamp").call(Touch).await?;
/// let catalog = runtime.catalog();
/// assert_eq!(catalog.count("thing").await?, 1);
/// let page = catalog.list("thing", None, 100).await?;
/// assert_eq!(page[0].name.as_deref(), Some("lamp"));
/// # runtime.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Catalog {
    dispatcher: Arc<Dispatcher>,
    db: Arc<CatalogDb>,
    data_dir: PathBuf,
    /// The replicated log, whose copy of a deleted actor goes too.
    log: Option<Arc<dyn crate::turn_log::TurnLog>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.db.path())
            .finish()
    }
}

fn read_failed(e: impl std::fmt::Display) -> CallError {
    CallError::new(ErrorKind::TransientIo, format!("reading the catalog: {e}"))
}

fn shut_down<T>(_: T) -> CallError {
    CallError::new(ErrorKind::ShuttingDown, "the runtime shut down")
}

impl Catalog {
    pub(crate) fn new(
        dispatcher: Arc<Dispatcher>,
        db: Arc<CatalogDb>,
        data_dir: PathBuf,
        log: Option<Arc<dyn crate::turn_log::TurnLog>>,
    ) -> Self {
        Catalog {
            dispatcher,
            db,
            data_dir,
            log,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CallError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(read_failed)?
            .map_err(read_failed)
    }

    /// The namespaces that have actors.
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
    /// runtime.namespace("door", |_| A)?.get_by_name("front").call(Touch).await?;
    /// let mut names = runtime.catalog().namespaces().await?;
    /// names.sort();
    /// assert_eq!(names, ["door", "lamp"]);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn namespaces(&self) -> Result<Vec<String>, CallError> {
        self.read(queries::namespaces).await
    }

    /// Up to `limit` actors of `namespace` whose ids come after `after`, in id order: pass the
    /// last id of one page to get the next.
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
    /// for name in ["a", "b", "c"] {
    ///     lamps.get_by_name(name).call(Touch).await?;
    /// }
    /// let catalog = runtime.catalog();
    /// let (mut seen, mut after) = (0, None);
    /// loop {
    ///     let page = catalog.list("lamp", after, 2).await?;
    ///     seen += page.len();
    ///     match page.last() {
    ///         Some(last) if page.len() == 2 => after = Some(last.id),
    ///         _ => break,
    ///     }
    /// }
    /// assert_eq!(seen, 3);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        namespace: &str,
        after: Option<ActorId>,
        limit: usize,
    ) -> Result<Vec<ActorRecord>, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::list(c, &namespace, after, limit))
            .await
    }

    /// How many actors `namespace` has.
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
    /// assert_eq!(runtime.catalog().count("lamp").await?, 0);
    /// lamps.get_by_name("desk").call(Touch).await?;
    /// lamps.get_by_name("desk").call(Touch).await?; // the same actor
    /// assert_eq!(runtime.catalog().count("lamp").await?, 1);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn count(&self, namespace: &str) -> Result<u64, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::count(c, &namespace)).await
    }

    /// One actor's record, if the catalog has it.
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
    /// let record = runtime.catalog().get("lamp", lamps.id_from_name("desk")).await?.expect("listed");
    /// assert_eq!(record.name.as_deref(), Some("desk"));
    /// assert!(runtime.catalog().get("lamp", lamps.new_unique_id()).await?.is_none());
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn get(
        &self,
        namespace: &str,
        id: ActorId,
    ) -> Result<Option<ActorRecord>, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::get(c, &namespace, &id)).await
    }

    /// The pending alarms of one actor, as indexed (with retry state).
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
    /// let alarms = runtime.catalog().alarms("person", people.id_from_name("ada")).await?;
    /// assert_eq!(alarms.len(), 1);
    /// assert_eq!((alarms[0].name.as_str(), alarms[0].attempts), ("birthday", 0));
    /// assert_eq!(alarms[0].fire_at, alarms[0].due); // no retry pending
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn alarms(
        &self,
        namespace: &str,
        id: ActorId,
    ) -> Result<Vec<AlarmRecord>, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::alarms_of(c, &namespace, &id))
            .await
    }

    /// The dead-letter list of `namespace`: alarms whose handler failed every attempt.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
    /// # use burrow_runtime::alarm::{Alarm, AlarmPolicy};
    /// struct Arm;
    /// impl Message for Arm { type Reply = (); }
    /// struct Flaky;
    /// impl Actor for Flaky {
    ///     async fn alarm(&mut self, _: &mut Context<Self>, _: Alarm) -> Result<(), Abort> {
    ///         Err(Abort::new("the printer is on fire"))
    ///     }
    /// }
    /// impl Handler<Arm> for Flaky {
    ///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Arm) -> Result<(), Abort> {
    ///         ctx.set_alarm("print", SystemTime::now())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// // One attempt, then the dead-letter list.
    /// let policy = AlarmPolicy { max_attempts: 1, ..AlarmPolicy::default() };
    /// let runtime = Runtime::open(Options::new(dir.path()).alarm_policy(policy))?;
    /// runtime.namespace("flaky", |_| Flaky)?.get_by_name("p").call(Arm).await?;
    /// let began = Instant::now();
    /// let dead = loop {
    ///     let dead = runtime.catalog().dead_alarms("flaky").await?;
    ///     if !dead.is_empty() || began.elapsed() > Duration::from_secs(30) {
    ///         break dead;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// };
    /// assert_eq!(dead[0].name, "print");
    /// assert_eq!(dead[0].attempts, 1);
    /// assert!(dead[0].last_error.contains("on fire"));
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn dead_alarms(&self, namespace: &str) -> Result<Vec<DeadAlarm>, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::dead_alarms(c, &namespace))
            .await
    }

    /// The actor files of `namespace` moved aside as unusable, oldest first (the activation
    /// that found one started the actor afresh, or from its log, and was told why). Recorded
    /// from the move on; the files themselves are never deleted.
    pub async fn quarantined(&self, namespace: &str) -> Result<Vec<QuarantinedFile>, CallError> {
        let namespace = namespace.to_owned();
        self.read(move |c| queries::quarantined(c, &namespace))
            .await
    }

    /// Deletes an actor: closes it if it is resident and idle (a busy actor is an
    /// [`ActorReset`](ErrorKind::ActorReset) error: try again), removes its files and
    /// its catalog entry. Returns whether there was anything to delete. The next call to the
    /// actor creates it afresh.
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
    /// let desk = lamps.id_from_name("desk");
    /// lamps.get(desk).call(Touch).await?;
    /// assert!(lamps.path_of(&desk).exists());
    /// assert!(runtime.catalog().delete("lamp", desk).await?);
    /// assert!(!lamps.path_of(&desk).exists());
    /// assert_eq!(runtime.catalog().count("lamp").await?, 0);
    /// assert!(!runtime.catalog().delete("lamp", desk).await?); // nothing left to delete
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, namespace: &str, id: ActorId) -> Result<bool, CallError> {
        let path = self.actor_path(namespace, &id)?;
        if let Some(log) = &self.log {
            // First: the new epoch fences an activation still running, and the log can no
            // longer bring the actor back.
            let key = crate::turn_log::LogKey {
                namespace: Arc::from(namespace),
                id,
            };
            log.delete(&key).await.map_err(|e| {
                CallError::new(
                    ErrorKind::TransientIo,
                    format!("deleting actor {id} from the replicated log: {e}"),
                )
            })?;
        }
        let existed = self
            .on_actor_shard(namespace, id, move |_| {
                remove_database(&path).map_err(|e| {
                    CallError::new(ErrorKind::TransientIo, format!("deleting actor {id}: {e}"))
                })
            })
            .await?;
        let known = self.get(namespace, id).await?.is_some();
        let (ack, recorded) = oneshot::channel();
        self.db.send(CatalogWrite::Delete {
            namespace: Arc::from(namespace),
            id,
            ack,
        });
        recorded
            .await
            .unwrap_or_else(|_| Err("the catalog writer stopped".into()))
            .map_err(|e| CallError::new(ErrorKind::TransientIo, e))?;
        Ok(existed || known)
    }

    /// Copies an actor's database to a new file at `dest` with SQLite's backup API (the actor
    /// is closed first if it is resident and idle). `dest` must not exist.
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
    /// let desk = lamps.id_from_name("desk");
    /// lamps.get(desk).call(Touch).await?;
    /// let copy = dir.path().join("desk-copy.db");
    /// runtime.catalog().export("lamp", desk, &copy).await?;
    /// let db = burrow_runtime::rusqlite::Connection::open(&copy)?;
    /// let tables: i64 = db.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))?;
    /// assert!(tables > 0);
    /// // Never over an existing file.
    /// assert!(runtime.catalog().export("lamp", desk, &copy).await.is_err());
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn export(&self, namespace: &str, id: ActorId, dest: &Path) -> Result<(), CallError> {
        let invalid = |m: String| CallError::new(ErrorKind::InvalidInput, m);
        if dest.exists() {
            return Err(invalid(format!(
                "{} exists; export never overwrites",
                dest.display()
            )));
        }
        let path = self.actor_path(namespace, &id)?;
        let dest = dest.to_owned();
        self.on_actor_shard(namespace, id, move |durability| {
            if !path.exists() {
                return Err(invalid(format!("actor {id} of {path:?} has no file")));
            }
            let io = |e: rusqlite::Error| {
                CallError::new(ErrorKind::TransientIo, format!("exporting actor {id}: {e}"))
            };
            let source = Storage::connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE, durability)
                .map_err(io)?;
            let mut target = Connection::open(&dest).map_err(io)?;
            rusqlite::backup::Backup::new(&source, &mut target)
                .and_then(|b| b.run_to_completion(1024, std::time::Duration::ZERO, None))
                .map_err(io)
        })
        .await
    }

    /// Runs `work` on the shard of actor `id`, between its turns, once the actor is closed (if
    /// it was resident and idle; a busy actor fails the call).
    async fn on_actor_shard<T: Send + 'static>(
        &self,
        namespace: &str,
        id: ActorId,
        work: impl FnOnce(crate::durability::Durability) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, CallError> {
        let index = self.dispatcher.namespace_index(namespace);
        let (done, outcome) = oneshot::channel();
        self.dispatcher.on_shard(
            id,
            Box::new(move |shard| {
                let Some(index) = index else {
                    let _ = done.send(work(shard.durability()));
                    return;
                };
                // An evicted actor's checkpoint finishes before its file is touched.
                shard.when_closed(
                    (index, id),
                    Box::new(move |shard| {
                        let result = shard
                            .close_for_admin((index, id))
                            .and_then(|()| work(shard.durability()));
                        let _ = done.send(result);
                    }),
                );
            }),
        )?;
        outcome.await.map_err(shut_down)?
    }

    fn actor_path(&self, namespace: &str, id: &ActorId) -> Result<PathBuf, CallError> {
        validate_namespace(namespace)
            .map_err(|e| CallError::new(ErrorKind::InvalidInput, e.to_string()))?;
        Ok(actor_path(&namespace_dir(&self.data_dir, namespace), id))
    }
}
