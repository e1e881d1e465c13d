//! The data directory's layout, and the file operations that keep it safe: where each file
//! lives, creating folders durably, and moving damaged files aside (never deleting them).
//!
//! ```text
//! <data dir>/LOCK                     held (flock) by the one runtime using the directory
//! <data dir>/catalog.db               the catalog (derived data; rebuilt from the actor files)
//! <data dir>/actors/<namespace>/<xx>/<64 hex>.db   one actor (plus its -wal)
//! ```

use std::io;
use std::path::{Path, PathBuf};

use crate::durability::Durability;
use crate::error::RuntimeError;
use crate::id::ActorId;

/// The catalog's file name inside the data directory.
pub(crate) const CATALOG_FILE: &str = "catalog.db";
/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// SQLite's companion files of a database in WAL mode.
pub(crate) const SIDE_SUFFIXES: [&str; 2] = ["-wal", "-shm"];

/// `<data dir>/actors`.
pub(crate) fn actors_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("actors")
}

/// `<data dir>/actors/<namespace>`.
pub(crate) fn namespace_dir(data_dir: &Path, namespace: &str) -> PathBuf {
    actors_dir(data_dir).join(namespace)
}

/// `<namespace dir>/<first two hex digits>/<64 hex digits>.db`: 256 sub-folders keep each
/// folder small (about 4,000 files at a million actors).
pub(crate) fn actor_path(namespace_dir: &Path, id: &ActorId) -> PathBuf {
    let hex = id.to_string();
    namespace_dir.join(&hex[..2]).join(format!("{hex}.db"))
}

/// Whether a file name is an actor's database (`<64 hex>.db`), and its id.
pub(crate) fn actor_file_id(file_name: &str) -> Option<ActorId> {
    file_name.strip_suffix(".db")?.parse().ok()
}

/// `path` with a suffix appended to its file name (`x.db` → `x.db-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Namespace names become folder names: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub(crate) fn validate_namespace(name: &str) -> Result<(), RuntimeError> {
    let invalid = |reason| RuntimeError::InvalidNamespace {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("it must be 1 to 64 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "only lower-case ASCII letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

/// Creates a namespace's folder; in machine mode, makes its entry (and `actors/`'s) durable.
pub(crate) fn create_namespace_dir(
    data_dir: &Path,
    namespace: &str,
    durability: Durability,
) -> io::Result<PathBuf> {
    let dir = namespace_dir(data_dir, namespace);
    std::fs::create_dir_all(&dir)?;
    if durability == Durability::Machine {
        sync_dir(&actors_dir(data_dir))?;
        sync_dir(data_dir)?;
    }
    Ok(dir)
}

/// Creates the sub-folder an actor's file goes in; in machine mode, makes the new folder's
/// entry durable too.
pub(crate) fn create_actor_dir(actor_path: &Path, durability: Durability) -> io::Result<()> {
    let dir = actor_path.parent().expect("actor paths have a folder");
    match std::fs::create_dir(dir) {
        Ok(()) if durability == Durability::Machine => {
            sync_dir(dir.parent().expect("actor folders have a parent"))
        }
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fsyncs a folder, so that entries created in it survive an OS crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Fsyncs a file and the folder that holds it.
pub(crate) fn sync_file_and_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Renames a database file (with its -wal and -shm) to `<file>.<label>-<stamp>`, adding a
/// counter when that name is taken. Never deletes. Returns the new path.
pub(crate) fn move_aside(path: &Path, label: &str, stamp: i64) -> io::Result<PathBuf> {
    let mut target = with_suffix(path, &format!(".{label}-{stamp}"));
    let mut n = 0;
    while target.exists() {
        n += 1;
        target = with_suffix(path, &format!(".{label}-{stamp}-{n}"));
    }
    for suffix in SIDE_SUFFIXES {
        let side = with_suffix(path, suffix);
        if side.exists() {
            std::fs::rename(&side, with_suffix(&target, suffix))?;
        }
    }
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// Removes a database file and its -wal and -shm; returns whether any of them existed.
pub(crate) fn remove_database(path: &Path) -> io::Result<bool> {
    let mut existed = false;
    for file in [path.to_owned()]
        .into_iter()
        .chain(SIDE_SUFFIXES.iter().map(|s| with_suffix(path, s)))
    {
        match std::fs::remove_file(&file) {
            Ok(()) => existed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
        }
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_aside_keeps_every_file_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        for (file, body) in [(&db, "db"), (&with_suffix(&db, "-wal"), "wal")] {
            std::fs::write(file, body).unwrap();
        }
        let first = move_aside(&db, "quarantined", 7).unwrap();
        assert_eq!(first, dir.path().join("a.db.quarantined-7"));
        assert_eq!(
            std::fs::read_to_string(with_suffix(&first, "-wal")).unwrap(),
            "wal"
        );
        std::fs::write(&db, "again").unwrap();
        let second = move_aside(&db, "quarantined", 7).unwrap();
        assert_eq!(second, dir.path().join("a.db.quarantined-7-1"));
        assert_eq!(std::fs::read_to_string(first).unwrap(), "db");
        assert!(!db.exists());
    }
}
