//! Burrow: durable actors on SQLite, embedded in a host server, with an instance manager on top.
//!
//! This facade re-exports Burrow's crates under one name. See `docs/ARCHITECTURE.md` for the map.

pub use burrow_identity as identity;
pub use burrow_instance as instance;
pub use burrow_restore as restore;
pub use burrow_runtime as runtime;
pub use burrow_sandbox as sandbox;
pub use burrow_server as server;
pub use burrow_state as state;
