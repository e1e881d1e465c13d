//! Start-up reconciliation: the catalog is derived data, so every actor file it does not list
//! (all of them, when the catalog was missing or damaged) is added from the identity and
//! alarms the file records.

use std::collections::HashSet;
use std::path::Path;
use std::time::UNIX_EPOCH;

use rusqlite::{Connection, OpenFlags, params};

use super::CatalogStartup;
use crate::durability::Durability;
use crate::id::ActorId;
use crate::layout::{actor_file_id, actors_dir};
use crate::storage::Storage;

/// Adds every actor file the catalog does not know, reading each one's identity.
pub(super) fn reconcile(
    conn: &Connection,
    data_dir: &Path,
    startup: &mut CatalogStartup,
) -> rusqlite::Result<()> {
    let Ok(namespaces) = std::fs::read_dir(actors_dir(data_dir)) else {
        return Ok(());
    };
    for ns_dir in namespaces.flatten() {
        let Some(namespace) = ns_dir.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let known: HashSet<Vec<u8>> = {
            let mut stmt = conn.prepare("SELECT id FROM actors WHERE namespace = ?1")?;
            stmt.query_map([&namespace], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let Ok(shards) = std::fs::read_dir(ns_dir.path()) else {
            continue;
        };
        for file in shards
            .flatten()
            .filter_map(|d| std::fs::read_dir(d.path()).ok())
            .flatten()
            .flatten()
        {
            let Some(id) = file.file_name().to_str().and_then(actor_file_id) else {
                continue;
            };
            if known.contains(id.as_bytes().as_slice()) {
                continue;
            }
            match read_identity(&file.path()) {
                Some((ns, recorded_id, name, created, alarms))
                    if ns == namespace && recorded_id == id =>
                {
                    for (alarm, due) in alarms {
                        conn.execute(
                            "INSERT OR IGNORE INTO alarms (namespace, id, name, due_ms, attempts, fire_at_ms)
                             VALUES (?1, ?2, ?3, ?4, 0, ?4)",
                            params![namespace, id.as_bytes().as_slice(), alarm, due],
                        )?;
                    }
                    let last_active = file
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(created, |d| d.as_millis() as i64);
                    conn.execute(
                        "INSERT OR IGNORE INTO actors (namespace, id, name, created_at_ms, last_active_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![namespace, id.as_bytes().as_slice(), name, created, last_active],
                    )?;
                    startup.added += 1;
                }
                _ => startup.unreadable += 1,
            }
        }
    }
    Ok(())
}

type FileIdentity = (String, ActorId, Option<String>, i64, Vec<(String, i64)>);

/// The identity and alarms an actor file records, read without writing to it.
fn read_identity(path: &Path) -> Option<FileIdentity> {
    // Opened the way the runtime opens it, so that reading changes nothing on disk.
    let conn =
        Storage::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, Durability::Process).ok()?;
    let mut stmt = conn
        .prepare("SELECT key, value FROM _burrow_meta WHERE key IN ('namespace', 'id', 'name', 'created_at_ms')")
        .ok()?;
    let rows: Vec<(String, rusqlite::types::Value)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let text = |key: &str| {
        rows.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                rusqlite::types::Value::Text(s) => Some(s.clone()),
                _ => None,
            })
    };
    let created = rows
        .iter()
        .find(|(k, _)| k == "created_at_ms")
        .and_then(|(_, v)| match v {
            rusqlite::types::Value::Integer(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0);
    let alarms = conn
        .prepare("SELECT name, due_ms FROM _burrow_alarms")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .unwrap_or_default();
    Some((
        text("namespace")?,
        text("id")?.parse().ok()?,
        text("name"),
        created,
        alarms,
    ))
}
