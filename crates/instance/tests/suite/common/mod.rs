//! A real instance manager for tests: runtime on a temp dir, embedded SQLite registry, real
//! sandbox processes (this package's `burrow-instance-sandbox` binary). Dropping the harness
//! kills every sandbox process it started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burrow_identity::{ActorName, InstanceId, UserId};
use burrow_instance::provider::MachineState;
use burrow_instance::secrets::ServerKey;
use burrow_instance::{
    InstanceRef, Instances, LifecycleConfig, LocalProvider, LocalProviderConfig, Provision,
    Settings,
};
use burrow_restore::{AnyRegistry, SqliteRegistry};
use burrow_runtime::{Options, Runtime};
use burrow_state::{DebugStatusView, Status};

pub const GATEWAY_SECRET: &[u8] = b"test gateway secret";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub runtime: Option<Runtime>,
    pub instances: Instances<LocalProvider>,
    pub provider: LocalProvider,
    pub registry: AnyRegistry,
    pub key: ServerKey,
    pub lifecycle: LifecycleConfig,
    pub idle: Duration,
}

/// A lifecycle quick enough for tests, with reconcile out of the way unless a test wants it.
pub fn quiet_lifecycle() -> LifecycleConfig {
    LifecycleConfig {
        reconcile_running: Duration::from_secs(3600),
        reconcile_transient: Duration::from_secs(3600),
        reconcile_idle: Duration::from_secs(3600),
        reconcile_jitter: Duration::ZERO,
        health_wait: Duration::from_secs(30),
        health_poll: Duration::from_millis(20),
        ..LifecycleConfig::default()
    }
}

impl Harness {
    pub async fn start(lifecycle: LifecycleConfig) -> Harness {
        Harness::start_with(lifecycle, Duration::from_secs(30)).await
    }

    pub async fn start_with(lifecycle: LifecycleConfig, idle: Duration) -> Harness {
        Harness::build(lifecycle, idle, None).await
    }

    /// A harness whose sandboxes take `boot_delay` to pass their health check. The operator
    /// sets the gateway's `SANDBOX_BOOT_DELAY_MS` in the sandbox command; an instance's own
    /// configuration may not (names starting with `SANDBOX_` are refused).
    pub async fn slow_booting(
        lifecycle: LifecycleConfig,
        idle: Duration,
        boot_delay: Duration,
    ) -> Harness {
        Harness::build(lifecycle, idle, Some(boot_delay)).await
    }

    async fn build(
        lifecycle: LifecycleConfig,
        idle: Duration,
        boot_delay: Option<Duration>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::generate();
        let gateway = env!("CARGO_BIN_EXE_burrow-instance-sandbox").into();
        let command = match boot_delay {
            None => vec![gateway],
            Some(delay) => vec![
                "/usr/bin/env".into(),
                format!("SANDBOX_BOOT_DELAY_MS={}", delay.as_millis()).into(),
                gateway,
            ],
        };
        let provider = LocalProvider::new(LocalProviderConfig::new(
            dir.path().join("sandboxes"),
            command,
        ))
        .unwrap();
        let registry =
            AnyRegistry::Sqlite(SqliteRegistry::open(&dir.path().join("registry.db")).unwrap());
        let (runtime, instances) = open(dir.path(), &registry, &provider, &key, &lifecycle, idle);
        Harness {
            dir,
            runtime: Some(runtime),
            instances,
            provider,
            registry,
            key,
            lifecycle,
            idle,
        }
    }

    /// Shuts the runtime down and opens a new one on the same data dir (a server restart;
    /// sandboxes keep running).
    pub async fn restart(&mut self) {
        self.restart_after(|| {}).await;
    }

    /// Like [`Harness::restart`], running `offline` while no runtime has the files open
    /// (to edit an actor's file as an older version would have left it).
    pub async fn restart_after(&mut self, offline: impl FnOnce()) {
        self.runtime
            .take()
            .unwrap()
            .shutdown(Duration::from_secs(10))
            .await;
        offline();
        let (runtime, instances) = open(
            self.dir.path(),
            &self.registry,
            &self.provider,
            &self.key,
            &self.lifecycle,
            self.idle,
        );
        self.runtime = Some(runtime);
        self.instances = instances;
    }

    pub fn get(&self, name: &ActorName) -> InstanceRef<LocalProvider> {
        self.instances.get(name)
    }

    /// The actor's SQLite file.
    pub fn actor_file(&self, name: &ActorName) -> PathBuf {
        let ns = self.instances.namespace();
        ns.path_of(&ns.id_from_name(&name.to_string()))
    }

    pub async fn debug(&self, name: &ActorName) -> DebugStatusView {
        self.get(name).debug_status().await.unwrap().view
    }

    /// Waits until the instance has `status` (panics after 60 s with the last debug status).
    pub async fn wait_for(&self, name: &ActorName, status: Status) -> DebugStatusView {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = self.debug(name).await;
            if view.status.status == Some(status) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {status:?}: {view:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Running sandbox processes of this harness.
    pub fn running_machines(&self) -> Vec<burrow_identity::MachineId> {
        self.provider
            .machines()
            .unwrap()
            .into_iter()
            .filter(|m| matches!(m.state, MachineState::Running | MachineState::Starting))
            .map(|m| m.id)
            .collect()
    }
}

fn open(
    dir: &Path,
    registry: &AnyRegistry,
    provider: &LocalProvider,
    key: &ServerKey,
    lifecycle: &LifecycleConfig,
    idle: Duration,
) -> (Runtime, Instances<LocalProvider>) {
    let runtime = Runtime::open(Options::new(dir.join("runtime")).idle_timeout(idle)).unwrap();
    let instances = Instances::open(
        &runtime,
        Settings {
            registry: registry.clone(),
            provider: provider.clone(),
            lifecycle: lifecycle.clone(),
            server_key: key.clone(),
            gateway_secret: GATEWAY_SECRET.to_vec(),
        },
    )
    .unwrap();
    (runtime, instances)
}

impl Drop for Harness {
    fn drop(&mut self) {
        // No sandbox outlives the test, whatever happened.
        if let Ok(machines) = self.provider.machines() {
            for m in machines {
                if let Some(pid) = self.provider.pid(&m.id) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

pub fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

pub fn instance_name() -> (InstanceId, ActorName) {
    let id = InstanceId::new_random();
    (id, ActorName::Instance(id))
}

pub fn provision(user_id: &UserId) -> Provision {
    Provision {
        user_id: user_id.clone(),
        org_id: None,
        env_vars: BTreeMap::new(),
        secrets: BTreeMap::new(),
    }
}

/// Whether process `pid` still runs (a zombie does not count).
pub fn process_runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s[s.rfind(')')? + 1..]
                .split_whitespace()
                .next()
                .map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Whether this process holds a descriptor on `path`.
pub fn holds_open(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
}

/// The sandbox's health as its own endpoint reports it.
pub async fn health(address: std::net::SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{address}/_burrow/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
