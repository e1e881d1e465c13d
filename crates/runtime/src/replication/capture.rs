//! Capturing one commit's changes as a session patchset, before the commit.

use rusqlite::Connection;
use rusqlite::session::Session;

/// What a commit changed, taken before it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    /// The patchset of every row the commit changed (empty when the changes cancel out).
    pub patchset: Vec<u8>,
    /// Whether the schema changed (`PRAGMA schema_version` moved): the patchset does not carry
    /// that, so the commit must ship an image instead.
    pub schema_changed: bool,
}

/// A recording in progress: started before a commit's first write, on the same connection.
pub(crate) struct Recorder<'conn> {
    session: Session<'conn>,
    schema_version: i64,
}

impl<'conn> Recorder<'conn> {
    /// Starts recording every table's changes, tables created later included.
    pub(crate) fn start(conn: &'conn Connection) -> rusqlite::Result<Recorder<'conn>> {
        let mut session = Session::new(conn)?;
        session.attach(None::<&str>)?;
        Ok(Recorder {
            session,
            schema_version: schema_version(conn)?,
        })
    }

    /// What was changed so far. Call it with the transaction still open: the patchset is the
    /// same as after the commit, and a commit that then fails can still be rolled back.
    ///
    /// After a schema change the patchset is left empty and `schema_changed` set: the commit
    /// must ship an image. That includes schema changes undone by `ROLLBACK TO` (the version
    /// moves back, but the session may have attached to a table that changed under it), which
    /// show as `SQLITE_SCHEMA` from the session or as a patchset that does not fit its own
    /// database.
    pub(crate) fn finish(&mut self, conn: &Connection) -> rusqlite::Result<Capture> {
        let needs_image = Capture {
            patchset: Vec::new(),
            schema_changed: true,
        };
        if schema_version(conn)? != self.schema_version {
            return Ok(needs_image);
        }
        let mut patchset = Vec::new();
        match self.session.patchset_strm(&mut patchset) {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::SchemaChanged) => {
                return Ok(needs_image);
            }
            result => result?,
        }
        match super::apply::validate(conn, &patchset) {
            Ok(()) => Ok(Capture {
                patchset,
                schema_changed: false,
            }),
            Err(super::ReplicationError::Sqlite(e)) => Err(e),
            Err(_) => Ok(needs_image),
        }
    }
}

/// The schema's version counter, which every `CREATE`, `ALTER` and `DROP` moves.
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    // Cached: it runs twice per replicated commit, and parsing it each time showed in profiles.
    conn.prepare_cached("PRAGMA schema_version")?
        .query_row([], |r| r.get(0))
}
