//! Throwaway PostgreSQL for tests.
//!
//! - [`fresh_database`] gives a new, empty database on a cluster shared by the whole test
//!   process (started on first use). With `BURROW_TEST_DATABASE_URL` set, that server is used
//!   instead of a local cluster; each test still gets a database of its own, dropped afterwards.
//! - [`Cluster::start`] gives a **dedicated** local cluster, for tests that stop, restart or kill
//!   PostgreSQL: an outage test must never disturb tests that share the common cluster.
//!
//! Local clusters live in `$TMPDIR/burrow-testkit-<uid>/`, listen on a free port on 127.0.0.1
//! (and on a socket in their own directory), run with `fsync=off` (their data is thrown away),
//! and are removed when the process ends in any way: a watchdog process holds a pipe from the
//! test process and, once that pipe closes (normal exit, panic or SIGKILL), shuts the server down
//! and deletes the directory. Clusters whose owner and watchdog were both killed are found by
//! the next run (the directory name records the owning process) and removed.
//!
//! The server binaries are looked up on `PATH`, then in `/usr/lib/postgresql/*/bin`. When the
//! tests run as root, PostgreSQL runs as the `postgres` OS user, since it refuses to run as root.

mod binaries;
mod cluster;
mod error;
mod shared;
mod sweep;

pub use cluster::Cluster;
pub use error::Error;
pub use shared::{DATABASE_URL_VAR, SharedServer, TestDatabase, fresh_database, shared};
pub use sweep::sweep_stale_clusters;
