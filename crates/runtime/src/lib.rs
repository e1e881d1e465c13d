//! Burrow's durable-actor runtime: one actor per key, activated on demand, one turn at a time,
//! each with its own SQLite file.
//!
//! - **Addressing.** A [`Runtime`] holds [`Namespace`]s, one per actor type. An [`ActorId`] is
//!   only an address; the first call through a [`Stub`] activates the actor.
//! - **Typed messages.** An actor accepts the [`Message`] types it has a [`Handler`] for; each
//!   message names its reply type, so a call cannot get a reply of the wrong kind.
//! - **Turns.** An actor handles one message at a time, to completion, in arrival order, even
//!   while its handler awaits. Actors live on a fixed set of shard threads (one per core by
//!   default), each a single-threaded executor, so an actor's SQLite work never crosses threads
//!   and never blocks another shard.
//! - **Storage.** Each actor has its own SQLite file (WAL mode, exclusive locking) under
//!   `<data dir>/actors/<namespace>/<xx>/<id>.db`, with plain SQL and a typed key–value API
//!   ([`Storage`]). [`Actor::on_activate`] runs once per activation, for schema setup.
//! - **Atomic turns.** A turn's writes form one transaction, committed before its reply is
//!   released. A turn that panics or aborts is rolled back, the actor instance is discarded, and
//!   the caller gets a [`CallError`].
//! - **Durability.** [`Durability::Process`] survives a process crash; [`Durability::Machine`]
//!   survives an OS crash or power loss.
//!
//! The [`catalog`], [`alarm`]s, the commit [`hook`], [`retry`] and the [`clock`] have modules
//! of their own;
//! the [`guide`] is the embedding guide, with examples that are compiled and run as tests.
//!
//! ```
//! use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
//!
//! struct Counter;
//! impl Actor for Counter {}
//!
//! /// Adds to the counter; the reply is the new total.
//! struct Add(i64);
//! impl Message for Add {
//!     type Reply = i64;
//! }
//!
//! impl Handler<Add> for Counter {
//!     async fn handle(&mut self, ctx: &mut Context<Self>, Add(n): Add) -> Result<i64, Abort> {
//!         let total = ctx.storage().get::<i64>("n")?.unwrap_or(0) + n;
//!         ctx.storage().put("n", &total)?;
//!         Ok(total) // released only after the write is committed
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let runtime = Runtime::open(Options::new(dir.path()))?;
//! let counters = runtime.namespace("counter", |_info| Counter)?;
//! let alice = counters.get_by_name("alice");
//! assert_eq!(alice.call(Add(2)).await?, 2);
//! assert_eq!(alice.call(Add(3)).await?, 5);
//! runtime.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```

// Layers, bottom-up: a module imports only from its own layer's lower lines or from layers
// above this comment's position in the list (docs/ARCHITECTURE.md has the map).
//
// Leaves: time, randomness, ids, errors, durability modes, the commit hook's types.
pub mod clock;
mod durability;
mod error;
mod faults;
pub mod hook;
mod id;
mod random;
pub mod turn_log;

// Files: the data directory's layout, an actor's database, the catalog's database.
mod layout;

mod storage;

mod quarantine;

#[cfg(feature = "replicated")]
mod replication;

mod catalog_db;

#[cfg(feature = "replicated")]
mod catalog_from_log;
#[cfg(feature = "replicated")]
mod log_thread;
#[cfg(feature = "replicated")]
mod orphans;

// Alarms as handlers see them, and the reports of their deliveries.
pub mod alarm;

mod delivery;
mod incident;

// A turn: what it uses from its shard, how it ends, what the embedder implements.
mod services;

mod failure;

mod commit;
#[cfg(feature = "replicated")]
mod release;
#[cfg(feature = "replicated")]
mod replicate;

mod actor;

mod actor_type;

mod deletion;

mod turn;

mod activation;
#[cfg(feature = "replicated")]
mod catch_up;
#[cfg(feature = "replicated")]
pub mod point_in_time;

// Shards and the routing of work to them.
mod shard;

mod actor_task;

mod dispatcher;

// The public handles, and the runtime that ties them together.
mod namespace;
mod scheduler;
mod telemetry;

pub mod catalog;
mod options;
pub mod retry;

mod runtime;

#[doc = include_str!("../../../docs/GUIDE.md")]
pub mod guide {}

pub use actor::{Actor, ActorInfo, Context, Handler, LostReason, LostState, Message};
pub use durability::Durability;
pub use error::{Abort, CallError, ErrorKind, RuntimeError};
#[cfg(feature = "faults")]
pub use faults::{set_pause_after_append, set_pause_before_append};
pub use id::{ActorId, InvalidActorId};
pub use namespace::{Namespace, Stub};
pub use options::Options;
pub use runtime::Runtime;
pub use shard::ShutdownReport;
pub use storage::{RESERVED_PREFIX, Storage};
pub use telemetry::describe_metrics;

/// The SQLite binding actors use through [`Storage::sql`], re-exported so that actor crates
/// link the same version.
pub use rusqlite;
