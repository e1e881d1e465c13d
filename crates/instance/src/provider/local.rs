//! The default provider: each sandbox is a local process running the gateway.
//!
//! Layout under the provider's root (inside the server's data directory):
//!
//! ```text
//! machines/<machine id>/machine.json   labels, volume, pid (+ its start time), port
//! machines/<machine id>/run/port       written by the gateway once it listens
//! machines/<machine id>/gateway.log    the process's stdout and stderr
//! volumes/<volume id>/                 the sandbox's data folder
//! ```
//!
//! With [`SandboxUids`] (the server's default when it runs as root) each volume has a uid of
//! its own, which owns the volume and the machine's `run/` folder and nothing else; the
//! gateway is started as root with `--run-as UID`, enters its folders and becomes that uid
//! before it does anything else, so the folders above may stay closed to it (the data
//! directory is 0700).
//!
//! Each process runs in its own process group and is not killed when the server exits, like a
//! cloud machine: a restarted server lists `machines/` and finds its sandboxes again. A pid is
//! trusted only together with the start time recorded with it, so a recycled pid never passes
//! for a sandbox.

use burrow_state::now_ms;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_identity::{MachineId, SandboxId, UserId, VolumeId};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::probe;
use super::proc::{is_alive, start_time};
use super::uids::{self, SandboxUids};
use super::{
    Labels, Machine, MachineSpec, MachineState, ProviderError, SandboxProvider, is_hex_id,
    new_hex_id,
};

/// How the local provider runs sandboxes.
#[derive(Debug, Clone)]
pub struct LocalProviderConfig {
    /// Where machines and volumes live.
    pub root: PathBuf,
    /// The program and leading arguments that run the gateway (for example `burrow sandbox`);
    /// the provider appends `--data-dir DIR --port-file FILE`.
    pub command: Vec<OsString>,
    /// How long a new process may take to report its port (default 10 s).
    pub port_timeout: Duration,
    /// How long a stopping process gets after SIGTERM before SIGKILL (default 5 s).
    pub stop_timeout: Duration,
    /// How long one health probe may take (default 2 s).
    pub probe_timeout: Duration,
    /// Run each volume's sandboxes under a uid of its own from this range (needs root; default
    /// none: sandboxes run as the server's user).
    pub uids: Option<SandboxUids>,
    /// The address sandboxes listen on, and where they are reached (default `127.0.0.1`; in a
    /// cluster, one the other nodes can reach, on a private network).
    pub host: IpAddr,
}

