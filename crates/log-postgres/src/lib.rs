//! The replicated turn log of Burrow's actors in PostgreSQL: the [`TurnLog`] that
//! `Durability::Replicated` appends every committed turn to before its reply leaves.
//!
//! Two tables (`migrations/log-postgres`, applied by [`PgTurnLog::connect`] through refinery
//! with a history table of their own, `burrow_log_schema_history`):
//!
//! - `burrow_log_actor`: one row per actor ever claimed, with its **epoch** and the log's head.
//!   A claim is one upsert that increments the epoch and returns the head. The row is never
//!   deleted, so epochs never repeat.
//! - `burrow_log_entry`: the entries, keyed by (namespace, actor id, seq).
//!
//! Beside the log, [`membership`] keeps the nodes of a cluster (`burrow_node`): each node's
//! incarnation and its lease, judged by PostgreSQL's clock.
//!
//! An append is one statement: a conditional `UPDATE` of the actor's head (only where the epoch
//! and the head are still the writer's) feeding the `INSERT` of the entries. Both happen or
//! neither, and a stale writer — one whose actor was claimed again since — changes nothing and
//! gets [`LogError::Fenced`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use burrow_log_postgres::PgTurnLog;
//! use burrow_runtime::ActorId;
//! use burrow_runtime::turn_log::{AlarmUpdate, Entry, LogKey, Payload, TurnLog};
//!
//! let log = PgTurnLog::connect("postgres://burrow@127.0.0.1/burrow", Duration::from_secs(5)).await?;
//! let key = LogKey { namespace: "counter".into(), id: ActorId::for_name("counter", "alice") };
//! let claim = log.claim(&key, Some("alice")).await?;
//! let entry = Entry::after(claim.head, claim.epoch, Payload::Patchset(vec![]));
//! let alarms = AlarmUpdate::Unchanged;
//! let head = log.append(&key, claim.epoch, claim.head, std::slice::from_ref(&entry), &alarms).await?;
//! assert_eq!(head, entry.position());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use burrow_runtime::turn_log::{
    AlarmUpdate, Claim, Entry, Incident, LogError, LogFuture, LogKey, LoggedActor, OrphanedAlarm,
    Position, TurnLog,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod batch;
mod claims;
mod faults;
pub mod machines;
pub mod membership;
pub mod notify;
mod placement;
mod statements;
mod telemetry;
pub mod views;

pub use telemetry::describe_metrics;

mod embedded {
    refinery::embed_migrations!("../../migrations/log-postgres");
}

/// The refinery history table of the log's migrations, apart from the registry's (refinery
/// stops on applied migrations it does not know, and the two sets share a database).
pub const HISTORY_TABLE: &str = "burrow_log_schema_history";

/// The advisory lock key that serialises the log's migrations ("burrowlg").
const MIGRATION_LOCK: i64 = 0x6275_7272_6f77_6c67;

/// The log's migrations, with their own history table.
pub fn migrations() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    runner
}

/// What the log holds (see [`PgTurnLog::usage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogUsage {
    /// Per actor namespace, in name order.
    pub namespaces: Vec<NamespaceUsage>,
    /// The age of the oldest entry.
    pub oldest_entry: Duration,
}

/// One namespace's share of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// The actor namespace.
    pub namespace: String,
    /// Its entries.
    pub entries: u64,
    /// Their payloads' bytes.
    pub bytes: u64,
    /// How many of them are images.
    pub images: u64,
}

impl LogUsage {
    /// Sets the log's gauges from these figures.
    pub fn publish(&self) {
        for n in &self.namespaces {
            let ns = n.namespace.clone();
            metrics::gauge!("burrow_log_entries", "namespace" => ns.clone()).set(n.entries as f64);
            metrics::gauge!("burrow_log_bytes", "namespace" => ns.clone()).set(n.bytes as f64);
            metrics::gauge!("burrow_log_images", "namespace" => ns).set(n.images as f64);
        }
        metrics::gauge!("burrow_log_oldest_entry_seconds").set(self.oldest_entry.as_secs_f64());
    }
}

