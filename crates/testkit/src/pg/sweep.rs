//! Finding and removing clusters whose test process is gone.
//!
//! A cluster's directory is named `<pid>-<start time>-<n>` after the process that owns it, the
//! start time (from `/proc/<pid>/stat`) telling a live owner from a later process that reuses
//! its pid.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid};

use super::error::Error;

/// The directory that holds every cluster of this OS user.
pub(crate) fn root() -> PathBuf {
    std::env::temp_dir().join(format!("burrow-testkit-{}", Uid::effective()))
}

/// Creates the root directory if needed and, once per process, sweeps it.
pub(crate) fn prepare_root() -> Result<PathBuf, Error> {
    static SWEPT: Once = Once::new();
    let root = root();
    fs::create_dir_all(&root).map_err(Error::io("creating", &root))?;
    // The server user must be able to reach its cluster's directory inside.
    fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(Error::io("setting permissions of", &root))?;
    SWEPT.call_once(|| {
        sweep_stale_clusters();
    });
    Ok(root)
}

/// This process's tag, the prefix of its clusters' directory names.
pub(crate) fn owner_tag() -> String {
    let pid = std::process::id();
    format!("{pid}-{}", start_time(pid).unwrap_or(0))
}

/// The start time of a process in clock ticks since boot, or `None` if there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn owner_alive(dir_name: &str) -> bool {
    let mut parts = dir_name.splitn(3, '-');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// Removes every cluster whose owning test process no longer runs: shuts its server down if it
/// is still up, then deletes its directory. Returns how many were removed.
///
/// Runs by itself before the first cluster of each process; a test that kills a process owning
/// clusters may call it directly.
pub fn sweep_stale_clusters() -> usize {
    let Ok(entries) = fs::read_dir(root()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_alive(&name) {
            continue;
        }
        let dir = entry.path();
        stop_postmaster(&dir);
        // Another sweeper or the cluster's own watchdog may be removing it at the same time.
        match fs::remove_dir_all(&dir) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("burrow-testkit: cannot remove {}: {e}", dir.display()),
        }
    }
    removed
}

fn stop_postmaster(dir: &Path) {
    let pidfile = dir.join("data").join("postmaster.pid");
    let Some(pid) = fs::read_to_string(&pidfile)
        .ok()
        .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok())
    else {
        return;
    };
    // Only signal a process that is a PostgreSQL server: the pid may have been reused.
    let is_postgres = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("postgres"))
        .unwrap_or(false);
    if !is_postgres {
        return;
    }
    let pid = Pid::from_raw(pid);
    if kill(pid, Signal::SIGQUIT).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pidfile.exists() && kill(pid, None).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if pidfile.exists() && kill(pid, None).is_ok() {
        let _ = kill(pid, Signal::SIGKILL);
    }
}
