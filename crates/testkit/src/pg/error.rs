use std::path::PathBuf;

/// What can go wrong starting or using a throwaway PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH nor in \
         /usr/lib/postgresql/*/bin. Install them — on Debian or Ubuntu: `apt-get install \
         postgresql` — or point BURROW_TEST_DATABASE_URL at a server the tests may create \
         databases on (outage tests still need the local binaries)"
    )]
    BinariesNotFound,
    /// Running as root, but there is no unprivileged `postgres` user to run the server as.
    #[error(
        "the tests run as root and PostgreSQL refuses to; they run it as the `postgres` OS user, \
         which does not exist here. Create it (`useradd --system --no-create-home postgres`) or \
         run the tests as an ordinary user"
    )]
    NoPostgresUser,
    /// A PostgreSQL program failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The program and what it was doing.
        what: String,
        /// Exit status and the end of its output and of the server log.
        detail: String,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `BURROW_TEST_DATABASE_URL` is not a usable PostgreSQL URL.
    #[error("BURROW_TEST_DATABASE_URL {url:?} is not a postgres:// URL: {reason}")]
    BadUrl {
        /// The value given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A statement or connection failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
