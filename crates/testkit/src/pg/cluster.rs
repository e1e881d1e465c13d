//! One throwaway PostgreSQL cluster: its directory, its server, and the watchdog that removes
//! both when the test process ends.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::binaries::Binaries;
use super::error::Error;
use super::sweep;

/// How many times to pick another port when the one chosen was taken before the server bound it.
const PORT_ATTEMPTS: u32 = 5;

/// Settings for a cluster whose data is thrown away: nothing is worth an fsync.
const SETTINGS: &str = "\
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 16MB
log_min_messages = warning
";

/// Settings for a cluster that must keep what it acknowledged across an immediate restart.
const DURABLE_SETTINGS: &str = "\
listen_addresses = '127.0.0.1'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
shared_buffers = 16MB
log_min_messages = warning
";

/// Runs when the pipe from the test process closes — at exit, after a panic, after SIGKILL —
/// and also when a [`Cluster`] is dropped: shut the server down at once, delete the directory.
/// It ignores the terminal's signals so that a Ctrl-C still leaves the clean-up to it.
const WATCHDOG: &str = r#"
trap '' INT TERM HUP PIPE
while read -r _; do :; done
pidfile="$1/data/postmaster.pid"
pid=$(head -n 1 "$pidfile" 2>/dev/null)
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
  n=0
  while [ -f "$pidfile" ] && kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do
    sleep 0.1; n=$((n + 1))
  done
  [ -f "$pidfile" ] && kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;

/// A local PostgreSQL cluster of one's own, in a temporary directory, on a free loopback port.
///
/// The server runs as soon as [`Cluster::start`] returns. It can be stopped, stopped abruptly
/// and restarted on the same port and data, which is what outage tests need. Dropping the
/// cluster shuts the server down and deletes its directory; so does the end of the test process,
/// however it ends.
///
/// Connect as user `postgres` (trust authentication) to database `postgres`, or create others.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    durable: bool,
    binaries: Binaries,
    running: bool,
    watchdog: Child,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("running", &self.running)
            .finish()
    }
}

impl Cluster {
    /// Creates a cluster (`initdb`) and starts its server; returns once it accepts connections.
    ///
    /// Before the first cluster of a process, clusters left behind by killed test runs are
    /// removed (see [`sweep_stale_clusters`](super::sweep_stale_clusters)).
    pub fn start() -> Result<Cluster, Error> {
        Cluster::start_with(false)
    }

