//! How a runtime is configured.

use std::path::PathBuf;
use std::sync::Arc;

use crate::alarm::AlarmPolicy;
use crate::clock::Clock;
use crate::durability::Durability;
use crate::hook::CommitHook;
use crate::turn_log::{SnapshotPolicy, TurnLog};

/// A runtime's settings. Build with [`Options::new`] and the setters.
///
/// ```
/// use std::time::Duration;
/// use burrow_runtime::{Durability, Options};
/// let options = Options::new("/var/lib/burrow")
///     .durability(Durability::Machine)
///     .shards(4)
///     .max_resident(10_000)
///     .idle_timeout(Duration::from_secs(60));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) shards: usize,
    pub(crate) durability: Durability,
    pub(crate) max_resident: usize,
    /// Real time an activation waits for a free slot before going over `max_resident`.
    pub(crate) overflow_after: std::time::Duration,
    pub(crate) mailbox_capacity: usize,
    /// `None`: the durability mode's default (see [`Options::max_turns_per_commit`]).
    pub(crate) max_turns_per_commit: Option<usize>,
    pub(crate) checkpoint_above: u64,
    pub(crate) spin_before_park: std::time::Duration,
    pub(crate) idle_timeout: std::time::Duration,
    pub(crate) alarm_policy: AlarmPolicy,
    pub(crate) commit_hook: Option<Arc<dyn CommitHook>>,
    pub(crate) turn_log: Option<Arc<dyn TurnLog>>,
    pub(crate) append_timeout: std::time::Duration,
    pub(crate) snapshots: SnapshotPolicy,
    pub(crate) clock: Clock,
    pub(crate) random_seed: Option<u64>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("data_dir", &self.data_dir)
            .field("shards", &self.shards)
            .field("durability", &self.durability)
            .field("max_resident", &self.max_resident)
            .field("overflow_after", &self.overflow_after)
            .field("mailbox_capacity", &self.mailbox_capacity)
            .field("max_turns_per_commit", &self.turns_per_commit())
            .field("checkpoint_above", &self.checkpoint_above)
            .field("spin_before_park", &self.spin_before_park)
            .field("idle_timeout", &self.idle_timeout)
            .field("alarm_policy", &self.alarm_policy)
            .field("commit_hook", &self.commit_hook.is_some())
            .field("turn_log", &self.turn_log.is_some())
            .field("append_timeout", &self.append_timeout)
            .field("snapshots", &self.snapshots)
            .field("clock", &self.clock)
            .field("random_seed", &self.random_seed)
            .finish()
    }
}

/// See [`Options::append_timeout`].
const DEFAULT_APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// See [`Options::checkpoint_above`].
const DEFAULT_CHECKPOINT_ABOVE: u64 = 64 * 1024;

/// Descriptors one resident actor holds: the database and its WAL (exclusive locking mode
/// needs no -shm file).
pub(crate) const FDS_PER_ACTOR: u64 = 2;

impl Options {
    /// Defaults for a runtime keeping its files under `data_dir`: one shard per available core,
    /// [`Durability::Process`], and a residency bound derived from the open-file limit.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("/var/lib/my-app/actors"); // defaults for everything else
    /// # let _ = options;
    /// ```
    pub fn new(data_dir: impl Into<PathBuf>) -> Options {
        Options {
            data_dir: data_dir.into(),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            durability: Durability::default(),
            max_resident: default_max_resident(),
            overflow_after: std::time::Duration::from_secs(1),
            mailbox_capacity: 1024,
            max_turns_per_commit: None,
            checkpoint_above: DEFAULT_CHECKPOINT_ABOVE,
            spin_before_park: std::time::Duration::from_micros(50),
            idle_timeout: std::time::Duration::from_secs(30),
            alarm_policy: AlarmPolicy::default(),
            commit_hook: None,
            turn_log: None,
            append_timeout: DEFAULT_APPEND_TIMEOUT,
            snapshots: SnapshotPolicy::default(),
            clock: Clock::system(),
            random_seed: None,
        }
    }

    /// The number of shard threads (at least 1).
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").shards(4); // four threads; 0 would mean 1
    /// # let _ = options;
    /// ```
    pub fn shards(mut self, shards: usize) -> Options {
        self.shards = shards.max(1);
        self
    }

