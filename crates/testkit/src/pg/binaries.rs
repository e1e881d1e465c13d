//! Finding the PostgreSQL server programs and the user to run them as.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::{Gid, Uid, User};

use super::error::Error;

const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where the server programs are, and whom they run as.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    dir: PathBuf,
    run_as: Option<(Uid, Gid)>,
}

impl Binaries {
    pub(crate) fn find() -> Result<Binaries, Error> {
        let dir = find_dir().ok_or(Error::BinariesNotFound)?;
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(Error::NoPostgresUser)?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        Ok(Binaries { dir, run_as })
    }

    /// The owner that files the server writes to must have.
    pub(crate) fn owner(&self) -> Option<(Uid, Gid)> {
        self.run_as
    }

    /// A command for one of the programs, run as the server's user, in `cwd` (the cluster's
    /// directory: the server user may not be allowed into the test's working directory), with
    /// no standard input.
    pub(crate) fn command(&self, program: &str, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.dir.join(program));
        cmd.current_dir(cwd).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }
}

use std::os::unix::process::CommandExt as _;

fn has_all(dir: &Path) -> bool {
    PROGRAMS.iter().all(|p| dir.join(p).is_file())
}

fn find_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_all(dir));
    on_path.or_else(|| {
        // Debian keeps each major version apart; take the newest that is complete.
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                has_all(&bin).then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}
