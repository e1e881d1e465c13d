//! The runtime: shard threads, namespaces, and shutdown.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Actor, ActorInfo};
use crate::alarm::{Delivery, Scheduler};
use crate::catalog::{Catalog, CatalogStartup, Store};
use crate::error::{CallError, ErrorKind, RuntimeError};
use crate::id::ActorId;
use crate::namespace::ErasedNamespace;
use crate::namespace::{Namespace, NamespaceInner};
use crate::options::{Durability, Options};
use crate::shard::{ShardConfig, ShardMsg, run_shard};

/// A running Burrow runtime. Cheap to clone; every clone is the same runtime.
///
/// Open one per data directory (a lock file keeps a second one out), register a
/// [`Namespace`] per actor type, call actors through stubs, and [`shutdown`](Runtime::shutdown)
/// when done. Dropping every handle without a shutdown also stops the shards and closes the
/// files (turns in flight are rolled back), but waits for nothing.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.inner.data_dir)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

/// A registered namespace: its index and type-erased face.
struct Registered {
    index: u32,
    namespace: Arc<dyn ErasedNamespace>,
}

pub(crate) struct Inner {
    data_dir: PathBuf,
    durability: Durability,
    max_resident: usize,
    shards: Vec<mpsc::UnboundedSender<ShardMsg>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closing: AtomicBool,
    namespaces: Mutex<HashMap<String, Registered>>,
    scheduler: std::sync::OnceLock<Scheduler>,
    pub(crate) catalog: Arc<Store>,
    catalog_startup: CatalogStartup,
    /// Held from open to the end of shutdown.
    lock: Mutex<Option<Flock<File>>>,
}

/// What [`Runtime::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Actors closed after their last turn.
    pub closed: usize,
    /// Actors still in a turn at the deadline: those turns were rolled back and their callers
    /// got a retryable error.
    pub abandoned: usize,
}

