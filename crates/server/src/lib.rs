//! Burrow's host server: the instance manager over HTTP.
//!
//! - `/api/platform/*` — the internal API (header `x-internal-api-key`);
//! - `/api/user/*` — a user's own instances (bearer token);
//! - `/api/admin/*` — any instance (admin token);
//! - `/i/{instanceId}/…` — a reverse proxy (HTTP and WebSocket) to the instance's sandbox;
//! - `/healthz`, `/metrics`.
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
mod app;
mod error;
mod extract;
mod keys;
mod platform;
mod proxy;
mod resolve;
pub mod tokens;
mod user;
mod views;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burrow_instance::{Instances, LifecycleConfig, LocalProvider, LocalProviderConfig, Settings};
use burrow_restore::AnyRegistry;
use burrow_runtime::{Options, Runtime};

pub use error::ApiError;
pub use keys::{KEYS_FILE, KeyError, KeyOverrides, Keys};

/// Everything `burrow serve` can be told.
#[derive(Debug, Clone)]
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
    /// The listening socket could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    address: SocketAddr,
    runtime: Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the data directory, the registry and the runtime, and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StartError::Keys(KeyError::Io {
                path: config.data_dir.clone(),
                source: e,
            })
        })?;
        let keys = Keys::resolve(&config.data_dir, &config.keys)?;
        let registry = AnyRegistry::open(
            config.database_url.as_deref(),
            &config.data_dir,
            config.registry_timeout,
        )
        .await?;
        let mut options =
            Options::new(config.data_dir.join("runtime")).idle_timeout(config.idle_timeout);
        if let Some(shards) = config.shards {
            options = options.shards(shards);
        }
        if let Some(max) = config.max_resident {
            options = options.max_resident(max);
        }
        let runtime = Runtime::open(options)?;
        let provider = LocalProvider::new(LocalProviderConfig::new(
            config.data_dir.join("sandboxes"),
            config.sandbox_command.clone(),
        ))?;
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
        let state = Arc::new(app::AppState {
            instances,
            registry,
            runtime: runtime.clone(),
            keys,
            metrics: app::metrics_handle(),
            http: app::proxy_client(),
            owners: dashmap::DashMap::new(),
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
        let serving = tokio::spawn(
            axum::serve(listener, app::router(state))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Ok(Server {
            address,
            runtime,
            stop,
            serving,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish (up to 10 s), then shuts the runtime
    /// down. Sandboxes keep running, like machines: the next start re-binds them.
    pub async fn shutdown(self) {
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
    }
}
