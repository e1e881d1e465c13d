//! The server a test process shares, and the fresh databases it hands out.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;
use url::Url;

use super::cluster::Cluster;
use super::error::Error;

/// The environment variable naming a server to use instead of a local shared cluster.
pub const DATABASE_URL_VAR: &str = "BURROW_TEST_DATABASE_URL";

/// The PostgreSQL server that the tests of one process share.
#[derive(Debug)]
pub enum SharedServer {
    /// A local cluster started for this process.
    Local(Cluster),
    /// The server named by `BURROW_TEST_DATABASE_URL`; the URL's database is used to create and
    /// drop the test databases.
    External(Url),
}

/// The shared server, started on first use and removed when the process ends.
///
/// # Panics
///
/// If the server cannot be started (or the URL is unusable), with a message that says why and
/// what to install — every later call panics with the same message.
pub fn shared() -> &'static SharedServer {
    static SHARED: OnceLock<Result<SharedServer, String>> = OnceLock::new();
    let server = SHARED.get_or_init(|| SharedServer::start().map_err(|e| e.to_string()));
    match server {
        Ok(server) => server,
        Err(message) => panic!("cannot start the shared test PostgreSQL: {message}"),
    }
}

/// A new, empty database on the [`shared`] server.
///
/// # Panics
///
/// If the shared server cannot be started or the database cannot be created.
pub async fn fresh_database() -> TestDatabase {
    shared()
        .create_database()
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"))
}

impl SharedServer {
    fn start() -> Result<SharedServer, Error> {
        match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => {
                let parsed = Url::parse(&url).map_err(|e| Error::BadUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                    return Err(Error::BadUrl {
                        url,
                        reason: format!("the scheme is {:?}", parsed.scheme()),
                    });
                }
                Ok(SharedServer::External(parsed))
            }
            _ => Ok(SharedServer::Local(Cluster::start()?)),
        }
    }

    /// Creates a new, empty database with a name no other test uses.
    pub async fn create_database(&self) -> Result<TestDatabase, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Pid and clock keep names apart between processes (and hosts) sharing one server.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "burrow_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let maintenance = self.maintenance_url();
        let client = connect(&maintenance).await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let url = match self {
            SharedServer::Local(cluster) => cluster.url(&name),
            SharedServer::External(base) => {
                let mut url = base.clone();
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        };
        Ok(TestDatabase {
            name,
            url,
            // A local cluster is thrown away whole; a server of someone else's must not fill up.
            drop_through: matches!(self, SharedServer::External(_)).then_some(maintenance),
        })
    }

    fn maintenance_url(&self) -> String {
        match self {
            SharedServer::Local(cluster) => cluster.url("postgres"),
            SharedServer::External(url) => url.to_string(),
        }
    }
}

/// A database created for one test.
///
/// On an external server (`BURROW_TEST_DATABASE_URL`) it is dropped when this value is; on a
/// local cluster it goes with the cluster.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    drop_through: Option<String>,
}

impl TestDatabase {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL that connects to this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection settings, parsed from [`url`](Self::url).
    pub fn config(&self) -> tokio_postgres::Config {
        self.url.parse().expect("the testkit builds valid URLs")
    }

    /// Connects; the connection is driven by a task on the current tokio runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, Error> {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(maintenance) = self.drop_through.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop may run inside a runtime, which must not be blocked on; a thread of its own with
        // a small runtime does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = connect(&maintenance).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                Ok::<(), Error>(())
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!(
                "burrow-testkit: cannot drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// Connects to `url` without TLS and drives the connection on the current runtime.
pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // Ends with an error when the server goes away; the client reports that to its user.
        let _ = connection.await;
    });
    Ok(client)
}
