//! A Podman API service of the test's own: its own storage (`--root`, `--runroot`), its own
//! `containers.conf` and its own socket in a temporary directory, so `cargo test` needs nothing
//! running and tests never see each other's containers, images or volumes.
//!
//! The settings this machine kind needs live here, not in the provider
//! (`shared/research/containers.md`): `runc`, since `crun` refuses cgroups in hybrid mode, and
//! default ulimits lowered to what root may set here (Podman asks for 1,048,576 open files).
//!
//! ```no_run
//! let Some(engine) = burrow_testkit::podman::Engine::start_or_skip("provision") else {
//!     return; // no podman here, and not under CI=true
//! };
//! println!("the Docker-compatible API is on {}", engine.socket().display());
//! ```

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The engine's settings; `{dir}` is the service's own directory. Netavark, not CNI: only its
/// `isolate` option keeps one sandbox's network from reaching another's. Runtime state, volumes
/// and network definitions are kept in `{dir}` too: by default every rootful Podman shares
/// `/run/libpod` and `/etc/containers/networks`, and one service's `system reset` would wipe
/// another's. Subnets come from a pool of small ones away from Podman's default (10.89.0.0/16),
/// so a Podman the machine runs anyway is not in the way.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
tmp_dir = "{dir}/tmp"
volume_path = "{dir}/volumes"
[network]
network_backend = "netavark"
network_config_dir = "{dir}/networks"
default_subnet_pools = [{"base" = "10.128.0.0/16", "size" = 28}]
"#;

/// Where Debian's netavark package puts the network backend Podman runs.
const NETAVARK: &str = "/usr/lib/podman/netavark";
/// Netavark runs it; only the CNI plugins' package brings it in.
const IPTABLES: &str = "/usr/sbin/iptables";
const INSTALL: &str =
    "apt-get install --no-install-recommends podman runc catatonit netavark iptables";

/// How long the service may take to answer on its socket (it usually takes ~0.1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `podman system service`, stopped and wiped (every container, image and volume)
/// when dropped.
///
/// One engine at a time in a test process: engines share the kernel's bridges and firewall, and
/// with several at once a sandbox reached another's gateway that the same test, alone, could not
/// (netavark's setup and teardown in one engine change the isolation rules of all). A second
/// `start` waits until the first engine is dropped.
#[derive(Debug)]
pub struct Engine {
    dir: PathBuf,
    child: Option<Child>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Engine {
    /// Starts a service, or returns `None` after saying why when `podman` is not installed —
    /// except under `CI=true`, where a missing Podman is a failure (CI installs it).
    pub fn start_or_skip(test: &str) -> Option<Engine> {
        let installed = Command::new("podman")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
            && Path::new(NETAVARK).exists()
            && Path::new(IPTABLES).exists();
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: podman, netavark or iptables is not installed, and CI=true ({INSTALL})"
            );
            eprintln!(
                "{test}: skipped, podman is not installed (apt-get install podman runc catatonit)"
            );
            return None;
        }
        Some(Engine::start().unwrap_or_else(|e| panic!("{test}: starting podman: {e}")))
    }

    /// Starts a service in a new temporary directory and waits until its socket answers.
    pub fn start() -> std::io::Result<Engine> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("burrow-podman-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let conf = CONTAINERS_CONF.replace("{dir}", &dir.display().to_string());
        std::fs::write(dir.join("containers.conf"), conf)?;
        let log = std::fs::File::create(dir.join("service.log"))?;
        let mut engine = Engine {
            dir,
            child: None,
            _one_at_a_time: turn,
        };
        let child = engine
            .podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", engine.socket().display()))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        engine.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while UnixStream::connect(engine.socket()).is_err() {
            if let Some(status) = engine
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(std::io::Error::other(format!(
                    "podman system service exited ({status}): {}",
                    engine.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "podman system service did not listen within {READY_TIMEOUT:?}: {}",
                    engine.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(engine)
    }

    /// The service's socket: the Docker Engine API (and Podman's own).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// A `podman` command on this service's storage, for what a test does from outside Burrow
    /// (`podman kill`, `podman volume inspect`).
    pub fn podman(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"));
        command
    }

    /// What the service has written to its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
    }

    /// Stops the service (its containers keep running), as an engine outage would.
    pub fn stop_service(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_service();
        // `system reset` stops and removes every container, unmounts the storage (its root is
        // a mount point of its own) and deletes it: a plain `rm -r` would fail on the mounts.
        let _ = self
            .podman()
            .args(["system", "reset", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
