//! The runtime: shard threads, namespaces, and shutdown.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Actor, ActorInfo};
use crate::actor_type::ActorType;
use crate::catalog::{Catalog, CatalogStartup};
use crate::catalog_db::CatalogDb;
use crate::dispatcher::Dispatcher;
use crate::error::RuntimeError;
use crate::layout::{
    CATALOG_FILE, LOCK_FILE, actors_dir, create_namespace_dir, validate_namespace,
};
use crate::namespace::Namespace;
use crate::options::Options;
use crate::random::Random;
use crate::scheduler::Scheduler;
use crate::services::ShardServices;
use crate::shard::{ResidentCount, ShardConfig, ShardMsg, ShutdownReport, run_shard};

/// A running Burrow runtime. Cheap to clone; every clone is the same runtime.
///
/// Open one per data directory (a lock file keeps a second one out), register a
/// [`Namespace`] per actor type, call actors through stubs, and [`shutdown`](Runtime::shutdown)
/// when done. Dropping every handle without a shutdown also stops the shards and closes the
/// files (turns in flight are rolled back), but waits for nothing.
///
/// ```
/// use std::time::Duration;
/// use burrow_runtime::{Actor, Options, Runtime};
/// struct Idle;
/// impl Actor for Idle {}
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let runtime = Runtime::open(Options::new(dir.path()).max_resident(1000).shards(2))?;
/// let _idle = runtime.namespace("idle", |_| Idle)?;
/// assert_eq!(runtime.max_resident(), 1000);
/// assert!(runtime.catalog_startup().added == 0);
/// let report = runtime.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.abandoned, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.inner.data_dir)
            .field("shards", &self.shards())
            .finish()
    }
}

pub(crate) struct Inner {
    data_dir: PathBuf,
    /// The replicated log, in replicated mode.
    log: Option<Arc<dyn crate::turn_log::TurnLog>>,
    durability: crate::durability::Durability,
    max_resident: usize,
    dispatcher: Arc<Dispatcher>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    scheduler: Scheduler,
    catalog: Arc<CatalogDb>,
    catalog_startup: CatalogStartup,
    /// In replicated mode: adopts alarms that no live node of a cluster holds.
    #[cfg(feature = "replicated")]
    orphans: Option<crate::orphans::OrphanSweep>,
    /// Held from open to the end of shutdown.
    lock: Mutex<Option<Flock<File>>>,
}

