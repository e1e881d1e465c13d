//! The PostgreSQL turn log, membership and placement, on real PostgreSQL servers.
//!
//! One binary for the crate's integration tests, a module per subject: each test binary links the
//! whole dependency tree, so one binary instead of one per file saves most of the linking, and
//! the tests share one PostgreSQL where they use one.

mod common;

mod compaction_under_load;
mod crash_between_commits;
mod fencing;
mod membership;
mod outages;
mod placement;
mod replicated_runtime;
