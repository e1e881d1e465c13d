//! The identifier rules, tested from outside the crate.
//!
//! One binary for the crate's integration tests, a module per subject: each test binary links the
//! whole dependency tree, so one binary instead of one per file saves most of the linking.

mod properties;
mod rules;
