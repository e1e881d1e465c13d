//! Burrow's host server: the instance manager over HTTP.
//!
//! - `/api/platform/*` — the internal API (header `x-internal-api-key`);
//! - `/api/user/*` — a user's own instances (bearer token);
//! - `/api/admin/*` — any instance (admin token);
//! - `/i/{instanceId}/…` — a reverse proxy (HTTP and WebSocket) to the instance's sandbox;
//! - `/console` — the operators' web console (over the admin API);
//! - `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus).
//!
//! Every route that takes an instance id checks, in order: authentication (401/403), input
//! (400), existence and ownership (404, identical for "missing" and "someone else's" on user
//! routes), then state (409). Errors are JSON `{"error": "...", "details"?: ...}`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = burrow_server::ServerConfig::new("./burrow-data");
//! let server = burrow_server::Server::start(config).await?;
//! println!("listening on http://{}", server.address());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod admin_lists;
mod app;
pub mod cluster;
mod console;
mod error;
mod extract;
mod health;
mod internal;
mod keys;
mod limits;
mod lookups;
pub mod machines;
pub mod openapi;
mod paging;
pub mod peers;
mod platform;
mod proxy;
mod requests;
mod resolve;
mod serve;
mod state;
pub mod telemetry;
#[cfg(feature = "faults")]
mod test_routes;
pub mod tokens;
mod user;
mod views;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burrow_instance::provider::SandboxUids;
use burrow_instance::{Instances, LifecycleConfig, LocalProvider, LocalProviderConfig, Settings};
use burrow_restore::AnyRegistry;
use burrow_runtime::{Durability, Options, Runtime};

pub use error::ApiError;
pub use keys::{KEYS_FILE, KeyError, KeyOverrides, Keys, MIN_SECRET_BYTES};
pub use limits::HttpLimits;

/// Everything `burrow serve` can be told. Its `Debug` shows no secret: the keys only as
/// given or not, the database URL not at all (it may hold a password).
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The data directory: actors, catalog, embedded registry, sandboxes, generated keys.
    pub data_dir: PathBuf,
    /// A PostgreSQL registry; the embedded SQLite registry when `None`.
    pub database_url: Option<String>,
    /// How long one registry operation may take.
    pub registry_timeout: Duration,
    /// Secrets given explicitly.
    pub keys: KeyOverrides,
    /// The program (and leading arguments) that runs a sandbox's gateway.
    pub sandbox_command: Vec<OsString>,
    /// Shard threads (`None`: one per core).
    pub shards: Option<usize>,
    /// Most actors open at once (`None`: the runtime's default).
    pub max_resident: Option<usize>,
    /// An idle actor is closed after this long.
    pub idle_timeout: Duration,
    /// Lifecycle and reconcile timing.
    pub lifecycle: LifecycleConfig,
    /// What an acknowledged write survives (`process` by default).
    pub durability: Durability,
    /// How far back, in replicated mode, the log keeps every actor's history (older entries
    /// are compacted away, keeping an image at or before each point inside the window).
    pub log_retention: Duration,
    /// What one client may hold of the server.
    pub limits: HttpLimits,
    /// The uids sandboxes run under, one per volume (`None`: the server's own). The default
    /// is [`SandboxUids::DEFAULT`] when the server runs as root, none otherwise.
    pub sandbox_uids: Option<SandboxUids>,
    /// The address sandboxes listen on and are reached at (default `127.0.0.1`).
    pub sandbox_host: std::net::IpAddr,
    /// Run as a node of a cluster (needs replicated durability and PostgreSQL).
    pub cluster: Option<cluster::ClusterConfig>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<given>"),
            )
            .field("registry_timeout", &self.registry_timeout)
            .field("keys", &self.keys)
            .field("sandbox_command", &self.sandbox_command)
            .field("shards", &self.shards)
            .field("max_resident", &self.max_resident)
            .field("idle_timeout", &self.idle_timeout)
            .field("lifecycle", &self.lifecycle)
            .field("durability", &self.durability)
            .field("limits", &self.limits)
            .field("sandbox_uids", &self.sandbox_uids)
            .field("sandbox_host", &self.sandbox_host)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:8787, the embedded registry, sandboxes run as `<this program>
    /// sandbox`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        let program = std::env::current_exe().map_or_else(|_| OsString::from("burrow"), Into::into);
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: data_dir.into(),
            database_url: None,
            registry_timeout: burrow_restore::DEFAULT_TIMEOUT,
            keys: KeyOverrides::default(),
            sandbox_command: vec![program, OsString::from("sandbox")],
            shards: None,
            max_resident: None,
            idle_timeout: Duration::from_secs(30),
            lifecycle: LifecycleConfig::default(),
            durability: Durability::Process,
            log_retention: Duration::from_secs(24 * 3600),
            limits: HttpLimits::default(),
            sandbox_uids: nix::unistd::Uid::effective()
                .is_root()
                .then_some(SandboxUids::DEFAULT),
            sandbox_host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            cluster: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The secrets could not be resolved.
    #[error("secrets: {0}")]
    Keys(#[from] KeyError),
    /// The runtime could not open the data directory.
    #[error("runtime: {0}")]
    Runtime(#[from] burrow_runtime::RuntimeError),
    /// The registry could not be opened.
    #[error("registry: {0}")]
    Registry(#[from] burrow_restore::RegistryError),
    /// The sandbox provider could not be set up.
    #[error("sandbox provider: {0}")]
    Provider(#[from] burrow_instance::provider::ProviderError),
    /// `--durability replicated` without a PostgreSQL database to keep the log in.
    #[error(
        "--durability replicated needs PostgreSQL: give --database-url (BURROW_DATABASE_URL); a log on the same disk as the actors would protect nothing"
    )]
    ReplicatedNeedsPostgres,
    /// `--cluster` without replicated durability: a node's actors must survive its loss.
    #[error(
        "--cluster needs --durability replicated (it is the default with --cluster): another node can only take over what the log holds"
    )]
    ClusterNeedsReplicated,
    /// The cluster secret is missing or too short.
    #[error(
        "--cluster needs BURROW_CLUSTER_SECRET (or --cluster-secret), the same on every node, at least {} bytes",
        cluster::MIN_SECRET_BYTES
    )]
    ClusterSecret,
    /// Cluster mode could not be set up.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The replicated log could not be opened.
    #[error("the replicated log: {0}")]
    Log(burrow_runtime::turn_log::LogError),
    /// The listening socket could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates the data directory (and missing parents) private to this user, 0700: the actors,