    /// What acknowledged writes survive.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// use burrow_runtime::Durability;
    /// let options = Options::new("data").durability(Durability::Machine); // survives power loss
    /// # let _ = options;
    /// ```
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// The log that [`Durability::Replicated`] appends every commit to (required in that mode,
    /// unused in the others). `burrow-log-postgres` provides one on PostgreSQL.
    ///
    /// ```no_run
    /// # async fn demo(log: std::sync::Arc<dyn burrow_runtime::turn_log::TurnLog>) {
    /// use burrow_runtime::{Durability, Options};
    /// let options = Options::new("data").durability(Durability::Replicated).turn_log(log);
    /// # let _ = options;
    /// # }
    /// ```
    pub fn turn_log(mut self, log: Arc<dyn TurnLog>) -> Options {
        self.turn_log = Some(log);
        self
    }

    /// How long a commit waits for the log to take its entry (default 5 s). A commit whose
    /// append times out fails with a retryable error, and the actor is deactivated: the entry
    /// may have landed, and the next activation finds out from the log.
    ///
    /// ```
    /// use std::time::Duration;
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").append_timeout(Duration::from_secs(2));
    /// # let _ = options;
    /// ```
    pub fn append_timeout(mut self, timeout: std::time::Duration) -> Options {
        self.append_timeout = timeout.max(std::time::Duration::from_millis(1));
        self
    }

    /// In replicated mode, a commit ships a full image of the actor instead of its patchset
    /// once `entries` patchsets or `bytes` of them have been appended since the latest image
    /// (defaults: 1,000 entries, 8 MiB), so that rebuilding an actor replays a bounded part of
    /// its log. Each is at least 1.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").snapshot_every(500, 4 * 1024 * 1024);
    /// # let _ = options;
    /// ```
    pub fn snapshot_every(mut self, entries: u64, bytes: u64) -> Options {
        self.snapshots.every_entries = entries.max(1);
        self.snapshots.every_bytes = bytes.max(1);
        self
    }

    /// The largest image of an actor replicated mode writes (default 64 MiB). A commit that
    /// needs one (a schema change, an actor's first entry) fails with `InvalidInput` naming
    /// the actor when its image is larger — never truncated; a periodic image over the limit
    /// is skipped (its patchset ships instead).
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").max_image_bytes(16 * 1024 * 1024);
    /// # let _ = options;
    /// ```
    pub fn max_image_bytes(mut self, bytes: u64) -> Options {
        self.snapshots.max_image_bytes = bytes;
        self
    }

    /// How many actors may be open at once (at least one per shard). Beyond it, the least
    /// recently used idle actors are closed. Each shard keeps at most `max_resident / shards`
    /// open: when all of them are busy, an activation waits for one to fall idle. After
    /// [`overflow_after`](Options::overflow_after) of waiting it goes over the bound instead (a
    /// turn may be waiting on the very actor that cannot be activated), and the excess is
    /// closed as soon as actors fall idle.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").shards(2).max_resident(10_000); // 5,000 per shard
    /// # let _ = options;
    /// ```
    pub fn max_resident(mut self, max_resident: usize) -> Options {
        self.max_resident = max_resident.max(1);
        self
    }

    /// How long an activation waits for a free slot, when every resident actor of its shard
    /// is busy, before it is activated beyond [`max_resident`](Options::max_resident) (default
    /// 1 s; at least 1 ms). Real time, whatever the runtime's [clock](Options::clock) says: it
    /// bounds how long actors that call each other can wait on one another for a slot. Longer
    /// keeps the bound (and the open files) stricter under bursts of slow turns; shorter keeps
    /// such calls' latency lower.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// use std::time::Duration;
    /// let options = Options::new("data").max_resident(100).overflow_after(Duration::from_secs(5));
    /// # let _ = options;
    /// ```
    pub fn overflow_after(mut self, wait: std::time::Duration) -> Options {
        self.overflow_after = wait.max(std::time::Duration::from_millis(1));
        self
    }

