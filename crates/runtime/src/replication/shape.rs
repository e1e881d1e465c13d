//! Tables whose changes a session patchset would miss, refused when they are created.

use rusqlite::Connection;

use super::ReplicationError;

/// Checks every table of the database: each needs a declared PRIMARY KEY whose columns can
/// never hold NULL, and none may use AUTOINCREMENT (its counter lives in `sqlite_sequence`,
/// which has no key). Names the first table that fails.
pub(crate) fn check(conn: &Connection) -> Result<(), ReplicationError> {
    let mut tables = conn.prepare(
        "SELECT name, wr, coalesce((SELECT sql FROM sqlite_schema s WHERE s.name = t.name), '')
         FROM pragma_table_list t
         WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY name",
    )?;
    let tables: Vec<(String, bool, String)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (table, without_rowid, sql) in tables {
        let refuse = |reason| ReplicationError::UnreplicableTable {
            table: table.clone(),
            reason,
        };
        if sql.to_ascii_uppercase().contains("AUTOINCREMENT") {
            return Err(refuse(
                "AUTOINCREMENT keeps its counter where replication cannot see it; use INTEGER PRIMARY KEY",
            ));
        }
        let mut columns =
            conn.prepare("SELECT type, \"notnull\", pk FROM pragma_table_info(?1)")?;
        let key: Vec<(String, bool)> = columns
            .query_map([&table], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?))
            })?
            .filter_map(|row| match row {
                Ok((ty, not_null, pk)) if pk > 0 => Some(Ok((ty, not_null))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        if key.is_empty() {
            return Err(refuse("it has no PRIMARY KEY"));
        }
        // A WITHOUT ROWID table's key is NOT NULL by definition; a rowid table's single
        // INTEGER PRIMARY KEY is the rowid, which is never NULL.
        let rowid_alias =
            !without_rowid && key.len() == 1 && key[0].0.eq_ignore_ascii_case("INTEGER");
        if !without_rowid && !rowid_alias && key.iter().any(|(_, not_null)| !not_null) {
            return Err(refuse(
                "a PRIMARY KEY column may hold NULL; declare the key columns NOT NULL",
            ));
        }
    }
    Ok(())
}