/// The default bound on each log operation, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The turn log in PostgreSQL. Cheap to clone: connections come from a pool.
///
/// Every operation answers within the timeout given to [`connect`](PgTurnLog::connect). An
/// operation that fails before its statement is sent is [`LogError::Unavailable`]; one whose
/// answer is lost after it was sent (a timeout, a dropped connection) is
/// [`LogError::Indeterminate`], because it may have committed.
#[derive(Clone)]
pub struct PgTurnLog {
    pool: Pool,
    timeout: Duration,
    /// The runtime that [`connect`](PgTurnLog::connect) ran on. Every operation runs there, so
    /// that connections (whose I/O tasks live where they were opened) never belong to a shard
    /// thread's executor, which stops with its shard.
    home: tokio::runtime::Handle,
    /// Where appends and claims wait to share a statement with other actors' (see `batch.rs`).
    batcher: Option<tokio::sync::mpsc::UnboundedSender<batch::Pending>>,
    /// Grouped append statements and the appends they carried, then grouped claim statements
    /// and the claims they carried.
    batches: std::sync::Arc<[std::sync::atomic::AtomicU64; 4]>,
    /// In a cluster, the node this log claims actors for (see [`PgTurnLog::for_member`]); its
    /// incarnation changes when the node joins again after losing its lease.
    node: Option<std::sync::Arc<std::sync::RwLock<placement::NodeRef>>>,
    /// How to open a connection of its own (a listener's), outside the pool.
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PgTurnLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTurnLog")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PgTurnLog {
    /// Connects to PostgreSQL at `url` (a `postgres://` URL or key–value string), applies the
    /// log's migrations, and bounds every later operation by `timeout`.
    ///
    /// Sessions get a `lock_timeout` of `timeout` (a claim waits for a row lock no longer than
    /// that) and an `idle_in_transaction_session_timeout` of twice it (a paused process cannot
    /// hold a row lock for long).
    pub async fn connect(url: &str, timeout: Duration) -> Result<PgTurnLog, LogError> {
        PgTurnLog::connect_with_limits(url, timeout, timeout, timeout * 2).await
    }

    /// [`connect`](PgTurnLog::connect) for a node of a cluster with a lease of `lease`: a
    /// session's `lock_timeout` and `idle_in_transaction_session_timeout` are also at most half
    /// the lease, so that a node paused in a transaction holds its row locks for no longer than
    /// that (another node's claim waits on them).
    pub async fn connect_for_node(
        url: &str,
        timeout: Duration,
        lease: Duration,
    ) -> Result<PgTurnLog, LogError> {
        let half = lease / 2;
        PgTurnLog::connect_with_limits(url, timeout, timeout.min(half), (timeout * 2).min(half))
            .await
    }