    /// How long an actor with nothing to do (no turn, no queued request, no background work)
    /// stays open. Default 30 s.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// use std::time::Duration;
    /// let options = Options::new("data").idle_timeout(Duration::from_secs(120));
    /// # let _ = options;
    /// ```
    pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Options {
        self.idle_timeout = timeout;
        self
    }

    /// How failed alarm handlers are retried (see [`AlarmPolicy`]).
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// use std::time::Duration;
    /// use burrow_runtime::alarm::AlarmPolicy;
    /// let patient = AlarmPolicy { max_attempts: 20, max_delay: Duration::from_secs(3600), ..AlarmPolicy::default() };
    /// let options = Options::new("data").alarm_policy(patient);
    /// # let _ = options;
    /// ```
    pub fn alarm_policy(mut self, policy: AlarmPolicy) -> Options {
        self.alarm_policy = policy;
        self
    }

    /// How many requests may wait for one actor (at least 1; default 1,024). A request beyond
    /// it fails at once with [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded).
    ///
    /// The bound counts requests (calls and alarm deliveries) that have not started their turn.
    /// A request leaves the mailbox, and frees its place, when its turn starts — also when it
    /// joins a group sharing one commit (see [`max_turns_per_commit`](Options::max_turns_per_commit)),
    /// not when its reply leaves. So at most `mailbox_capacity + max_turns_per_commit` calls
    /// to one actor are accepted and unanswered at once: a group of up to
    /// `max_turns_per_commit` run and waiting for its commit, and a full mailbox behind it. The
    /// same bound applies to requests held while the actor waits to be activated or for its
    /// file's checkpoint.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").mailbox_capacity(64); // the 65th waiting caller is told Overloaded
    /// # let _ = options;
    /// ```
    pub fn mailbox_capacity(mut self, capacity: usize) -> Options {
        self.mailbox_capacity = capacity.max(1);
        self
    }

    /// How many queued turns of one actor may share one commit (at least 1; default 64, and 256
    /// in [`Durability::Replicated`], where a commit waits for a round trip to the log: with
    /// 256 callers on one actor, 256 gave 2.6× the rate of 64 — see `docs/PERFORMANCE.md`).
    ///
    /// When requests wait in an actor's mailbox, the runtime runs them one after another in
    /// one transaction, each inside its own savepoint, commits once, and only then releases
    /// their replies: one `fsync` (in [`Durability::Machine`]) and one commit hook call for the
    /// group instead of one per turn. A turn that fails is rolled back alone (the turns before
    /// it commit) and, as always, the actor instance is discarded. A group also ends at an
    /// alarm and after a handler that awaited something (a call to another actor, a timer),
    /// so that the replies of the turns before it are not held while it waits. Each turn still
    /// sees the writes of the turns before it; 1 turns grouping off.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").max_turns_per_commit(1); // one commit per turn
    /// # let _ = options;
    /// ```
    pub fn max_turns_per_commit(mut self, turns: usize) -> Options {
        self.max_turns_per_commit = Some(turns.max(1));
        self
    }

    /// The turns per commit in effect: as set, or the durability mode's default.
    pub(crate) fn turns_per_commit(&self) -> usize {
        self.max_turns_per_commit.unwrap_or(match self.durability {
            Durability::Replicated => 256,
            Durability::Process | Durability::Machine => 64,
        })
    }

    /// The WAL size (bytes) above which an actor's file is checkpointed when it is evicted
    /// (default 64 KiB, about 16 turns that each change one page; 0 checkpoints every WAL).
    ///
    /// Closing an actor skips the checkpoint, which keeps eviction cheap but lets the WAL grow:
    /// it costs disk, and every activation re-reads it. Past this size the WAL is copied into
    /// the database and truncated as the actor closes, on a blocking thread (the checkpoint
    /// syncs), while requests for that actor wait for it. Shutdown does the same for the actors
    /// it closes while its grace period lasts, and waits for every checkpoint it started; a
    /// crash leaves WALs to be replayed at the next open. Actors closed for admin work (delete,
    /// export) are not checkpointed.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").checkpoint_above(0); // smallest files, a sync per eviction
    /// # let _ = options;
    /// ```
    pub fn checkpoint_above(mut self, bytes: u64) -> Options {
        self.checkpoint_above = bytes;
        self
    }