    /// Like [`start`](Cluster::start), but with `fsync` and `synchronous_commit` on: for tests
    /// that restart or kill the server and rely on what it acknowledged before.
    pub fn start_durable() -> Result<Cluster, Error> {
        Cluster::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Cluster, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let binaries = Binaries::find()?;
        let root = sweep::prepare_root()?;
        let dir = root.join(format!(
            "{}-{}",
            sweep::owner_tag(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).map_err(Error::io("creating", &dir))?;
        // The watchdog comes first, so that a failure below leaves nothing behind.
        let watchdog = spawn_watchdog(&dir)?;
        let mut cluster = Cluster {
            dir,
            port: 0,
            durable,
            binaries,
            running: false,
            watchdog,
        };
        if let Some((uid, gid)) = cluster.binaries.owner() {
            std::os::unix::fs::chown(&cluster.dir, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(Error::io("handing to the postgres user", &cluster.dir))?;
        }
        cluster.initdb()?;
        let mut attempt = 1;
        loop {
            cluster.port = free_port()?;
            cluster.write_settings()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(_) if attempt < PORT_ATTEMPTS && cluster.port_was_taken() => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The TCP port the server listens on (on 127.0.0.1); it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data in `data/`, server log in `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server was last started rather than stopped.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// A connection URL for database `dbname` as user `postgres`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Connects to database `dbname`; the connection is driven by a task on the current tokio
    /// runtime.
    pub async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client, Error> {
        super::shared::connect(&self.url(dbname)).await
    }

    /// Stops the server the clean way (`pg_ctl stop -m fast`): sessions are ended, data is
    /// checkpointed. Returns once the server has exited.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): no checkpoint, recovery
    /// runs at the next start.
    pub fn stop_immediately(&mut self) -> Result<(), Error> {
        self.pg_ctl_stop("immediate")
    }

    /// Freezes the server and every one of its processes (SIGSTOP): connections stay open but
    /// nothing answers, as with a hung host. Undo with [`resume`](Cluster::resume).
    pub fn pause(&self) -> Result<(), Error> {
        self.signal_all(nix::sys::signal::Signal::SIGSTOP)
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), Error> {
        self.signal_all(nix::sys::signal::Signal::SIGCONT)
    }

    /// Sends `signal` to the postmaster and its children.
    fn signal_all(&self, signal: nix::sys::signal::Signal) -> Result<(), Error> {
        let pidfile = self.data().join("postmaster.pid");
        let text = fs::read_to_string(&pidfile).map_err(Error::io("reading", &pidfile))?;
        let postmaster: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| Error::Command {
                what: "reading postmaster.pid".into(),
                detail: format!("no pid in {}", pidfile.display()),
            })?;
        let mut pids = vec![postmaster];
        for entry in fs::read_dir("/proc")
            .map_err(Error::io("listing", "/proc"))?
            .flatten()
        {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // Field 4 of /proc/<pid>/stat, after the parenthesised name, is the parent's pid.
            let parent = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat[stat.rfind(')')? + 1..]
                        .split_whitespace()
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                });
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
        Ok(())
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self) -> Result<(), Error> {
        let mut cmd = self.binaries.command("initdb", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        self.run("initdb", cmd)?;
        let conf = self.data().join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(b"\ninclude = 'burrow-testkit.conf'\n"))
            .map_err(Error::io("appending to", conf))
    }

    fn write_settings(&self) -> Result<(), Error> {
        let path = self.data().join("burrow-testkit.conf");
        let socket_dir = self.dir.display().to_string().replace('\'', "''");
        let settings = if self.durable {
            DURABLE_SETTINGS
        } else {
            SETTINGS
        };
        let text = format!(
            "{settings}port = {}\nunix_socket_directories = '{socket_dir}'\n",
            self.port
        );
        fs::write(&path, text).map_err(Error::io("writing", &path))?;
        // Read by the server user: initdb made the data directory theirs with mode 0700.
        if let Some((uid, gid)) = self.binaries.owner() {
            std::os::unix::fs::chown(&path, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(Error::io("handing to the postgres user", &path))?;
        }
        Ok(())
    }

    fn pg_ctl_start(&mut self) -> Result<(), Error> {
        let mut cmd = self.binaries.command("pg_ctl", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"]);
        self.run("pg_ctl start", cmd)?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<(), Error> {
        let mut cmd = self.binaries.command("pg_ctl", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        self.run("pg_ctl stop", cmd)?;
        self.running = false;
        Ok(())
    }

    /// Runs a server program with its output in a file, never a pipe: the server it starts
    /// inherits the descriptors, and a pipe would keep whoever reads it waiting for its end.
    fn run(&self, what: &str, mut cmd: Command) -> Result<(), Error> {
        let out_path = self.dir.join("commands.out");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .map_err(Error::io("opening", &out_path))?;
        let err = out.try_clone().map_err(Error::io("opening", &out_path))?;
        let status = cmd
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(Error::io("running", what))?;
        if status.success() {
            return Ok(());
        }
        Err(Error::Command {
            what: format!("{what} in {}", self.dir.display()),
            detail: format!(
                "{status}\n--- output ---\n{}\n--- server log ---\n{}",
                tail(&out_path),
                tail(&self.dir.join("postgres.log"))
            ),
        })
    }

    fn port_was_taken(&self) -> bool {
        let log = fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        log.contains("could not bind") || log.contains("Address already in use")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the pipe is the watchdog's signal; waiting makes the clean-up finish before
        // the test goes on.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

fn spawn_watchdog(dir: &Path) -> Result<Child, Error> {
    Command::new("sh")
        .args(["-c", WATCHDOG, "burrow-testkit-watchdog"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a runner that kills the test's group leaves it to clean up.
        .process_group(0)
        .spawn()
        .map_err(Error::io("starting the watchdog (sh) for", dir))
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::io("finding a free port on", "127.0.0.1"))
}

/// The last lines of a file, for error messages.
fn tail(path: &Path) -> String {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return format!("({}: {e})", path.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
