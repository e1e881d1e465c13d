//! The actor's file in replicated mode: the recording of each transaction's changes, what the
//! commit ships to the log, and the log position the file records.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rusqlite::{Connection, OptionalExtension, params};

use super::Storage;
use crate::replication::capture::Recorder;
use crate::replication::{ReplicationError, alarms, image, shape};
use crate::turn_log::{AlarmUpdate, Payload, Position};

self_cell::self_cell!(
    /// A recording borrows the connection it records, and lives from `BEGIN` to the commit.
    struct Recording {
        owner: Rc<Connection>,
        #[not_covariant]
        dependent: Recorder,
    }
);

/// Where this activation appends: its epoch, and the log's head as of its last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The log's generation when the actor was claimed ([`TurnLog::generation`]).
    ///
    /// [`TurnLog::generation`]: crate::turn_log::TurnLog::generation
    pub generation: u64,
    pub epoch: u64,
    pub position: Position,
    /// Patchset entries, and their bytes, since the latest image (bytes counted from this
    /// activation's appends only).
    pub since_image: (u64, u64),
}

/// The replicated state of an open file.
#[derive(Default)]
pub(super) struct Replica {
    recording: RefCell<Option<Recording>>,
    /// Set once the activation has claimed the actor; `None` outside replicated mode.
    cursor: Cell<Option<Cursor>>,
}

/// The log position a file records (`None` for a file that never joined a log).
pub(crate) fn recorded_position(conn: &Connection) -> rusqlite::Result<Option<Position>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT (SELECT value FROM _burrow_meta WHERE key = 'log_seq'),
                    (SELECT value FROM _burrow_meta WHERE key = 'log_hash')
             WHERE EXISTS (SELECT 1 FROM _burrow_meta WHERE key = 'log_seq')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(seq, hash)| {
        Some(Position {
            seq: u64::try_from(seq).ok()?,
            hash: hash.try_into().ok()?,
        })
    }))
}

/// Records `position` in the file, in the open transaction (it commits with the entry's
/// changes, or with nothing if they roll back).
pub(crate) fn record_position(conn: &Connection, position: Position) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO _burrow_meta (key, value) VALUES ('log_seq', ?1), ('log_hash', ?2)",
    )?
    .execute(params![position.seq as i64, &position.hash[..]])
    .map(drop)
}

impl Storage {
    /// Where this activation appends, once it has claimed the actor.
    pub(crate) fn cursor(&self) -> Option<Cursor> {
        self.replica.cursor.get()
    }

    pub(crate) fn set_cursor(&self, cursor: Cursor) {
        self.replica.cursor.set(Some(cursor));
    }

    /// Starts recording the transaction just begun, in replicated mode.
    pub(super) fn start_recording(&self) -> rusqlite::Result<()> {
        if self.cursor().is_none() {
            return Ok(());
        }
        let recording = self.run_internal(|_| {
            Recording::try_new(self.conn.clone(), |conn| Recorder::start(conn))
        })?;
        *self.replica.recording.borrow_mut() = Some(recording);
        Ok(())
    }

    pub(super) fn stop_recording(&self) {
        self.replica.recording.borrow_mut().take();
    }

    /// What the open transaction ships to the log: its patchset, or an image of the whole
    /// database when it changed the schema, or nothing when it changed nothing — with the
    /// alarm changes it holds. Ends the recording; the transaction stays open. A schema change
    /// that made a table the log cannot follow is refused, naming the table.
    ///
    /// With `image_due`, a commit that changed something ships an image even without a schema
    /// change (the periodic snapshot that bounds how much of the log a rebuild replays).
    /// Images over `max_image` are refused when required ([`ReplicationError::ImageTooLarge`])
    /// and skipped when only due (the patchset ships instead).
    pub(crate) fn take_changes(
        &mut self,
        image_due: bool,
        max_image: u64,
    ) -> Result<Option<(Payload, AlarmUpdate)>, ReplicationError> {
        let Some(mut recording) = self.replica.recording.borrow_mut().take() else {
            debug_assert!(false, "a replicated commit was recorded from its BEGIN");
            return Err(ReplicationError::Mismatch(
                "the transaction was not recorded".into(),
            ));
        };
        // The session reads the tables it recorded, the runtime's own among them.
        let capture = self.run_internal(|_| {
            recording.with_dependent_mut(|conn, recorder| recorder.finish(conn))
        })?;
        drop(recording);
        if capture.schema_changed {
            self.run_internal(shape::check)?;
            let alarms = AlarmUpdate::Replace(self.alarm_rows()?);
            let conn = Rc::get_mut(&mut self.conn).expect("the recording was dropped");
            let image = image::take(conn)?;
            if image.len() as u64 > max_image {
                return Err(ReplicationError::ImageTooLarge(image.len()));
            }
            return Ok(Some((Payload::Image(image), alarms)));
        }
        if capture.patchset.is_empty() {
            return Ok(None);
        }
        if image_due {
            let alarms = AlarmUpdate::Replace(self.alarm_rows()?);
            let conn = Rc::get_mut(&mut self.conn).expect("the recording was dropped");
            let image = image::take(conn)?;
            if image.len() as u64 <= max_image {
                return Ok(Some((Payload::Image(image), alarms)));
            }
            metrics::counter!("burrow_log_images_skipped_total").increment(1);
            tracing::warn!(
                bytes = image.len(),
                max_image,
                "an actor's periodic image is over the limit; shipping its patchset"
            );
        }
        let changes = alarms::alarm_changes(&capture.patchset)?;
        let alarms = if changes.is_empty() {
            AlarmUpdate::Unchanged
        } else {
            AlarmUpdate::Changes(changes)
        };
        Ok(Some((Payload::Patchset(capture.patchset), alarms)))
    }

    /// Begins a transaction that is not recorded (the runtime's own writes, such as the log's
    /// first entry).
    pub(crate) fn begin_unrecorded(&self) -> rusqlite::Result<()> {
        self.control("BEGIN")
    }

    /// The whole database as an image (for the first entry of a log), in the open transaction.
    pub(crate) fn image(&mut self) -> rusqlite::Result<Vec<u8>> {
        self.stop_recording();
        let conn = Rc::get_mut(&mut self.conn).expect("no recording holds the connection");
        image::take(conn)
    }

    /// Records `position` in the file as part of the open transaction.
    pub(crate) fn record_position(&self, position: Position) -> rusqlite::Result<()> {
        self.run_internal(|c| record_position(c, position))
    }
}
