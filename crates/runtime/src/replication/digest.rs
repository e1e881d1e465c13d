//! A hash of a database's logical content, for telling two copies apart. Two files with the
//! same rows are rarely the same bytes (pages are laid out by history), so files are compared
//! by what a query sees.

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

/// SHA-256 over every table's definition and rows (in primary-key order), tables by name.
pub(crate) fn content_hash(conn: &Connection) -> rusqlite::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut tables = conn.prepare(
        "SELECT name, sql FROM sqlite_schema
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let tables: Vec<(String, String)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, sql) in tables {
        field(&mut hasher, b"table", table.as_bytes());
        field(&mut hasher, b"sql", sql.as_bytes());
        let quoted = table.replace('"', "\"\"");
        let columns = conn
            .prepare(&format!("SELECT * FROM \"{quoted}\""))?
            .column_count();
        // Every column, so the order is total whatever the key.
        let order: Vec<String> = (1..=columns).map(|i| i.to_string()).collect();
        let mut rows = conn.prepare(&format!(
            "SELECT * FROM \"{quoted}\" ORDER BY {}",
            order.join(", ")
        ))?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            hasher.update(b"row");
            for i in 0..columns {
                match row.get_ref(i)? {
                    ValueRef::Null => hasher.update(b"n"),
                    ValueRef::Integer(v) => field(&mut hasher, b"i", &v.to_be_bytes()),
                    ValueRef::Real(v) => field(&mut hasher, b"r", &v.to_bits().to_be_bytes()),
                    ValueRef::Text(v) => field(&mut hasher, b"t", v),
                    ValueRef::Blob(v) => field(&mut hasher, b"b", v),
                }
            }
        }
    }
    Ok(hasher.finalize().into())
}

fn field(hasher: &mut Sha256, tag: &[u8], bytes: &[u8]) {
    hasher.update(tag);
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}
