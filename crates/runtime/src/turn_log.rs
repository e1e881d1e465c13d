//! The replicated log: where [`Durability::Replicated`](crate::Durability) keeps every
//! committed turn of every actor, off the machine that runs it.
//!
//! The runtime defines the log as the [`TurnLog`] trait and keeps no dependency on any store;
//! `burrow-log-postgres` implements it on PostgreSQL. The log of one actor is a hash chain of
//! [`Entry`]s numbered from 1, each a turn's SQLite session patchset or a full image of the
//! actor's file (a snapshot). Every write to it is *fenced*:
//!
//! - [`TurnLog::claim`] starts an activation: it increments the actor's **epoch** and returns
//!   it with the log's head, in one statement;
//! - [`TurnLog::append`] adds entries only if the actor's epoch is still the caller's and the
//!   head is still where the caller last saw it. A writer whose epoch was superseded (a newer
//!   activation claimed the actor) gets [`LogError::Fenced`] and acknowledges nothing.
//!
//! So two activations can never both acknowledge a turn for one actor: the epoch compare and
//! the write happen atomically inside the store that holds the truth.
//!
//! ```
//! use burrow_runtime::turn_log::{Entry, Payload, Position};
//!
//! let first = Entry::after(Position::GENESIS, 1, Payload::Image(b"an image".to_vec()));
//! let second = Entry::after(first.position(), 1, Payload::Patchset(b"a turn".to_vec()));
//! assert_eq!((first.seq, second.seq), (1, 2));
//! assert!(second.follows(first.position()));
//! // Each hash covers the one before it, so a chain cannot be spliced unnoticed.
//! let forged = Entry::after(Position::GENESIS, 1, Payload::Patchset(b"a turn".to_vec()));
//! assert_ne!(forged.hash, second.hash);
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ActorId;

/// A SHA-256 hash that chains an entry to the one before it.
pub type EntryHash = [u8; 32];

/// Where a turn's changes land in its actor's log if it commits
/// ([`Context::log_slot`](crate::Context::log_slot)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogSlot {
    /// The epoch of the activation's claim.
    pub epoch: u64,
    /// The sequence number the turn's entry takes.
    pub seq: u64,
}

/// A point in an actor's log: the sequence number of an entry and that entry's hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The entry's sequence number; 0 before the first entry.
    pub seq: u64,
    /// The entry's hash; all zeros before the first entry.
    pub hash: EntryHash,
}

impl Position {
    /// Before the first entry of every log.
    pub const GENESIS: Position = Position {
        seq: 0,
        hash: [0; 32],
    };
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@", self.seq)?;
        for byte in &self.hash[..6] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// What an entry holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// An SQLite session patchset: the rows one turn (or one commit of several turns) changed.
    Patchset(Vec<u8>),
    /// A full image of the actor's database after this entry (`sqlite3_serialize`): written
    /// when the log starts, and by every commit that changed the schema, which a patchset
    /// cannot carry.
    Image(Vec<u8>),
}

impl Payload {
    /// The payload's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Patchset(b) | Payload::Image(b) => b,
        }
    }

    /// Whether this is an image (a snapshot) rather than a patchset.
    pub fn is_image(&self) -> bool {
        matches!(self, Payload::Image(_))
    }

    fn tag(&self) -> u8 {
        match self {
            Payload::Patchset(_) => b'p',
            Payload::Image(_) => b'i',
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Patchset(b) => write!(f, "Patchset({} bytes)", b.len()),
            Payload::Image(b) => write!(f, "Image({} bytes)", b.len()),
        }
    }
}

/// One entry of an actor's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number, from 1.
    pub seq: u64,
    /// The epoch of the activation that wrote it.
    pub epoch: u64,
    /// `SHA-256(previous hash ‖ seq ‖ epoch ‖ kind ‖ payload)`.
    pub hash: EntryHash,
    /// What it holds.
    pub payload: Payload,
}

impl Entry {
    /// The entry that follows `previous`, written under `epoch`.
    pub fn after(previous: Position, epoch: u64, payload: Payload) -> Entry {
        let seq = previous.seq + 1;
        Entry {
            seq,
            epoch,
            hash: chain(&previous.hash, seq, epoch, &payload),
            payload,
        }
    }

