//! The alarm changes a patchset carries, read back out of it for the log's own alarm index.

use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::hooks::Action;
use rusqlite::session::ChangesetIter;
use rusqlite::types::ValueRef;

/// The table an actor's alarms live in (`name TEXT PRIMARY KEY, due_ms INTEGER`).
const ALARMS: &str = "_burrow_alarms";

/// Alarms the patchset sets (`Some(due ms)`) or deletes (`None`), by name, in its order.
pub(crate) fn alarm_changes(patchset: &[u8]) -> rusqlite::Result<Vec<(String, Option<i64>)>> {
    let mut input: &[u8] = patchset;
    let reader: &mut dyn std::io::Read = &mut input;
    let mut changes = ChangesetIter::start_strm(&reader)?;
    let mut alarms = Vec::new();
    while let Some(item) = changes.next()? {
        let op = item.op()?;
        if op.table_name() != ALARMS {
            continue;
        }
        let text = |v: ValueRef<'_>| v.as_str().map(str::to_owned).map_err(rusqlite::Error::from);
        // A patchset keeps a row's key among the old values of an update or delete, and all
        // of an insert's values among the new ones.
        match op.code() {
            Action::SQLITE_INSERT => {
                alarms.push((
                    text(item.new_value(0)?)?,
                    Some(item.new_value(1)?.as_i64()?),
                ));
            }
            Action::SQLITE_UPDATE => {
                alarms.push((
                    text(item.old_value(0)?)?,
                    Some(item.new_value(1)?.as_i64()?),
                ));
            }
            Action::SQLITE_DELETE => alarms.push((text(item.old_value(0)?)?, None)),
            _ => {}
        }
    }
    Ok(alarms)
}