    async fn connect_with_limits(
        url: &str,
        timeout: Duration,
        lock_timeout: Duration,
        idle_in_transaction: Duration,
    ) -> Result<PgTurnLog, LogError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| LogError::Unavailable(format!("the log's database URL: {e}")))?;
        config.connect_timeout(timeout);
        config.options(format!(
            "-c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            lock_timeout.as_millis().max(1),
            idle_in_transaction.as_millis().max(1)
        ));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        let mut log = PgTurnLog {
            pool,
            timeout,
            home: tokio::runtime::Handle::current(),
            batcher: None,
            batches: std::sync::Arc::default(),
            node: None,
            config,
        };
        log.bounded(async {
            let mut client = log.client().await?;
            let client: &mut tokio_postgres::Client = &mut client;
            // Nodes of a cluster start together: refinery's `CREATE TABLE IF NOT EXISTS` races
            // with itself, so one migrates at a time (the lock is the session's, freed with it).
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(|e| LogError::Unavailable(format!("migrating the log: {e}")))?;
            let migrated = migrations().run_async(client).await;
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await;
            migrated
                .map(drop)
                .map_err(|e| LogError::Unavailable(format!("migrating the log: {e}")))
        })
        .await?;
        log.batcher = Some(batch::start(log.clone()));
        Ok(log)
    }

    /// Runs one operation within the timeout; a timeout is indeterminate (the statement may
    /// have been sent and committed).
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, LogError>>,
    ) -> Result<T, LogError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| LogError::Indeterminate(format!("no answer within {:?}", self.timeout)))?
    }

    /// This log, claiming actors for `member`'s incarnation: a claim succeeds only while the
    /// member's lease runs and no other live node holds the actor ([`LogError::Owned`] names
    /// the holder), and eviction releases the claim. Appends are fenced as always.
    pub fn for_member(&self, member: &membership::Member) -> PgTurnLog {
        PgTurnLog {
            node: Some(std::sync::Arc::new(std::sync::RwLock::new(
                placement::NodeRef {
                    node_id: member.node_id().to_owned(),
                    incarnation: member.incarnation() as i64,
                },
            ))),
            ..self.clone()
        }
    }

    /// The node (and incarnation) claims are made for now, if any.
    fn current_node(&self) -> Option<placement::NodeRef> {
        self.node
            .as_ref()
            .map(|n| n.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Moves this log's claims (and those of its clones) to `member`'s incarnation of the same
    /// node, after the node joined again ([`membership::Node`] does this by itself).
    pub fn rebind(&self, member: &membership::Member) {
        if let Some(node) = &self.node {
            let mut node = node.write().unwrap_or_else(|e| e.into_inner());
            node.incarnation = member.incarnation() as i64;
        }
    }

    /// How many grouped statements have appended how many actors' entries since connecting:
    /// `(statements, appends)`. Appends waiting at the same moment share one statement.
    pub fn grouping(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.batches[0].load(Relaxed), self.batches[1].load(Relaxed))
    }

    /// How many grouped statements have claimed how many actors since connecting:
    /// `(statements, claims)`. Claims waiting at the same moment share one statement.
    pub fn claim_grouping(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.batches[2].load(Relaxed), self.batches[3].load(Relaxed))
    }

    /// Deletes entries no longer needed to rebuild any actor at any point of the last
    /// `retention`: for each actor, everything before its latest image taken at or before
    /// `now - retention` (by PostgreSQL's clock). Returns how many entries went. Safe to run
    /// from several hosts at once: one of them does the work.
    pub async fn compact(&self, retention: Duration) -> Result<u64, LogError> {
        let log = self.clone();
        self.at_home(async move { statements::compact(&log, retention).await })
            .await
    }

    /// What the log holds: per actor namespace, its entries, their bytes and how many are
    /// images; and the age of the oldest entry (which compaction keeps near the retention
    /// window, so the difference is its lag).
    pub async fn usage(&self) -> Result<LogUsage, LogError> {
        let log = self.clone();
        let (namespaces, oldest) = self
            .at_home(async move { statements::usage(&log).await })
            .await?;
        Ok(LogUsage {
            namespaces: namespaces
                .into_iter()
                .map(|(namespace, entries, bytes, images)| NamespaceUsage {
                    namespace,
                    entries: entries.max(0) as u64,
                    bytes: bytes.max(0) as u64,
                    images: images.max(0) as u64,
                })
                .collect(),
            oldest_entry: Duration::from_secs_f64(oldest.max(0.0)),
        })
    }

    /// Runs [`compact`](PgTurnLog::compact) every `every` until the returned task is
    /// aborted, then publishes [`usage`](PgTurnLog::usage) as gauges
    /// (`burrow_log_entries`, `burrow_log_bytes`, `burrow_log_images` per namespace,
    /// `burrow_log_oldest_entry_seconds`); failures are logged and retried at the next round.
    pub fn spawn_compactor(
        &self,
        retention: Duration,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        self.home.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match log.compact(retention).await {
                    Ok(0) => {}
                    Ok(n) => {
                        metrics::counter!("burrow_log_compacted_entries_total").increment(n);
                        tracing::info!(entries = n, "compacted the replicated log");
                    }
                    Err(e) => tracing::warn!("compacting the replicated log: {e}"),
                }
                match log.usage().await {
                    Ok(usage) => usage.publish(),
                    Err(e) => tracing::warn!("measuring the replicated log: {e}"),
                }
            }
        })
    }

    /// Runs `op` on the home runtime, within the timeout.
    async fn at_home<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        let task = self.home.spawn(op);
        self.bounded(async {
            task.await.unwrap_or_else(|e| {
                Err(LogError::Indeterminate(format!(
                    "the log's task failed: {e}"
                )))
            })
        })
        .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, LogError> {
        self.pool
            .get()
            .await
            .map_err(|e| LogError::Unavailable(format!("no connection to the log: {e}")))
    }
}

/// Classifies an error from a statement that was sent: a database error means the statement
/// failed as a whole (nothing committed); anything else (the connection dropped) leaves the
/// outcome unknown.
fn sent(e: tokio_postgres::Error) -> LogError {
    match e.as_db_error() {
        Some(db) => LogError::Unavailable(format!("{}: {}", db.code().code(), db.message())),
        None => LogError::Indeterminate(e.to_string()),
    }
}

/// Classifies an error from a read: nothing was written either way.
fn read(e: tokio_postgres::Error) -> LogError {
    LogError::Unavailable(e.to_string())
}

