//! Reads of the catalog: actors, namespaces, the alarm index and the dead-letter list.

use rusqlite::{Connection, OptionalExtension, params};

use super::{ActorRecord, AlarmRecord, DeadAlarm, QuarantinedFile};
use crate::clock::{from_ms, ms_duration};
use crate::id::ActorId;

pub(crate) fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<ActorRecord> {
    Ok(ActorRecord {
        namespace: row.get(0)?,
        id: id_from_column(row, 1)?,
        name: row.get(2)?,
        created_at: from_ms(row.get(3)?),
        last_active: from_ms(row.get(4)?),
    })
}

/// Up to `limit` actors of `namespace` with ids after `after`, in id order.
pub(crate) fn list(
    conn: &Connection,
    namespace: &str,
    after: Option<ActorId>,
    limit: usize,
) -> rusqlite::Result<Vec<ActorRecord>> {
    let after = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
    let mut stmt = conn.prepare_cached(
        "SELECT namespace, id, name, created_at_ms, last_active_ms FROM actors
         WHERE namespace = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    stmt.query_map(params![namespace, after, limit as i64], record)?
        .collect()
}

pub(crate) fn get(
    conn: &Connection,
    namespace: &str,
    id: &ActorId,
) -> rusqlite::Result<Option<ActorRecord>> {
    conn.prepare_cached(
        "SELECT namespace, id, name, created_at_ms, last_active_ms FROM actors
         WHERE namespace = ?1 AND id = ?2",
    )?
    .query_row(params![namespace, id.as_bytes().as_slice()], record)
    .optional()
}

pub(crate) fn count(conn: &Connection, namespace: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM actors WHERE namespace = ?1")?
        .query_row([namespace], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn id_from_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<ActorId> {
    let id: Vec<u8> = row.get(index)?;
    ActorId::from_bytes(&id).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Blob,
            "actor id is not 32 bytes".into(),
        )
    })
}

fn alarm_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRecord> {
    Ok(AlarmRecord {
        namespace: row.get(0)?,
        id: id_from_column(row, 1)?,
        name: row.get(2)?,
        due: from_ms(row.get(3)?),
        attempts: row.get(4)?,
        fire_at: from_ms(row.get(5)?),
        last_error: row.get(6)?,
        backoff: ms_duration(row.get(7)?),
    })
}

const ALARM_COLUMNS: &str =
    "namespace, id, name, due_ms, attempts, fire_at_ms, last_error, backoff_ms";

/// Alarms due by `now` (at most `limit`, earliest first), and the next fire time after `now`.
pub(crate) fn due_alarms(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<AlarmRecord>, Option<i64>)> {
    let due = conn
        .prepare_cached(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE fire_at_ms <= ?1 ORDER BY fire_at_ms LIMIT ?2"
        ))?
        .query_map(params![now, limit as i64], alarm_record)?
        .collect::<Result<Vec<_>, _>>()?;
    let next = conn
        .prepare_cached("SELECT min(fire_at_ms) FROM alarms WHERE fire_at_ms > ?1")?
        .query_row([now], |r| r.get(0))?;
    Ok((due, next))
}

pub(crate) fn alarms_of(
    conn: &Connection,
    namespace: &str,
    id: &ActorId,
) -> rusqlite::Result<Vec<AlarmRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE namespace = ?1 AND id = ?2 ORDER BY name"
    ))?
    .query_map(params![namespace, id.as_bytes().as_slice()], alarm_record)?
    .collect()
}

pub(crate) fn dead_alarms(conn: &Connection, namespace: &str) -> rusqlite::Result<Vec<DeadAlarm>> {
    conn.prepare_cached(
        "SELECT namespace, id, name, due_ms, attempts, last_error, dead_at_ms FROM dead_alarms
         WHERE namespace = ?1 ORDER BY dead_at_ms, rowid",
    )?
    .query_map([namespace], |row| {
        Ok(DeadAlarm {
            namespace: row.get(0)?,
            id: id_from_column(row, 1)?,
            name: row.get(2)?,
            due: from_ms(row.get(3)?),
            attempts: row.get(4)?,
            last_error: row.get(5)?,
            dead_at: from_ms(row.get(6)?),
        })
    })?
    .collect()
}

pub(crate) fn quarantined(
    conn: &Connection,
    namespace: &str,
) -> rusqlite::Result<Vec<QuarantinedFile>> {
    conn.prepare_cached(
        "SELECT namespace, id, reason, moved_to, at_ms FROM quarantined
         WHERE namespace = ?1 ORDER BY at_ms, rowid",
    )?
    .query_map([namespace], |row| {
        Ok(QuarantinedFile {
            namespace: row.get(0)?,
            id: id_from_column(row, 1)?,
            reason: row.get(2)?,
            moved_to: std::path::PathBuf::from(row.get::<_, String>(3)?),
            at: from_ms(row.get(4)?),
        })
    })?
    .collect()
}

pub(crate) fn namespaces(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT namespace FROM actors ORDER BY namespace")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}
