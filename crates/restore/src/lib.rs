//! The registry of organisations and instances, and the rehydration of lost actors from it.
//!
//! - [`Registry`]: the operations, with two implementations that pass one test suite:
//!   [`PgRegistry`] (tokio-postgres through a deadpool pool, every operation under a timeout)
//!   and [`SqliteRegistry`], the embedded default.
//! - [`restore`]: rebuilds a lost actor's state from its own row.
//!
//! Migrations are plain SQL under `migrations/` at the workspace root, applied by refinery.

mod any;
mod error;
mod model;
mod postgres;
mod registry;
mod restore;
mod sqlite;
mod telemetry;

pub use any::{AnyRegistry, SQLITE_REGISTRY_FILE};
pub use error::RegistryError;
pub use model::{InstanceRow, MarkOutcome, NewInstance, Organization};
pub use postgres::{DEFAULT_TIMEOUT, PgRegistry, postgres_migrations};
pub use registry::Registry;
pub use restore::{Restored, find_row, restore};
pub use sqlite::{SqliteRegistry, sqlite_migrations};
pub use telemetry::describe_metrics;