    /// Where the log stands once this entry is in it.
    pub fn position(&self) -> Position {
        Position {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Whether this entry comes right after `previous` on the same chain (its hash checks out).
    pub fn follows(&self, previous: Position) -> bool {
        self.seq == previous.seq + 1
            && self.hash == chain(&previous.hash, self.seq, self.epoch, &self.payload)
    }
}

fn chain(previous: &EntryHash, seq: u64, epoch: u64, payload: &Payload) -> EntryHash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(seq.to_be_bytes());
    hasher.update(epoch.to_be_bytes());
    hasher.update([payload.tag()]);
    hasher.update(payload.bytes());
    hasher.finalize().into()
}

/// When replicated mode writes an image of an actor instead of a patchset, and how large an
/// image may be. See [`Options::snapshot_every`](crate::Options::snapshot_every) and
/// [`Options::max_image_bytes`](crate::Options::max_image_bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotPolicy {
    pub(crate) every_entries: u64,
    pub(crate) every_bytes: u64,
    pub(crate) max_image_bytes: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            every_entries: 1_000,
            every_bytes: 8 * 1024 * 1024,
            max_image_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The address of one actor's log: its namespace and id. The log refers to nothing else (no
/// registry, no instance), so any actor type can be replicated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogKey {
    /// The actor's namespace.
    pub namespace: Arc<str>,
    /// The actor's id.
    pub id: ActorId,
}

/// How an append changes the actor's alarms as the log keeps them (so that they fire after
/// the actor's disk is lost, without anyone calling it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AlarmUpdate {
    /// No alarm changed.
    #[default]
    Unchanged,
    /// Alarms set (`Some(due ms)`) or deleted (`None`), by name.
    Changes(Vec<(String, Option<i64>)>),
    /// The actor's alarms are exactly these (name, due ms): for an image entry.
    Replace(Vec<(String, i64)>),
}

/// An actor as the log knows it: for rebuilding a lost catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedActor {
    /// Its namespace and id.
    pub key: LogKey,
    /// Its name, for actors addressed by name.
    pub name: Option<String>,
    /// When its log began, by the log's clock (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Its alarms: name and due time (ms since the Unix epoch).
    pub alarms: Vec<(String, i64)>,
}

/// An alarm due with no live node holding its actor (in a cluster: its holder died, or let the
/// actor go and then died with the alarm in its catalog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanedAlarm {
    /// The actor.
    pub key: LogKey,
    /// The alarm's name.
    pub name: String,
    /// When it was due (ms since the Unix epoch).
    pub due_ms: i64,
}

/// Something an operator must see about an actor, recorded beside the log so that a cluster
/// lists it whichever node it happened on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incident {
    /// An alarm gave up after its last attempt (dead-lettered).
    DeadAlarm {
        /// The alarm's name.
        name: String,
        /// When it was due (ms since the Unix epoch).
        due_ms: i64,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: String,
    },
    /// The actor's file was moved aside (never deleted).
    Quarantined {
        /// Why (`corrupt`, `diverged_from_log`, …).
        reason: String,
        /// Where the file went, on the node that moved it.
        moved_to: String,
    },
}

/// What a claim returns: the new epoch and where the log stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The epoch this activation appends under; one more than any earlier claim's.
    pub epoch: u64,
    /// The last entry (or [`Position::GENESIS`] for an actor with no log yet).
    pub head: Position,
    /// The sequence number of the latest image at or before the head, if there is one.
    pub snapshot: Option<u64>,
}

/// Why a log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The append was refused: the actor was claimed by a newer activation (its epoch is now
    /// `current`), or the log's head moved. Nothing was written; the writer is stale and must
    /// acknowledge nothing more.
    #[error(
        "fenced: appending under epoch {epoch} after {expected:?}, but the actor is at epoch {current} with head {head:?}"
    )]
    Fenced {
        /// The epoch the append was made under.
        epoch: u64,
        /// Where the writer believed the head was.
        expected: Position,
        /// The actor's epoch now.
        current: u64,
        /// The log's head now.
        head: Position,
    },
    /// The store could not be reached, or refused the operation before it could take effect:
    /// nothing was written. Retryable.
    #[error("the log is unavailable: {0}")]
    Unavailable(String),
    /// The operation timed out or lost its connection after it was sent: it may or may not
    /// have taken effect. The writer must find out from the log (by claiming again) before it
    /// relies on either outcome.
    #[error("the log's answer was lost (the write may have landed): {0}")]
    Indeterminate(String),
    /// The claim was refused: the actor is active on another node of the cluster, whose lease
    /// still runs. Nothing was written; the call belongs at `advertise_url`.
    #[error("the actor is active on node {node_id} ({advertise_url})")]
    Owned {
        /// The node holding the actor.
        node_id: String,
        /// Where that node takes calls from other nodes.
        advertise_url: String,
    },
    /// What the store holds does not make sense (a broken chain, an entry missing in a range):
    /// a bug or damage, never a reason to guess.
    #[error("the log is inconsistent: {0}")]
    Corrupt(String),
}

