//! What replicated durability does to an actor's SQLite file: capture a commit's changes as a
//! session patchset, refuse what a patchset cannot carry, apply patchsets and images to a copy,
//! and compare two copies by content.
//!
//! The SQLite session extension records row changes of tables with a declared primary key. It
//! does not see schema changes, rows whose key holds a NULL, or tables without a primary key,
//! and applying a patchset *silently skips* changes to a table that is missing or has another
//! column count (see `../shared/research/patchset-spike.md`). So: a commit that changed the
//! schema ships an image instead ([`capture::Capture::schema_changed`]); tables that a patchset
//! would miss are refused when they are created ([`shape::check`]); a patchset is validated
//! against the target's schema before it is applied ([`apply::apply`]).

pub(crate) mod alarms;
pub(crate) mod apply;
pub(crate) mod capture;
// Comparing copies by content: only the property tests need it so far.
#[cfg(test)]
pub(crate) mod digest;
pub(crate) mod image;
pub(crate) mod shape;

#[cfg(test)]
mod tests;

/// Why a replicated change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// A table the session extension cannot capture completely.
    #[error("table {table:?} cannot be replicated: {reason}")]
    UnreplicableTable {
        /// The table's name.
        table: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A patchset that does not fit the database it was to be applied to.
    #[error("patchset does not fit this database: {0}")]
    Mismatch(String),
    /// Applying met a row that was not as the patchset expects: the copy has diverged.
    #[error("patchset conflicts with this database ({0})")]
    Conflict(String),
    /// A full image of the database is over the log's limit (its size in bytes).
    #[error("the database's image is {0} bytes, over the log's limit")]
    ImageTooLarge(usize),
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}