impl Runtime {
    /// Opens the runtime on `options`' data directory (creating it if needed) and starts its
    /// shard threads.
    ///
    /// ```
    /// # use burrow_runtime::{Options, Runtime, RuntimeError};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let runtime = Runtime::open(Options::new(dir.path()).shards(2))?;
    /// assert_eq!(runtime.shards(), 2);
    /// // One runtime per data directory:
    /// assert!(matches!(Runtime::open(Options::new(dir.path())), Err(RuntimeError::Locked { .. })));
    /// # Ok(()) }
    /// ```
    pub fn open(options: Options) -> Result<Runtime, RuntimeError> {
        if options.durability == crate::durability::Durability::Replicated {
            if !cfg!(feature = "replicated") {
                return Err(RuntimeError::Options(
                    "Durability::Replicated needs burrow-runtime built with its `replicated` feature",
                ));
            }
            if options.turn_log.is_none() {
                return Err(RuntimeError::Options(
                    "Durability::Replicated needs a log: set Options::turn_log",
                ));
            }
        }
        let data_dir = options.data_dir.clone();
        let dir_error = |source| RuntimeError::DataDir {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(actors_dir(&data_dir)).map_err(dir_error)?;
        let lock_file = File::create(data_dir.join(LOCK_FILE)).map_err(dir_error)?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                RuntimeError::Locked {
                    path: data_dir.clone(),
                }
            } else {
                dir_error(e.into())
            }
        })?;

        // A catalog that is not there yet is new: on a fresh machine, or after the data
        // directory was lost, which in replicated mode the log can make good.
        #[cfg(feature = "replicated")]
        let catalog_is_new = !data_dir.join(CATALOG_FILE).exists();
        let (catalog, catalog_startup) =
            CatalogDb::open(&data_dir, options.durability, &options.clock).map_err(|source| {
                RuntimeError::Catalog {
                    path: data_dir.join(CATALOG_FILE),
                    source,
                }
            })?;
        let catalog = Arc::new(catalog);
        #[cfg(feature = "replicated")]
        if let (true, crate::durability::Durability::Replicated, Some(log)) = (
            catalog_is_new || catalog_startup.rebuilt,
            options.durability,
            &options.turn_log,
        ) {
            crate::catalog_from_log::restore_from_log(log.clone(), catalog.clone())
                .map_err(RuntimeError::Thread)?;
        }
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..options.shards)
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let dispatcher = Arc::new(Dispatcher::new(senders));
        let random = options.random_seed.map_or(Random::Os, Random::seeded);
        let scheduler = Scheduler::start(
            catalog.clone(),
            options
                .turn_log
                .clone()
                .filter(|_| options.durability == crate::durability::Durability::Replicated),
            options.alarm_policy.clone(),
            options.clock.clone(),
            random,
            Arc::downgrade(&dispatcher),
        )
        .map_err(RuntimeError::Thread)?;
        #[cfg(feature = "replicated")]
        let orphans = match (&options.turn_log, options.durability) {
            (Some(log), crate::durability::Durability::Replicated) => Some(
                crate::orphans::start(log.clone(), catalog.clone(), options.clock.clone())
                    .map_err(RuntimeError::Thread)?,
            ),
            _ => None,
        };
        let inner = Arc::new(Inner {
            data_dir: data_dir.clone(),
            log: options
                .turn_log
                .clone()
                .filter(|_| options.durability == crate::durability::Durability::Replicated),
            durability: options.durability,
            max_resident: options.per_shard_resident() * options.shards,
            dispatcher,
            threads: Mutex::new(Vec::new()),
            scheduler,
            catalog: catalog.clone(),
            catalog_startup,
            #[cfg(feature = "replicated")]
            orphans,
            lock: Mutex::new(Some(lock)),
        });
        let resident = Arc::new(ResidentCount::new(options.shards));
        for (index, inbox) in inboxes.into_iter().enumerate() {
            let config = ShardConfig {
                index,
                services: ShardServices::new(
                    catalog.clone(),
                    options.commit_hook.clone(),
                    options.durability,
                    options.clock.clone(),
                    options.turns_per_commit(),
                    crate::services::LogSettings {
                        log: options.turn_log.clone(),
                        append_timeout: options.append_timeout,
                        snapshots: options.snapshots,
                    },
                ),
                resident: resident.clone(),
                budget: options.per_shard_resident(),
                mailbox_capacity: options.mailbox_capacity,
                idle_timeout: options.idle_timeout,
                overflow_after: options.overflow_after,
                checkpoint_above: options.checkpoint_above,
                spin: options.spin_before_park,
            };
            let thread = std::thread::Builder::new()
                .name(format!("burrow-shard-{index}"))
                .spawn(move || run_shard(config, inbox))
                .map_err(RuntimeError::Thread)?;
            inner.threads.lock().expect("not poisoned").push(thread);
        }
        Ok(Runtime { inner })
    }

    /// Registers the actor type `A` under `name` (lower-case letters, digits, `-`, `_`; it
    /// names a folder, so keep it stable). `factory` builds an actor when one is activated; it
    /// may capture shared dependencies.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let users = runtime.namespace("user", |_| A)?;
    /// assert!(runtime.namespace("user", |_| A).is_err()); // one type per name
    /// assert!(runtime.namespace("Not Valid", |_| A).is_err());
    /// # let _ = users;
    /// # Ok(()) }
    /// ```
    pub fn namespace<A: Actor>(
        &self,
        name: &str,
        factory: impl Fn(&ActorInfo) -> A + Send + Sync + 'static,
    ) -> Result<Namespace<A>, RuntimeError> {
        validate_namespace(name)?;
        let inner = &self.inner;
        let actor_type = inner.dispatcher.register(name, |index| {
            let dir = create_namespace_dir(&inner.data_dir, name, inner.durability).map_err(
                |source| RuntimeError::DataDir {
                    path: crate::layout::namespace_dir(&inner.data_dir, name),
                    source,
                },
            )?;
            Ok(Arc::new(ActorType {
                name: Arc::from(name),
                index,
                dir,
                factory: Box::new(factory),
            }))
        })?;
        // Alarms of this namespace may have been waiting for it.
        inner.scheduler.wake();
        Ok(Namespace::new(actor_type, inner.dispatcher.clone()))
    }

    /// The catalog of every actor in the data directory.
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
    /// assert_eq!(runtime.catalog().count("lamp").await?, 1);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn catalog(&self) -> Catalog {
        Catalog::new(
            self.inner.dispatcher.clone(),
            self.inner.catalog.clone(),
            self.inner.data_dir.clone(),
            self.inner.log.clone(),
        )
    }

    /// What start-up found: whether the catalog was rebuilt, and how many actor files it had
    /// to add.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// let startup = runtime.catalog_startup();
    /// assert!(!startup.rebuilt); // a new data directory's catalog is new, not rebuilt
    /// assert_eq!(startup.added, 0);
    /// # Ok(()) }
    /// ```
    pub fn catalog_startup(&self) -> CatalogStartup {
        self.inner.catalog_startup
    }

    /// The data directory.
    ///
    /// ```
    /// # use burrow_runtime::{Actor, Options, Runtime};
    /// # struct A; impl Actor for A {}
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let runtime = Runtime::open(Options::new(dir.path()))?;
    /// assert_eq!(runtime.data_dir(), dir.path());
    /// # Ok(()) }
    /// ```
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// How many actors may be open at once: the configured bound, rounded down to a multiple
    /// of the shard count (each shard keeps an equal share).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use burrow_runtime::{Options, Runtime};
    /// let runtime = Runtime::open(Options::new(dir.path()).shards(2).max_resident(11))?;
    /// assert_eq!(runtime.max_resident(), 10); // five per shard
    /// # Ok(()) }
    /// ```
    pub fn max_resident(&self) -> usize {
        self.inner.max_resident
    }

    /// What an acknowledged write survives, as configured.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use burrow_runtime::{Durability, Options, Runtime};
    /// let runtime = Runtime::open(Options::new(dir.path()).durability(Durability::Machine))?;
    /// assert_eq!(runtime.durability(), Durability::Machine);
    /// # Ok(()) }
    /// ```
    pub fn durability(&self) -> crate::durability::Durability {
        self.inner.durability
    }

    /// The number of shard threads.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use burrow_runtime::{Options, Runtime};
    /// let runtime = Runtime::open(Options::new(dir.path()).shards(3))?;
    /// assert_eq!(runtime.shards(), 3);
    /// # Ok(()) }
    /// ```
    pub fn shards(&self) -> usize {
        self.inner.dispatcher.shard_count()
    }

    /// Closes every resident actor that is idle now (their files are closed and, in a cluster,
    /// their claims released); actors in a turn are left alone. Returns how many were closed.
    /// For a node of a cluster that lost its lease: the actors it held may be claimed by
    /// others, and must be activated (claimed) again before they serve here.
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
    /// lamps.get_by_name("hall").call(Touch).await?;
    /// assert_eq!(runtime.close_idle().await, 2);
    /// assert_eq!(runtime.close_idle().await, 0);
    /// # runtime.shutdown(Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn close_idle(&self) -> usize {
        let mut pending = Vec::new();
        for shard in self.inner.dispatcher.inboxes() {
            let (done, closed) = oneshot::channel();
            let task: crate::shard::AdminTask = Box::new(move |shard| {
                let _ = done.send(shard.close_idle());
            });
            if shard.send(ShardMsg::Admin(task)).is_ok() {
                pending.push(closed);
            }
        }
        let mut total = 0;
        for closed in pending {
            total += closed.await.unwrap_or(0);
        }
        total
    }

    /// Whether the runtime accepts work now: it is not shutting down, and every shard thread
    /// picks up a message within `within` (a shard stuck on a slow disk, or saturated, would
    /// hold every call routed to it). The error says which shards were late.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use burrow_runtime::{Options, Runtime};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let runtime = Runtime::open(Options::new(dir.path()))?;
    /// assert_eq!(runtime.ready(Duration::from_secs(1)).await, Ok(()));
    /// runtime.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!(runtime.ready(Duration::from_secs(1)).await, Err("shutting down".to_owned()));
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self, within: Duration) -> Result<(), String> {
        if self.inner.dispatcher.is_closing() {
            return Err("shutting down".to_owned());
        }
        let mut pending = Vec::new();
        for (index, shard) in self.inner.dispatcher.inboxes().iter().enumerate() {
            let (done, answered) = oneshot::channel();
            let task: crate::shard::AdminTask = Box::new(move |_| {
                let _ = done.send(());
            });
            if shard.send(ShardMsg::Admin(task)).is_err() {
                return Err(format!("shard {index} has stopped"));
            }
            pending.push((index, answered));
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut late = Vec::new();
        for (index, answered) in pending {
            match tokio::time::timeout_at(deadline, answered).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(format!("shard {index} has stopped")),
                Err(_) => late.push(index.to_string()),
            }
        }
        if late.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "shard(s) {} did not answer within {} ms",
                late.join(", "),
                within.as_millis()
            ))
        }
    }

    /// Stops taking requests (new calls fail with [`ErrorKind::ShuttingDown`](crate::ErrorKind::ShuttingDown), which is
    /// retryable), lets turns in flight and requests already queued finish for up to `grace`,
    /// then closes every actor's file, commits the catalog and stops the shard threads.
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
    /// let report = runtime.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!((report.closed, report.abandoned), (1, 0));
    /// let after = runtime.namespace("door", |_| A)?.get_by_name("front").call(Touch).await;
    /// assert!(after.unwrap_err().is_retryable()); // ShuttingDown: try another host
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.inner.dispatcher.close();
        self.inner.scheduler.stop();
        #[cfg(feature = "replicated")]
        if let Some(orphans) = &self.inner.orphans {
            orphans.stop();
        }
        let deadline = Instant::now() + grace;
        let mut pending = Vec::new();
        for shard in self.inner.dispatcher.inboxes() {
            let (done, report) = oneshot::channel();
            if shard.send(ShardMsg::Shutdown { deadline, done }).is_ok() {
                pending.push(report);
            }
        }
        let mut total = ShutdownReport::default();
        for report in pending {
            if let Ok(report) = report.await {
                total += report;
            }
        }
        let threads = std::mem::take(&mut *self.inner.threads.lock().expect("not poisoned"));
        for thread in threads {
            // Each shard has answered and is returning; joining takes moments.
            let _ = thread.join();
        }
        // Last-active times recorded as the actors closed.
        self.inner.catalog.close();
        // Every file is closed: another runtime may have the directory now.
        drop(self.inner.lock.lock().expect("not poisoned").take());
        total
    }
}
