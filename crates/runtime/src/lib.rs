//! Burrow's durable-actor runtime: one actor per key, activated on demand, one turn at a time,
//! each with its own SQLite file.
//!
//! - **Addressing.** A [`Runtime`] holds [`Namespace`]s, one per actor type. An [`ActorId`] is
//!   only an address; the first call through a [`Stub`] activates the actor.
//! - **Turns.** An actor handles one request at a time, to completion, in arrival order, even
//!   while its handler awaits. Actors live on a fixed set of shard threads (one per core by
//!   default), each a single-threaded executor, so an actor's SQLite work never crosses threads
//!   and never blocks another shard.
//! - **Storage.** Each actor has its own SQLite file (WAL mode, exclusive locking) under
//!   `<data dir>/actors/<namespace>/<xx>/<id>.db`, with plain SQL and a key–value API
//!   ([`Storage`]).
//! - **Atomic turns.** A turn's writes form one transaction, committed before its reply is
//!   released. A turn that panics or aborts is rolled back, the actor instance is discarded, and
//!   the caller gets a [`CallError`].
//! - **Durability.** [`Durability::Process`] survives a process crash; [`Durability::Machine`]
//!   survives an OS crash or power loss.
//!
//! ```
//! use burrow_runtime::{Abort, Actor, Context, Options, Runtime};
//!
//! struct Counter;
//!
//! impl Actor for Counter {
//!     type Request = i64; // add this much
//!     type Response = i64; // the new total
//!
//!     async fn handle(&mut self, ctx: &mut Context<Self>, add: i64) -> Result<i64, Abort> {
//!         let storage = ctx.storage();
//!         let old = storage.get("n")?.map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()));
//!         storage.put("n", &(old + add).to_le_bytes())?;
//!         Ok(old + add) // released only after the write is committed
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("burrow-doc-{}", std::process::id()));
//! let runtime = Runtime::open(Options::new(&dir))?;
//! let counters = runtime.namespace("counter", |_info| Counter)?;
//! let alice = counters.get_by_name("alice");
//! assert_eq!(alice.call(2).await?, 2);
//! assert_eq!(alice.call(3).await?, 5);
//! runtime.shutdown(std::time::Duration::from_secs(5)).await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod actor;
mod alarm;
mod catalog;
mod error;
mod faults;
mod hook;
mod id;
mod namespace;
mod options;
mod retry;
mod runtime;
mod shard;
mod storage;

pub use actor::{Actor, ActorInfo, Context, LostReason, LostState};
pub use alarm::{Alarm, AlarmPolicy};
pub use catalog::{ActorRecord, AlarmRecord, Catalog, CatalogStartup, DeadAlarm};
pub use error::{Abort, CallError, ErrorKind, RuntimeError};
pub use hook::{CommitHook, CommitInfo, HookFuture};
pub use id::{ActorId, InvalidActorId};
pub use namespace::{Namespace, Stub};
pub use options::{Durability, Options};
pub use retry::{RetryPolicy, with_retry};
pub use runtime::{Runtime, ShutdownReport};
pub use storage::{RESERVED_PREFIX, Storage};

/// The SQLite binding actors use through [`Storage::sql`], re-exported so that actor crates
/// link the same version.
pub use rusqlite;