    /// How long a shard keeps polling for work once it has none, before it parks its thread
    /// (default 50 µs; zero parks at once).
    ///
    /// A caller that sends its next request as soon as a reply arrives then finds the shard
    /// awake instead of waking it, which costs more than the turn itself on a busy machine:
    /// with one caller looping on one actor this tripled the calls per second (PERFORMANCE.md).
    /// The price is up to this much CPU after each burst of work, on each shard.
    ///
    /// ```
    /// use std::time::Duration;
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").spin_before_park(Duration::ZERO); // never spin
    /// # let _ = options;
    /// ```
    pub fn spin_before_park(mut self, spin: std::time::Duration) -> Options {
        self.spin_before_park = spin;
        self
    }

    /// An async hook awaited after each local commit and before its reply is released
    /// (the seam for replication). None by default, which costs nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use burrow_runtime::Options;
    /// use burrow_runtime::hook::{CommitHook, CommitInfo, HookFuture};
    /// struct Replicate;
    /// impl CommitHook for Replicate {
    ///     fn committed(&self, _: CommitInfo) -> HookFuture {
    ///         Box::pin(async { Ok(()) }) // ship the commit somewhere, then acknowledge
    ///     }
    /// }
    /// let options = Options::new("data").commit_hook(Arc::new(Replicate));
    /// # let _ = options;
    /// ```
    pub fn commit_hook(mut self, hook: Arc<dyn CommitHook>) -> Options {
        self.commit_hook = Some(hook);
        self
    }

    /// Where the runtime reads time (default: the system's). A
    /// [`ManualClock`](crate::clock::ManualClock) lets a test move time by hand: alarms come
    /// due, retries come round and actors fall idle when it is moved.
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// use std::time::UNIX_EPOCH;
    /// use burrow_runtime::clock::ManualClock;
    /// let time = ManualClock::new(UNIX_EPOCH);
    /// let options = Options::new("data").clock(time.clock());
    /// # let _ = options;
    /// ```
    pub fn clock(mut self, clock: Clock) -> Options {
        self.clock = clock;
        self
    }

    /// Seeds the jitter of alarm retries, so that a run's backoff delays can be reproduced
    /// (default: the operating system's randomness).
    ///
    /// ```
    /// use burrow_runtime::Options;
    /// let options = Options::new("data").random_seed(42); // the same retry delays every run
    /// # let _ = options;
    /// ```
    pub fn random_seed(mut self, seed: u64) -> Options {
        self.random_seed = Some(seed);
        self
    }

    /// The most file descriptors the runtime's open actors hold at once (`max_resident` ×
    /// descriptors per actor). A host sizing its own limits, such as how many client
    /// connections to accept, leaves these to the runtime.
    ///
    /// ```
    /// let options = burrow_runtime::Options::new("/tmp/burrow-doc-budget").max_resident(1_000);
    /// assert_eq!(options.descriptor_budget(), 2_000);
    /// ```
    pub fn descriptor_budget(&self) -> u64 {
        self.max_resident as u64 * FDS_PER_ACTOR
    }

    pub(crate) fn per_shard_resident(&self) -> usize {
        (self.max_resident / self.shards).max(1)
    }
}

/// Half of what the open-file limit leaves after a reserve for the host (sockets, logs,
/// Postgres connections): 20,000 descriptors give 9,000 resident actors.
fn default_max_resident() -> usize {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let reserve = (limit / 10).max(256);
    (limit.saturating_sub(reserve) / FDS_PER_ACTOR).max(16) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_per_commit_default_follows_the_mode_unless_set() {
        let replicated = Options::new("d").durability(Durability::Replicated);
        assert_eq!(replicated.turns_per_commit(), 256);
        assert_eq!(Options::new("d").turns_per_commit(), 64);
        assert_eq!(
            Options::new("d")
                .durability(Durability::Machine)
                .turns_per_commit(),
            64
        );
        // Set before or after the mode, the setting wins.
        assert_eq!(replicated.max_turns_per_commit(8).turns_per_commit(), 8);
        assert_eq!(
            Options::new("d")
                .max_turns_per_commit(1)
                .durability(Durability::Replicated)
                .turns_per_commit(),
            1
        );
    }
}
