//! The `burrow` binary end to end: real servers, sandboxes, PostgreSQL, browsers and faults,
//! a module per subject.
//!
//! One binary for all of them: each test binary links the whole workspace, so one instead of
//! twenty saves most of the linking, and the tests that share a PostgreSQL share one server.
//! Tests run two at a time (one per core); those that start three nodes take
//! `common::cluster::ONE_AT_A_TIME` and run one after another.

mod common;

mod cluster;
mod cluster_config;
mod cluster_faults;
mod cluster_sandboxes;
mod console;
mod crash_server;
mod full_disk;
mod hostile_input;
mod lost_files;
mod openapi;
mod operations;
mod proxy;
mod readme;
mod registry_outage;
mod replicated_config;
mod restart;
mod routes;
mod security;
mod slow_clients;
