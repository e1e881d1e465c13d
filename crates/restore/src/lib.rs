//! The registry of organisations and instances, and the rehydration of lost actors from it.
//!
//! - [`Registry`]: the operations; [`SqliteRegistry`] is the embedded default. (The PostgreSQL
//!   implementation is being built: see `docs/ARCHITECTURE.md`.)
//! - [`restore`]: rebuilds a lost actor's state from its own row.
//!
//! Migrations are plain SQL under `migrations/` at the workspace root, applied by refinery.

mod error;
mod model;
mod registry;
mod restore;
mod sqlite;

pub use error::RegistryError;
pub use model::{InstanceRow, MarkOutcome, NewInstance, Organization};
pub use registry::Registry;
pub use restore::{Restored, restore};
pub use sqlite::{SqliteRegistry, sqlite_migrations};
