//! Test-only helpers for Burrow.
//!
//! Real parts, thrown away afterwards: [`pg`] starts PostgreSQL clusters in temporary
//! directories on free loopback ports and hands out fresh databases; [`server`] runs the
//! `burrow` binary as a child process and cleans up every sandbox it started; [`podman`]
//! starts a Podman API service with storage of its own.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // A fresh database on the cluster this test process shares:
//! let db = burrow_testkit::pg::fresh_database().await;
//! let client = db.connect().await?;
//! client.batch_execute("CREATE TABLE t (x int)").await?;
//!
//! // A cluster of one's own, for tests that stop and restart PostgreSQL:
//! let mut cluster = burrow_testkit::pg::Cluster::start()?;
//! cluster.stop()?;
//! cluster.restart()?;
//! # Ok(())
//! # }
//! ```

pub mod pg;
pub mod podman;
pub mod server;