impl TurnLog for PgTurnLog {
    fn claim<'a>(&'a self, key: &'a LogKey, name: Option<&'a str>) -> LogFuture<'a, Claim> {
        let (log, key, name) = (self.clone(), key.clone(), name.map(str::to_owned));
        if let Some(node) = self.current_node() {
            return Box::pin(self.at_home(async move {
                placement::claim(&log, &node, &key, name.as_deref()).await
            }));
        }
        if let Some(batcher) = &self.batcher {
            let batcher = batcher.clone();
            return Box::pin(self.bounded(async move {
                let (reply, answer) = tokio::sync::oneshot::channel();
                batcher
                    .send(batch::Pending::Claim(claims::Request { key, name, reply }))
                    .map_err(|_| LogError::Unavailable("the log's batcher stopped".into()))?;
                answer.await.unwrap_or_else(|_| {
                    Err(LogError::Indeterminate(
                        "the log's batcher dropped the claim".into(),
                    ))
                })
            }));
        }
        Box::pin(self.at_home(async move { statements::claim(&log, &key, name.as_deref()).await }))
    }

    fn append<'a>(
        &'a self,
        key: &'a LogKey,
        epoch: u64,
        expected: Position,
        entries: &'a [Entry],
        alarms: &'a AlarmUpdate,
    ) -> LogFuture<'a, Position> {
        let (log, key, entries, alarms) =
            (self.clone(), key.clone(), entries.to_vec(), alarms.clone());
        // Most appends (no alarm changed) share a statement with other actors' appends.
        if let (Some(batcher), AlarmUpdate::Unchanged, false, false) = (
            &self.batcher,
            &alarms,
            entries.is_empty(),
            faults::unfenced_append(),
        ) {
            let batcher = batcher.clone();
            return Box::pin(self.bounded(async move {
                statements::check_chain(expected, &entries)?;
                let (reply, answer) = tokio::sync::oneshot::channel();
                batcher
                    .send(batch::Pending::Append(batch::Append {
                        key,
                        epoch,
                        expected,
                        entries,
                        reply,
                    }))
                    .map_err(|_| LogError::Unavailable("the log's batcher stopped".into()))?;
                answer.await.unwrap_or_else(|_| {
                    Err(LogError::Indeterminate(
                        "the log's batcher dropped the append".into(),
                    ))
                })
            }));
        }
        Box::pin(self.at_home(async move {
            statements::append(&log, &key, epoch, expected, &entries, &alarms).await
        }))
    }

    fn read<'a>(&'a self, key: &'a LogKey, from: u64, to: u64) -> LogFuture<'a, Vec<Entry>> {
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { statements::read_range(&log, &key, from, to).await }))
    }

    fn image_at<'a>(&'a self, key: &'a LogKey, seq: u64) -> LogFuture<'a, Option<Entry>> {
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { statements::image_at(&log, &key, seq).await }))
    }

    fn head<'a>(&'a self, key: &'a LogKey) -> LogFuture<'a, Option<(u64, Position)>> {
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { statements::head(&log, &key).await }))
    }

    fn seq_at<'a>(&'a self, key: &'a LogKey, at_ms: i64) -> LogFuture<'a, Option<u64>> {
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { statements::seq_at(&log, &key, at_ms).await }))
    }

    fn inventory(&self) -> LogFuture<'_, Vec<LoggedActor>> {
        let log = self.clone();
        Box::pin(self.at_home(async move { statements::inventory(&log).await }))
    }

    fn delete<'a>(&'a self, key: &'a LogKey) -> LogFuture<'a, ()> {
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { statements::delete(&log, &key).await }))
    }

    fn release<'a>(&'a self, key: &'a LogKey, epoch: u64) -> LogFuture<'a, ()> {
        let Some(node) = self.current_node() else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let (log, key) = (self.clone(), key.clone());
        Box::pin(self.at_home(async move { placement::release(&log, &node, &key, epoch).await }))
    }

    fn generation(&self) -> u64 {
        self.current_node().map_or(0, |n| n.incarnation as u64)
    }

    fn record_incident<'a>(&'a self, key: &'a LogKey, incident: &'a Incident) -> LogFuture<'a, ()> {
        let node = self.current_node().map(|n| n.node_id);
        let (log, key, incident) = (self.clone(), key.clone(), incident.clone());
        Box::pin(self.at_home(async move { views::record(&log, node, &key, &incident).await }))
    }

    fn orphaned_alarms(&self, due_by_ms: i64, limit: usize) -> LogFuture<'_, Vec<OrphanedAlarm>> {
        if self.current_node().is_none() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let log = self.clone();
        Box::pin(self.at_home(async move {
            log.bounded(placement::orphaned_alarms(&log, due_by_ms, limit))
                .await
        }))
    }
}