/// catalog, registry and keys in it are nobody else's business. An existing directory keeps
/// its mode; a looser one is reported.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:04o}"),
            "the data directory is accessible to other users; `chmod 700` it"
        );
    }
    Ok(())
}

/// A running server.
pub struct Server {
    address: SocketAddr,
    runtime: Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
    /// The replicated log's compactor, in replicated mode.
    compactor: Option<tokio::task::JoinHandle<()>>,
    /// This node's membership, in cluster mode.
    node: Option<Arc<burrow_log_postgres::membership::Node>>,
    /// Cluster tasks that end with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Closes the runtime's idle actors when the node loses its lease (their claims are over;
/// other nodes may claim them at once) and again when it has joined under a new incarnation
/// (actors that were in a turn at the loss).
async fn close_on_lease_loss(node: Arc<burrow_log_postgres::membership::Node>, runtime: Runtime) {
    use burrow_log_postgres::membership::LeaseState;
    let (mut leases, mut incarnations) = (node.leases(), node.incarnations());
    drop(node);
    loop {
        if leases.wait_for(|s| *s == LeaseState::Lost).await.is_err() {
            return;
        }
        let closed = runtime.close_idle().await;
        tracing::warn!(closed, "the node lost its lease: closed its actors");
        if incarnations.changed().await.is_err() {
            return;
        }
        let closed = runtime.close_idle().await;
        tracing::warn!(
            closed,
            "the node joined again: closed the actors left from before"
        );
    }
}

/// How often the replicated log is compacted.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

impl Server {
    /// Opens the data directory, the registry and the runtime, and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        create_private_dir(&config.data_dir).map_err(|e| {
            StartError::Keys(KeyError::Io {
                path: config.data_dir.clone(),
                source: e,
            })
        })?;
        let replicated = config.durability == Durability::Replicated;
        if let Some(cluster) = &config.cluster {
            if !replicated {
                return Err(StartError::ClusterNeedsReplicated);
            }
            if cluster.secret.len() < cluster::MIN_SECRET_BYTES {
                return Err(StartError::ClusterSecret);
            }
        }
        let keys = if replicated {
            Keys::given(&config.keys)?
        } else {
            Keys::resolve(&config.data_dir, &config.keys)?
        };
        let turn_log = match (replicated, config.database_url.as_deref()) {
            (false, _) => None,
            (true, None) => return Err(StartError::ReplicatedNeedsPostgres),
            (true, Some(url)) => Some(
                match &config.cluster {
                    Some(cluster) => {
                        burrow_log_postgres::PgTurnLog::connect_for_node(
                            url,
                            config.registry_timeout,
                            cluster.lease,
                        )
                        .await
                    }
                    None => {
                        burrow_log_postgres::PgTurnLog::connect(url, config.registry_timeout).await
                    }
                }
                .map_err(StartError::Log)?,
            ),
        };
        let registry = AnyRegistry::open(
            config.database_url.as_deref(),
            &config.data_dir,
            config.registry_timeout,
        )
        .await?;
        let mut options = Options::new(config.data_dir.join("runtime"))
            .idle_timeout(config.idle_timeout)
            .durability(config.durability);
        let compactor = turn_log
            .as_ref()
            .map(|log| log.spawn_compactor(config.log_retention, COMPACT_EVERY));
        // In a cluster the runtime claims actors as this node, which joins first.
        let node = match (&config.cluster, &turn_log) {
            (Some(cluster), Some(log)) => Some(Arc::new(
                burrow_log_postgres::membership::Node::start(
                    log,
                    burrow_log_postgres::membership::NodeConfig {
                        node_id: cluster.node_id.clone(),
                        advertise_url: cluster.advertise_url.clone(),
                        lease: cluster.lease,
                    },
                )
                .await
                .map_err(StartError::Log)?,
            )),
            _ => None,
        };
        let pg_log = match &node {
            Some(node) => Some(node.log().clone()),
            None => turn_log,
        };
        let turn_log: Option<Arc<dyn burrow_runtime::turn_log::TurnLog>> =
            pg_log.clone().map(|log| Arc::new(log) as _);
        if let Some(log) = &turn_log {
            options = options
                .turn_log(log.clone())
                .append_timeout(config.registry_timeout);
        }
        if let Some(shards) = config.shards {
            options = options.shards(shards);
        }
        if let Some(max) = config.max_resident {
            options = options.max_resident(max);
        }
        let max_connections = config
            .limits
            .max_connections
            .unwrap_or_else(|| serve::default_max_connections(options.descriptor_budget()));
        let runtime = Runtime::open(options)?;
        let mut sandboxes = LocalProviderConfig::new(
            config.data_dir.join("sandboxes"),
            config.sandbox_command.clone(),
        );
        sandboxes.uids = config.sandbox_uids;
        sandboxes.host = config.sandbox_host;
        let local = LocalProvider::new(sandboxes)?;
        // In a cluster, machines are recorded in PostgreSQL and other nodes' are reached there.
        let book = match (&node, &config.cluster) {
            (Some(node), Some(cluster)) => Some(Arc::new(machines::PgMachineBook::new(
                node.log().clone(),
                cluster.secret.clone(),
                config.registry_timeout,
            ))
                as Arc<dyn burrow_instance::provider::MachineBook>),
            _ => None,
        };
        let provider = burrow_instance::provider::ClusterProvider::new(local, book);
        let instances = Instances::open(
            &runtime,
            Settings {
                registry: registry.clone(),
                provider,
                lifecycle: config.lifecycle.clone(),
                server_key: keys.server_key(),
                gateway_secret: keys.gateway_secret.clone().into_bytes(),
            },
        )?;
        // In a cluster: calls for actors held elsewhere are forwarded, and a node that lost
        // its lease closes its actors (they must be claimed again before serving here).
        let mut background = Vec::new();
        let (instances, peers) = match (&node, &config.cluster) {
            (Some(node), Some(cluster)) => {
                let peers = peers::Peers::new(node.clone(), cluster, config.registry_timeout)
                    .map_err(|e| StartError::Cluster(format!("the HTTP client for peers: {e}")))?;
                background.push(peers.spawn_refresh(cluster.lease / 3));
                background.push(peers.spawn_listener(cluster.lease / 4));
                background.push(tokio::spawn(close_on_lease_loss(
                    node.clone(),
                    runtime.clone(),
                )));
                // What was asked of this node's machines while it was gone is done now, and
                // again whenever it rejoins after losing its lease.
                let (log, settling) = (node.log().clone(), instances.provider().clone());
                let mut incarnations = node.incarnations();
                background.push(tokio::spawn(async move {
                    loop {
                        machines::settle(&log, &settling).await;
                        if incarnations.changed().await.is_err() {
                            return;
                        }
                    }
                }));
                let peers: Arc<dyn burrow_instance::remote::Cluster> = peers;
                (instances.with_cluster(peers.clone()), Some(peers))
            }
            _ => (instances, None),
        };
        #[cfg(feature = "faults")]
        let lists = test_routes::open_lists(&runtime, peers)?;
        #[cfg(not(feature = "faults"))]
        drop(peers);
        let state = Arc::new(state::AppState {
            instances,
            registry,
            runtime: runtime.clone(),
            keys,
            metrics: telemetry::Metrics::global(),
            http: app::proxy_client(config.limits.upstream_connect_timeout),
            lookups: lookups::Lookups::new(config.limits.lookups_per_second),
            limits: config.limits.clone(),
            turn_log,
            pg_log,
            cluster: node.clone(),
            cluster_secret: config.cluster.as_ref().map(|c| c.secret.clone()),
            #[cfg(feature = "faults")]
            lists,
        });
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                address: config.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Listen {
            address: config.listen,
            source,
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = serve::Limits {
            header_timeout: config.limits.header_timeout,
            max_connections,
        };
        tracing::info!(max_connections, "serving");
        let serving = tokio::spawn(serve::serve(listener, app::router(state), limits, async {
            let _ = stopped.await;
        }));
        Ok(Server {
            address,
            runtime,
            stop,
            serving,
            compactor,
            node,
            background,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish (up to 10 s), then shuts the runtime
    /// down. Sandboxes keep running, like machines: the next start re-binds them.
    pub async fn shutdown(self) {
        if let Some(compactor) = &self.compactor {
            compactor.abort();
        }
        for task in &self.background {
            task.abort();
        }
        // Draining: claim nothing new; the actors held here go to other nodes once this one
        // leaves, without waiting for its lease.
        if let Some(node) = &self.node
            && let Err(e) = node.drain().await
        {
            tracing::warn!(error = %e, "marking the node draining failed");
        }
        let _ = self.stop.send(());
        let mut serving = self.serving;
        if tokio::time::timeout(Duration::from_secs(10), &mut serving)
            .await
            .is_err()
        {
            tracing::warn!("requests still running after 10 s; closing them");
            serving.abort();
        }
        let report = self.runtime.shutdown(Duration::from_secs(10)).await;
        tracing::info!(?report, "runtime shut down");
        // Its actors are closed: leaving frees them for other nodes without a lease's wait.
        if let Some(node) = &self.node
            && let Err(e) = node.leave().await
        {
            tracing::warn!(error = %e, "leaving the cluster failed; its lease will end by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configurations_debug_output_shows_no_secret() {
        let mut config = ServerConfig::new("/tmp/burrow-debug");
        config.database_url = Some("postgres://burrow:pg-password-1234@db/burrow".into());
        config.keys = KeyOverrides {
            internal_api_key: Some("internal-api-key-that-must-not-show".into()),
            token_secret: Some("token-secret-that-must-not-show-000".into()),
            gateway_secret: Some("gateway-secret-that-must-not-show-0".into()),
            secrets_key: Some("ab".repeat(32)),
        };
        config.cluster = Some(cluster::ClusterConfig {
            node_id: "node-7".into(),
            advertise_url: "http://10.0.0.7:8787".into(),
            lease: Duration::from_secs(10),
            secret: "cluster-secret-that-must-not-show-00".into(),
        });
        let shown = format!("{config:?} {config:#?}");
        for secret in [
            "pg-password-1234",
            "internal-api-key-that-must-not-show",
            "token-secret-that-must-not-show-000",
            "gateway-secret-that-must-not-show-0",
            &"ab".repeat(32),
            "cluster-secret-that-must-not-show-00",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // What is not secret still shows.
        assert!(shown.contains("/tmp/burrow-debug") && shown.contains("header_timeout"));
        assert!(shown.contains("node-7"));
    }
}
