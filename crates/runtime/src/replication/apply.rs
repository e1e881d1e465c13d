//! Applying a patchset to a copy of an actor's database, refusing what would not fit.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::session::{ChangesetIter, ConflictAction, ConflictType};

use super::ReplicationError;

/// Checks that every change in `patchset` names a table of `conn` with the same number of
/// columns and the same primary key: `sqlite3changeset_apply` skips changes to any other
/// table without an error, which would lose them silently.
pub(crate) fn validate(conn: &Connection, patchset: &[u8]) -> Result<(), ReplicationError> {
    let mut input: &[u8] = patchset;
    let reader: &mut dyn std::io::Read = &mut input;
    let mut changes = ChangesetIter::start_strm(&reader)?;
    let mut checked: Vec<String> = Vec::new();
    while let Some(item) = changes.next()? {
        let op = item.op()?;
        let table = op.table_name().to_owned();
        if checked.contains(&table) {
            continue;
        }
        let key: Vec<bool> = item.pk()?.iter().map(|&flag| flag != 0).collect();
        let columns = op.number_of_columns() as usize;
        let mut info = conn.prepare_cached("SELECT pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let actual: Vec<bool> = info
            .query_map([&table], |r| r.get::<_, i64>(0))?
            .map(|pk| pk.map(|pk| pk > 0))
            .collect::<Result<_, _>>()?;
        if actual.is_empty() {
            return Err(ReplicationError::Mismatch(format!(
                "table {table:?} does not exist"
            )));
        }
        if actual.len() != columns || actual != key {
            return Err(ReplicationError::Mismatch(format!(
                "table {table:?} has {} columns with key {actual:?}; the patchset has {columns} with key {key:?}",
                actual.len()
            )));
        }
        checked.push(table);
    }
    Ok(())
}

/// Turns triggers and foreign keys off on a connection that replays patchsets: a patchset
/// already holds every row its commit changed, triggers' and cascades' included. Call it
/// outside a transaction (`PRAGMA foreign_keys` is a no-op inside one).
pub(crate) fn replay_mode(conn: &Connection) -> rusqlite::Result<()> {
    debug_assert!(
        conn.is_autocommit(),
        "foreign keys cannot change inside a transaction"
    );
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.execute_batch("PRAGMA foreign_keys = OFF")
}

/// Applies `patchset` on a connection in [`replay_mode`], all or nothing (inside the caller's
/// transaction, if one is open). Any conflict — a row missing that the patchset updates, or
/// present that it inserts — means the copy is not where the patchset starts from: nothing is
/// applied, and the error says so.
pub(crate) fn apply_in_replay_mode(
    conn: &Connection,
    patchset: &[u8],
) -> Result<(), ReplicationError> {
    validate(conn, patchset)?;
    let conflicts = Arc::new(Mutex::new(Vec::new()));
    let seen = conflicts.clone();
    let mut input: &[u8] = patchset;
    let applied = conn.apply_strm(
        &mut input,
        None::<fn(&str) -> bool>,
        move |kind: ConflictType, item| {
            let table = item
                .op()
                .map(|op| op.table_name().to_owned())
                .unwrap_or_default();
            if let Ok(mut seen) = seen.lock() {
                seen.push(format!("{kind:?} in {table:?}"));
            }
            ConflictAction::SQLITE_CHANGESET_ABORT
        },
    );
    let conflicts = conflicts.lock().map(|c| c.join(", ")).unwrap_or_default();
    if !conflicts.is_empty() {
        return Err(ReplicationError::Conflict(conflicts));
    }
    Ok(applied?)
}

/// Applies `patchset` to `conn` (outside a transaction), all or nothing, with triggers and
/// foreign keys off while it applies and as they were afterwards.
#[cfg(test)]
pub(crate) fn apply(conn: &Connection, patchset: &[u8]) -> Result<(), ReplicationError> {
    let triggers = conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER)?;
    let foreign_keys: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    replay_mode(conn)?;
    let applied = apply_in_replay_mode(conn, patchset);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, triggers)?;
    conn.execute_batch(if foreign_keys {
        "PRAGMA foreign_keys = ON"
    } else {
        "PRAGMA foreign_keys = OFF"
    })?;
    applied
}
