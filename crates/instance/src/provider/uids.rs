//! Sandboxes under uids of their own: which uid a volume (and every machine using it) runs as,
//! and handing folders to it.
//!
//! A volume's uid is the owner of its folder: nothing else records it, so it cannot disagree
//! with the file system. A new volume takes the lowest free uid of the range.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Mutex;

use super::ProviderError;

/// The uids sandboxes run as: `count` of them from `base`. They must belong to no one else on
/// the host (no user, no other service's subordinate-uid range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUids {
    /// The first uid.
    pub base: u32,
    /// How many.
    pub count: u32,
}

impl SandboxUids {
    /// The default range: 65,536 uids from 1,000,000.
    pub const DEFAULT: SandboxUids = SandboxUids {
        base: 1_000_000,
        count: 65_536,
    };

    /// Checks the range: above the system's and people's uids (1,000), below the overflow uid
    /// (65,534 is "nobody" on most systems, so it is refused inside a range) and `u32::MAX`.
    pub fn new(base: u32, count: u32) -> Result<SandboxUids, String> {
        let end = u64::from(base) + u64::from(count);
        if base < 1_000 {
            return Err(format!(
                "the sandbox uid base must be at least 1000, got {base}"
            ));
        }
        if count == 0 {
            return Err("the sandbox uid count must be at least 1".to_owned());
        }
        if end > u64::from(u32::MAX) {
            return Err(format!(
                "sandbox uids {base}..{end} go past the largest uid {}",
                u32::MAX - 1
            ));
        }
        if (u64::from(base)..end).contains(&65_534) {
            return Err(format!(
                "sandbox uids {base}..{end} include 65534, the \"nobody\" uid"
            ));
        }
        Ok(SandboxUids { base, count })
    }

    /// Whether `uid` is one of the range.
    pub fn contains(&self, uid: u32) -> bool {
        uid >= self.base && u64::from(uid) < u64::from(self.base) + u64::from(self.count)
    }
}

/// The uid `volume` runs as: its folder's owner when that is one of `uids`; otherwise (a new
/// volume, or one made before sandboxes had uids) the lowest uid no other volume in
/// `volumes` has, given to the folder and everything in it. `allocating` serialises the
/// choice.
pub(super) fn volume_uid(
    uids: &SandboxUids,
    volumes: &Path,
    volume: &Path,
    allocating: &Mutex<()>,
) -> Result<u32, ProviderError> {
    let _held = allocating.lock().unwrap_or_else(|p| p.into_inner());
    let owner = std::fs::metadata(volume)
        .map_err(|e| ProviderError::failed(&format!("reading {}", volume.display()), e))?
        .uid();
    if uids.contains(owner) {
        return Ok(owner);
    }
    let taken: HashSet<u32> = std::fs::read_dir(volumes)
        .map_err(|e| ProviderError::failed(&format!("listing {}", volumes.display()), e))?
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.uid())
        .filter(|uid| uids.contains(*uid))
        .collect();
    let uid = (uids.base..=uids.base + (uids.count - 1))
        .find(|uid| !taken.contains(uid))
        .ok_or_else(|| {
            ProviderError::Failed(format!(
                "every sandbox uid ({} from {}) is taken",
                uids.count, uids.base
            ))
        })?;
    give(volume, uid)?;
    Ok(uid)
}

/// Makes `uid` (and the group of the same number) own `path` and, for a folder, everything
/// in it. Symbolic links are changed themselves, never followed.
pub(super) fn give(path: &Path, uid: u32) -> Result<(), ProviderError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).map_err(|e| {
        ProviderError::failed(&format!("giving {} to uid {uid}", path.display()), e)
    })?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| ProviderError::failed(&format!("reading {}", path.display()), e))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| ProviderError::failed(&format!("listing {}", path.display()), e))?;
        for entry in entries.flatten() {
            give(&entry.path(), uid)?;
        }
    }
    Ok(())
}

/// Reads a port a sandbox wrote. The file is the sandbox's: it is read without following a
/// link and without blocking (a FIFO would otherwise hang the reader), and only if it is a
/// small regular file.
pub(super) fn read_port(path: &Path) -> Option<u16> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > 16 {
        return None;
    }
    let mut text = String::new();
    file.take(16).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert!(SandboxUids::new(1_000_000, 65_536).is_ok());
        assert!(
            SandboxUids::new(999, 10)
                .unwrap_err()
                .contains("at least 1000")
        );
        assert!(
            SandboxUids::new(60_000, 10_000)
                .unwrap_err()
                .contains("65534")
        );
        assert!(
            SandboxUids::new(u32::MAX - 5, 10)
                .unwrap_err()
                .contains("largest")
        );
        assert!(SandboxUids::new(2_000, 0).is_err());
        let uids = SandboxUids::new(2_000, 3).unwrap();
        assert!(!uids.contains(1_999) && uids.contains(2_000) && uids.contains(2_002));
        assert!(!uids.contains(2_003));
    }

    #[test]
    fn a_port_file_is_read_only_when_it_is_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("port");
        std::fs::write(&port, "8080\n").unwrap();
        assert_eq!(read_port(&port), Some(8080));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&port, &link).unwrap();
        assert_eq!(read_port(&link), None);
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(read_port(&fifo), None);
        std::fs::write(&port, "1".repeat(100)).unwrap();
        assert_eq!(read_port(&port), None);
    }
}