impl LogError {
    /// Whether retrying later can succeed (the store was unreachable, or the answer was lost).
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::Unavailable(_) | LogError::Indeterminate(_))
    }
}

/// A future returned by a [`TurnLog`] method.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LogError>> + Send + 'a>>;

/// A fenced, per-actor log of committed turns, kept off the machine that runs the actors.
///
/// Implementations must make [`claim`](TurnLog::claim) and [`append`](TurnLog::append)
/// linearizable per actor: each claim returns a larger epoch than every claim before it, and an
/// append lands only if, atomically, the actor's epoch equals the append's and its head equals
/// `expected`. The runtime computes entries' hashes ([`Entry::after`]); the log stores them.
pub trait TurnLog: Send + Sync + 'static {
    /// Starts an activation: increments the actor's epoch (creating its log if it has none,
    /// recording `name` for an actor addressed by name) and returns it with the head.
    fn claim<'a>(&'a self, key: &'a LogKey, name: Option<&'a str>) -> LogFuture<'a, Claim>;

    /// Appends `entries` (consecutive, the first right after `expected`) under `epoch`, with
    /// the alarm changes they carry, all or none, if the actor is still at `epoch` with its
    /// head at `expected`; otherwise [`LogError::Fenced`].
    fn append<'a>(
        &'a self,
        key: &'a LogKey,
        epoch: u64,
        expected: Position,
        entries: &'a [Entry],
        alarms: &'a AlarmUpdate,
    ) -> LogFuture<'a, Position>;

    /// The entries with sequence numbers in `from..=to`, in order; images included.
    fn read<'a>(&'a self, key: &'a LogKey, from: u64, to: u64) -> LogFuture<'a, Vec<Entry>>;

    /// The latest image entry at or before `seq`, if any.
    fn image_at<'a>(&'a self, key: &'a LogKey, seq: u64) -> LogFuture<'a, Option<Entry>>;

    /// The actor's epoch and head without claiming it (`None` for an actor with no log).
    fn head<'a>(&'a self, key: &'a LogKey) -> LogFuture<'a, Option<(u64, Position)>>;

    /// The last entry committed at or before `at_ms` (ms since the Unix epoch, by the log's
    /// clock), if one is still in the log.
    fn seq_at<'a>(&'a self, key: &'a LogKey, at_ms: i64) -> LogFuture<'a, Option<u64>>;

    /// Every actor with a non-empty log, with its alarms.
    fn inventory(&self) -> LogFuture<'_, Vec<LoggedActor>>;

    /// Deletes the actor's entries, images and alarms and bumps its epoch, fencing any activation still
    /// running. The epoch is kept, so a later claim starts an empty log at a higher epoch and
    /// nothing written before the deletion can be appended to it or read from it again.
    fn delete<'a>(&'a self, key: &'a LogKey) -> LogFuture<'a, ()>;

    /// Gives up the activation claimed at `epoch` (in a cluster, so that another node may claim
    /// the actor at once instead of forwarding to this one). A no-op where claims do not
    /// belong to nodes, and where the actor has been claimed again since.
    fn release<'a>(&'a self, key: &'a LogKey, epoch: u64) -> LogFuture<'a, ()> {
        let _ = (key, epoch);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The generation claims are made under now: in a cluster, the node's incarnation (it
    /// changes when the node joins again after losing its lease). An activation claimed under
    /// another generation must not serve: the actor may have been claimed elsewhere since, and
    /// a read from it could be stale. `0` where claims do not belong to nodes.
    fn generation(&self) -> u64 {
        0
    }

    /// Records an [`Incident`] of the actor (best effort: the runtime logs a failure and goes
    /// on). A no-op by default.
    fn record_incident<'a>(&'a self, key: &'a LogKey, incident: &'a Incident) -> LogFuture<'a, ()> {
        let _ = (key, incident);
        Box::pin(std::future::ready(Ok(())))
    }

    /// In a cluster: up to `limit` alarms due by `due_by_ms` whose actors no live node holds,
    /// for this node to index and fire (its claim then takes the actor over). Empty where claims
    /// do not belong to nodes: there every alarm is in the one runtime's catalog.
    fn orphaned_alarms(&self, due_by_ms: i64, limit: usize) -> LogFuture<'_, Vec<OrphanedAlarm>> {
        let _ = (due_by_ms, limit);
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}