impl LocalProviderConfig {
    /// Sandboxes under `root`, each run as `command`.
    pub fn new(root: impl Into<PathBuf>, command: Vec<OsString>) -> LocalProviderConfig {
        LocalProviderConfig {
            root: root.into(),
            command,
            port_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            uids: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// Runs each sandbox as a local gateway process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LocalProviderConfig,
    http: reqwest::Client,
    /// One lock per machine: operations on a machine do not interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while a volume's uid is chosen: two new volumes never take the same one.
    allocating: Mutex<()>,
}

/// What `machine.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: MachineId,
    volume_id: VolumeId,
    labels: Labels,
    created_at_ms: i64,
    pid: Option<i32>,
    /// The process's start time in clock ticks since boot, from /proc.
    pid_started: Option<u64>,
    port: Option<u16>,
    /// The address the process listens on (records from before it was kept: loopback).
    #[serde(default = "loopback")]
    host: IpAddr,
    destroying: bool,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

impl Record {
    fn running_pid(&self) -> Option<i32> {
        match (self.pid, self.pid_started) {
            (Some(pid), Some(started)) if is_alive(pid, started) => Some(pid),
            _ => None,
        }
    }

    fn machine(&self) -> Machine {
        let alive = self.running_pid().is_some();
        let state = if self.destroying {
            MachineState::Destroying
        } else if !alive {
            MachineState::Stopped
        } else if self.port.is_some() {
            MachineState::Running
        } else {
            MachineState::Starting
        };
        Machine {
            id: self.id.clone(),
            volume_id: self.volume_id.clone(),
            labels: self.labels.clone(),
            state,
            created_at_ms: self.created_at_ms,
            address: self
                .port
                .filter(|_| alive)
                .map(|p| SocketAddr::new(self.host, p)),
        }
    }
}

/// Ids are `m`/`v` and 32 lower-case hex digits; checked before they become paths.
fn check_id(kind: char, id: &str) -> Result<(), ProviderError> {
    if is_hex_id(id, kind) {
        Ok(())
    } else {
        Err(ProviderError::Invalid(format!(
            "{id:?} is not a local {} id",
            if kind == 'm' { "machine" } else { "volume" }
        )))
    }
}

impl LocalProvider {
    /// A provider keeping its sandboxes under `config.root`.
    pub fn new(config: LocalProviderConfig) -> Result<LocalProvider, ProviderError> {
        if config.command.is_empty() {
            return Err(ProviderError::Invalid(
                "the sandbox command is empty".to_owned(),
            ));
        }
        if config.uids.is_some() && !nix::unistd::Uid::effective().is_root() {
            return Err(ProviderError::Invalid(
                "sandboxes can run under uids of their own only when the server runs as root"
                    .to_owned(),
            ));
        }
        for dir in ["machines", "volumes"] {
            std::fs::create_dir_all(config.root.join(dir)).map_err(|e| {
                ProviderError::failed(&format!("creating {}", config.root.join(dir).display()), e)
            })?;
        }
        let http = reqwest::Client::builder()
            .timeout(config.probe_timeout)
            .no_proxy()
            .build()
            .map_err(|e| ProviderError::failed("building the HTTP client", e))?;
        Ok(LocalProvider {
            inner: Arc::new(Inner {
                config,
                http,
                locks: Mutex::new(HashMap::new()),
                allocating: Mutex::new(()),
            }),
        })
    }

    /// The provider's root folder.
    pub fn root(&self) -> &Path {
        &self.inner.config.root
    }

    /// The pid of the machine's process while it runs.
    pub fn pid(&self, machine_id: &MachineId) -> Option<u32> {
        check_id('m', machine_id.as_str()).ok()?;
        self.read(machine_id.as_str())
            .ok()?
            .running_pid()
            .and_then(|p| u32::try_from(p).ok())
    }

    /// Whether this provider has a record of the machine (running or not).
    pub fn hosts(&self, machine_id: &MachineId) -> bool {
        check_id('m', machine_id.as_str()).is_ok()
            && self
                .machine_dir(machine_id.as_str())
                .join("machine.json")
                .exists()
    }

    /// One health probe of the sandbox at `address`: it answers its health check as the
    /// sandbox `sandbox_id` (not whatever took its port over).
    pub(crate) async fn probe(&self, address: SocketAddr, sandbox_id: &SandboxId) -> bool {
        probe::answers_as(&self.inner.http, address, sandbox_id).await
    }

    /// The folder of a volume.
    pub fn volume_path(&self, volume_id: &VolumeId) -> PathBuf {
        self.inner
            .config
            .root
            .join("volumes")
            .join(volume_id.as_str())
    }

    /// Every machine the provider knows, whoever it belongs to.
    pub fn machines(&self) -> Result<Vec<Machine>, ProviderError> {
        Ok(self.records()?.iter().map(Record::machine).collect())
    }

    /// Stops every running machine (for shutting a test or a whole node down; a server that
    /// merely restarts leaves its sandboxes running). Returns how many were stopped.
    pub async fn stop_all(&self) -> Result<usize, ProviderError> {
        let mut stopped = 0;
        for record in self.records()? {
            if record.running_pid().is_some() {
                self.stop(&record.id).await?;
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    fn machine_dir(&self, id: &str) -> PathBuf {
        self.inner.config.root.join("machines").join(id)
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn read(&self, id: &str) -> Result<Record, ProviderError> {
        let path = self.machine_dir(id).join("machine.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProviderError::NotFound(id.to_owned()));
            }
            Err(e) => {
                return Err(ProviderError::failed(
                    &format!("reading {}", path.display()),
                    e,
                ));
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::failed(&format!("parsing {}", path.display()), e))
    }

    /// Writes the record through a temporary file and a rename, so a reader (or a restarted
    /// server) never sees half of it.
    fn write(&self, record: &Record) -> Result<(), ProviderError> {
        let dir = self.machine_dir(record.id.as_str());
        let tmp = dir.join("machine.json.tmp");
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| ProviderError::failed("encoding a record", e))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, dir.join("machine.json")))
            .map_err(|e| ProviderError::failed(&format!("writing {}", tmp.display()), e))
    }

    fn records(&self) -> Result<Vec<Record>, ProviderError> {
        let dir = self.inner.config.root.join("machines");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ProviderError::failed(&format!("listing {}", dir.display()), e))?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_id('m', &name).is_err() {
                continue;
            }
            match self.read(&name) {
                Ok(record) => records.push(record),
                // Created but not yet recorded, or deleted meanwhile.
                Err(ProviderError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(machine = %name, error = %e, "skipping an unreadable machine record")
                }
            }
        }
        Ok(records)
    }

    /// Runs the gateway for `record` and waits until it reports its port.
    async fn launch(
        &self,
        record: &mut Record,
        env: BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let config = &self.inner.config;
        let dir = self.machine_dir(record.id.as_str());
        let run = dir.join("run");
        std::fs::create_dir_all(&run)
            .map_err(|e| ProviderError::failed("creating the run folder", e))?;
        let port_file = run.join("port");
        let _ = std::fs::remove_file(&port_file);
        let volume = self.volume_path(&record.volume_id);
        let run_as = match &config.uids {
            Some(range) => {
                let volumes = config.root.join("volumes");
                let uid = uids::volume_uid(range, &volumes, &volume, &self.inner.allocating)?;
                uids::give(&run, uid)?;
                Some(uid)
            }
            None => None,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gateway.log"))
            .map_err(|e| ProviderError::failed("opening the gateway log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ProviderError::failed("opening the gateway log", e))?;
        let mut command = tokio::process::Command::new(&config.command[0]);
        command
            .args(&config.command[1..])
            .arg("--data-dir")
            .arg(&volume)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--listen")
            .arg(SocketAddr::new(config.host, 0).to_string())
            .args(
                run_as
                    .iter()
                    .flat_map(|uid| ["--run-as".to_owned(), uid.to_string()]),
            )
            // A machine's environment is its own, not the server's.
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| (OsString::from("PATH"), p)))
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command
            .spawn()
            .map_err(|e| ProviderError::failed(&format!("running {:?}", config.command[0]), e))?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| ProviderError::failed("running the gateway", "it exited at once"))?;
        record.pid = Some(pid);
        record.pid_started = start_time(pid);
        record.port = None;
        record.host = config.host;
        // Reap the process whenever it exits, so that it never lingers as a zombie.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        self.write(record)?;
        let deadline = Instant::now() + config.port_timeout;
        loop {
            if let Some(port) = uids::read_port(&port_file) {
                record.port = Some(port);
                return self.write(record);
            }
            if record.running_pid().is_none() {
                let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(ProviderError::failed(
                    "the sandbox exited while starting",
                    tail,
                ));
            }
            if Instant::now() > deadline {
                return Err(ProviderError::failed(
                    "the sandbox did not report its port",
                    format!("within {:?}", config.port_timeout),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the record's process group: SIGTERM, then SIGKILL after the stop timeout.
    async fn terminate(&self, record: &mut Record) -> Result<(), ProviderError> {
        if let Some(pid) = record.running_pid() {
            let started = record.pid_started.unwrap_or_default();
            let group = Pid::from_raw(pid);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + self.inner.config.stop_timeout;
            while is_alive(pid, started) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if is_alive(pid, started) {
                let _ = killpg(group, Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(5);
                while is_alive(pid, started) {
                    if Instant::now() > deadline {
                        return Err(ProviderError::failed(
                            "stopping the sandbox",
                            format!("pid {pid} survived SIGKILL"),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        record.pid = None;
        record.pid_started = None;
        record.port = None;
        Ok(())
    }
}

impl SandboxProvider for LocalProvider {
    async fn create(&self, spec: MachineSpec) -> Result<Machine, ProviderError> {
        let id: MachineId = new_hex_id('m')
            .parse()
            .map_err(|e| ProviderError::failed("naming a machine", e))?;
        let mut record = Record {
            volume_id: new_hex_id('v')
                .parse()
                .map_err(|e| ProviderError::failed("naming a volume", e))?,
            id,
            labels: spec.labels,
            created_at_ms: now_ms(),
            pid: None,
            pid_started: None,
            port: None,
            host: self.inner.config.host,
            destroying: false,
        };
        std::fs::create_dir_all(self.volume_path(&record.volume_id))
            .map_err(|e| ProviderError::failed("creating the volume", e))?;
        std::fs::create_dir_all(self.machine_dir(record.id.as_str()))
            .map_err(|e| ProviderError::failed("creating the machine", e))?;
        let lock = self.lock(record.id.as_str());
        let _held = lock.lock().await;
        self.write(&record)?;
        self.launch(&mut record, spec.env).await?;
        Ok(record.machine())
    }

    async fn start(
        &self,
        machine_id: &MachineId,
        env: BTreeMap<String, String>,
    ) -> Result<Machine, ProviderError> {
        let machine_id = machine_id.as_str();
        check_id('m', machine_id)?;
        let lock = self.lock(machine_id);
        let _held = lock.lock().await;
        let mut record = self.read(machine_id)?;
        if record.destroying {
            return Err(ProviderError::Invalid(format!(
                "machine {machine_id} is being destroyed"
            )));
        }
        if record.running_pid().is_none() {
            self.launch(&mut record, env).await?;
        }
        Ok(record.machine())
    }

    async fn stop(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        let machine_id = machine_id.as_str();
        check_id('m', machine_id)?;
        let lock = self.lock(machine_id);
        let _held = lock.lock().await;
        let mut record = self.read(machine_id)?;
        self.terminate(&mut record).await?;
        self.write(&record)
    }

    async fn get(&self, machine_id: &MachineId) -> Result<Option<Machine>, ProviderError> {
        let machine_id = machine_id.as_str();
        check_id('m', machine_id)?;
        match self.read(machine_id) {
            Ok(record) => Ok(Some(record.machine())),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        user_id: &UserId,
        sandbox_id: &SandboxId,
    ) -> Result<Vec<Machine>, ProviderError> {
        Ok(self
            .records()?
            .iter()
            .filter(|r| r.labels.user_id == *user_id && r.labels.sandbox_id == *sandbox_id)
            .map(Record::machine)
            .collect())
    }

    async fn healthy(&self, machine_id: &MachineId) -> Result<bool, ProviderError> {
        let machine_id = machine_id.as_str();
        check_id('m', machine_id)?;
        let record = match self.read(machine_id) {
            Ok(r) => r,
            Err(ProviderError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let (Some(_), Some(port)) = (record.running_pid(), record.port) else {
            return Ok(false);
        };
        Ok(self
            .probe(
                SocketAddr::new(record.host, port),
                &record.labels.sandbox_id,
            )
            .await)
    }

    async fn delete_machine(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        let machine_id = machine_id.as_str();
        check_id('m', machine_id)?;
        let lock = self.lock(machine_id);
        let _held = lock.lock().await;
        let mut record = match self.read(machine_id) {
            Ok(r) => r,
            Err(ProviderError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        record.destroying = true;
        self.write(&record)?;
        self.terminate(&mut record).await?;
        match std::fs::remove_dir_all(self.machine_dir(machine_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::failed("deleting the machine", e)),
        }
    }

    async fn delete_volume(&self, volume_id: &VolumeId) -> Result<(), ProviderError> {
        check_id('v', volume_id.as_str())?;
        match std::fs::remove_dir_all(self.volume_path(volume_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::failed("deleting the volume", e)),
        }
    }
}
