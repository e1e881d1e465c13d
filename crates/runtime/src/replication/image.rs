//! Full images of an actor's database: taken between commits, written back as its file.

use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, MAIN_DB};

/// The whole database as one byte string (`sqlite3_serialize`), WAL frames included. Inside a
/// transaction it includes that transaction's uncommitted changes: taken just before a commit,
/// it is the state the commit makes.
pub(crate) fn take(conn: &mut Connection) -> rusqlite::Result<Vec<u8>> {
    Ok(conn.serialize(MAIN_DB)?.to_vec())
}

/// Makes `image` the database at `path`: written beside it, synced, renamed over it, and the
/// directory synced. A stale `-wal` beside the old file would be replayed into the image, so it
/// is removed first; the image itself needs no WAL.
pub(crate) fn install(path: &Path, image: &[u8]) -> std::io::Result<()> {
    let wal = path.with_extension("db-wal");
    match std::fs::remove_file(&wal) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let partial = path.with_extension("db-image");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(image)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
