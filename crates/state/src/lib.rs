//! The instance's persisted state: one typed schema, stored one key per field in the instance
//! actor's key–value storage, updated partially and atomically, and never silently reset.
//!
//! - [`InstanceState`] and [`FIELDS`] come from one definition (`schema.rs`), as do
//!   [`InstanceState::create`], [`InstanceState::load`], [`InstanceState::reset`] and
//!   [`Update`].
//! - A field whose bytes do not decode is set aside, not lost: see [`InstanceState::load`].
//! - [`StatusView`] and [`DebugStatusView`] are what users and admins may see.

mod codec;
mod schema;
mod time;
mod types;
mod views;

pub use schema::{
    FIELDS, FieldFailure, IDENTITY_FIELDS, InstanceState, KEY_PREFIX, Loaded, QUARANTINE_PREFIX,
    SCHEMA_VERSION, StateError, Update, VERSION_KEY,
};
pub use time::{epoch_ms, now_ms};
pub use types::{DestroyError, ErrorNote, MachineSize, RestoreSource, SecretEnvelope, Status};
pub use views::{DebugStatusView, SecretInfo, StatusView};
