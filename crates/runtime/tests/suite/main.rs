//! The runtime, tested through its public API with real files.
//!
//! One binary for the crate's integration tests, a module per subject: each test binary links the
//! whole dependency tree, so one binary instead of one per file saves most of the linking.
//!
//! Kept apart: `crash`, `catalog` and `alarms_restart` run themselves as children
//! (`harness = false`), `metrics` and `idle_trim` install a process-wide metrics recorder, and
//! `many_actors` and `residency_at_scale` count the process's descriptors.

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod admin;
mod alarms;
mod checkpoint;
mod controlled_time;
mod delete_after_commit;
mod group_commit;
mod lost_state;
mod residency;
mod retry;
mod turns;
