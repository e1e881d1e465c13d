//! Moving an actor's unusable file aside: counted, logged, never deleted.

use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::error::{CallError, ErrorKind};
use crate::layout::move_aside;

/// Moves a damaged file (with its -wal and -shm) aside under a timestamped name. Never deletes.
pub(crate) fn quarantine(
    path: &Path,
    reason: &'static str,
    clock: &Clock,
) -> Result<PathBuf, CallError> {
    metrics::counter!("burrow_quarantines_total", "reason" => reason).increment(1);
    let target = move_aside(path, "quarantined", clock.now_ms()).map_err(|e| {
        CallError::new(
            ErrorKind::TransientIo,
            format!("quarantining {}: {e}", path.display()),
        )
    })?;
    tracing::warn!(from = %path.display(), to = %target.display(), reason, "quarantined actor file");
    Ok(target)
}
