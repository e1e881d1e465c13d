//! The instance actor and the local sandbox provider, with real processes.
//!
//! One binary for the crate's integration tests, a module per subject: each test binary links the
//! whole dependency tree, so one binary instead of one per file saves most of the linking, and
//! the tests share one PostgreSQL where they use one.

mod common;

mod containers;

mod lifecycle;
mod provider;