/// Namespace names become folder names.
pub(crate) fn validate_namespace(name: &str) -> Result<(), RuntimeError> {
    let invalid = |reason| RuntimeError::InvalidNamespace {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("it must be 1 to 64 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "only lower-case ASCII letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

impl Runtime {
    /// Opens the runtime on `options`' data directory (creating it if needed) and starts its
    /// shard threads.
    pub fn open(options: Options) -> Result<Runtime, RuntimeError> {
        let data_dir = options.data_dir.clone();
        let dir_error = |source| RuntimeError::DataDir {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("actors")).map_err(dir_error)?;
        let lock_file = File::create(data_dir.join("LOCK")).map_err(dir_error)?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                RuntimeError::Locked {
                    path: data_dir.clone(),
                }
            } else {
                dir_error(e.into())
            }
        })?;

        let (catalog, catalog_startup) =
            Store::open(&data_dir, options.durability).map_err(|source| RuntimeError::Catalog {
                path: data_dir.join(crate::catalog::CATALOG_FILE),
                source,
            })?;
        let catalog = Arc::new(catalog);
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..options.shards)
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let inner = Arc::new(Inner {
            data_dir: data_dir.clone(),
            durability: options.durability,
            max_resident: options.per_shard_resident() * options.shards,
            shards: senders,
            threads: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            namespaces: Mutex::new(HashMap::new()),
            scheduler: std::sync::OnceLock::new(),
            catalog: catalog.clone(),
            catalog_startup,
            lock: Mutex::new(Some(lock)),
        });
        let scheduler = Scheduler::start(
            catalog.clone(),
            options.alarm_policy.clone(),
            Arc::downgrade(&inner),
        )
        .map_err(RuntimeError::Thread)?;
        let _ = inner.scheduler.set(scheduler);
        for (index, inbox) in inboxes.into_iter().enumerate() {
            let config = ShardConfig {
                runtime: Arc::downgrade(&inner),
                catalog: catalog.clone(),
                budget: options.per_shard_resident(),
                mailbox_capacity: options.mailbox_capacity,
                idle_timeout: options.idle_timeout,
                durability: options.durability,
                commit_hook: options.commit_hook.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("burrow-shard-{index}"))
                .spawn(move || run_shard(config, inbox))
                .map_err(RuntimeError::Thread)?;
            inner.threads.lock().expect("not poisoned").push(thread);
        }
        Ok(Runtime { inner })
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Runtime {
        Runtime { inner }
    }

    /// Registers the actor type `A` under `name` (lower-case letters, digits, `-`, `_`; it
    /// names a folder, so keep it stable). `factory` builds an actor when one is activated; it
    /// may capture shared dependencies.
    pub fn namespace<A: Actor>(
        &self,
        name: &str,
        factory: impl Fn(&ActorInfo) -> A + Send + Sync + 'static,
    ) -> Result<Namespace<A>, RuntimeError> {
        validate_namespace(name)?;
        let mut namespaces = self.inner.namespaces.lock().expect("not poisoned");
        if namespaces.contains_key(name) {
            return Err(RuntimeError::DuplicateNamespace {
                name: name.to_owned(),
            });
        }
        let index = namespaces.len() as u32;
        let dir = self.inner.data_dir.join("actors").join(name);
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::DataDir {
            path: dir.clone(),
            source,
        })?;
        if self.inner.durability == Durability::Machine {
            for d in [&dir, &self.inner.data_dir.join("actors")] {
                if let Some(parent) = d.parent() {
                    File::open(parent)
                        .and_then(|f| f.sync_all())
                        .map_err(|source| RuntimeError::DataDir {
                            path: parent.to_owned(),
                            source,
                        })?;
                }
            }
        }
        let inner = Arc::new(NamespaceInner::new(name, index, dir, Box::new(factory)));
        namespaces.insert(
            name.to_owned(),
            Registered {
                index,
                namespace: inner.clone(),
            },
        );
        drop(namespaces);
        // Alarms of this namespace may have been waiting for it.
        if let Some(scheduler) = self.inner.scheduler.get() {
            scheduler.sink().wake();
        }
        Ok(Namespace::new(inner, self.clone()))
    }

    /// The catalog of every actor in the data directory.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.clone())
    }

    /// What start-up found: whether the catalog was rebuilt, and how many actor files it had
    /// to add.
    pub fn catalog_startup(&self) -> CatalogStartup {
        self.inner.catalog_startup
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.inner.catalog
    }

    /// The index of a registered namespace.
    pub(crate) fn namespace_index(&self, name: &str) -> Option<u32> {
        self.inner
            .namespaces
            .lock()
            .expect("not poisoned")
            .get(name)
            .map(|r| r.index)
    }

    /// The type-erased face of a registered namespace.
    pub(crate) fn registered(&self, name: &str) -> Option<Arc<dyn ErasedNamespace>> {
        self.inner
            .namespaces
            .lock()
            .expect("not poisoned")
            .get(name)
            .map(|r| r.namespace.clone())
    }

    /// Sends an alarm delivery to the shard of its actor.
    pub(crate) fn deliver_alarm(
        &self,
        namespace: &Arc<dyn ErasedNamespace>,
        delivery: Delivery,
    ) -> Result<(), CallError> {
        let id = delivery.id;
        let envelope = namespace.alarm_envelope(delivery);
        self.send(
            id,
            ShardMsg::Deliver {
                namespace: namespace.clone(),
                id,
                name: None,
                envelope,
            },
        )
    }

    /// Runs `task` on the shard that owns `id`, between turns.
    pub(crate) fn on_shard(
        &self,
        id: ActorId,
        task: crate::shard::AdminTask,
    ) -> Result<(), CallError> {
        self.send(id, ShardMsg::Admin(task))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// How many actors may be open at once: the configured bound, rounded down to a multiple
    /// of the shard count (each shard keeps an equal share).
    pub fn max_resident(&self) -> usize {
        self.inner.max_resident
    }

    /// The number of shard threads.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    pub(crate) fn send(&self, id: ActorId, msg: ShardMsg) -> Result<(), CallError> {
        let shutting_down = || {
            CallError::new(
                ErrorKind::ShuttingDown,
                "the runtime is shutting down and takes no new requests",
            )
        };
        if self.is_closing() {
            return Err(shutting_down());
        }
        self.inner.shards[id.shard(self.inner.shards.len())]
            .send(msg)
            .map_err(|_| shutting_down())
    }

    /// Stops taking requests (new calls fail with [`ErrorKind::ShuttingDown`], which is
    /// retryable), lets turns in flight and requests already queued finish for up to `grace`,
    /// then closes every actor's file, commits the catalog and stops the shard threads.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.inner.closing.store(true, Ordering::Release);
        if let Some(scheduler) = self.inner.scheduler.get() {
            scheduler.stop();
        }
        let deadline = Instant::now() + grace;
        let mut pending = Vec::new();
        for shard in &self.inner.shards {
            let (done, report) = oneshot::channel();
            if shard.send(ShardMsg::Shutdown { deadline, done }).is_ok() {
                pending.push(report);
            }
        }
        let mut total = ShutdownReport::default();
        for report in pending {
            if let Ok(report) = report.await {
                total.closed += report.closed;
                total.abandoned += report.abandoned;
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
