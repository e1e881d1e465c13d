//! What every route shares.

use std::sync::Arc;

use axum::body::Body;
use burrow_instance::Instances;
use burrow_instance::provider::ClusterProvider;
use burrow_restore::AnyRegistry;
use burrow_runtime::Runtime;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::keys::Keys;

/// What every route shares.
pub struct AppState {
    /// The instance actors.
    pub instances: Instances<ClusterProvider>,
    /// The registry.
    pub registry: AnyRegistry,
    /// The runtime (catalog queries).
    pub runtime: Runtime,
    /// The server's secrets.
    pub keys: Keys,
    /// Renders `/metrics`.
    pub metrics: crate::telemetry::Metrics,
    /// The proxy's HTTP client.
    pub http: Client<HttpConnector, Body>,
    /// What one client may hold.
    pub limits: crate::HttpLimits,
    /// The replicated log, with `--durability replicated`.
    pub turn_log: Option<Arc<dyn burrow_runtime::turn_log::TurnLog>>,
    /// The same log as PostgreSQL, for the admin listings it answers.
    pub pg_log: Option<burrow_log_postgres::PgTurnLog>,
    /// This node's membership, with `--cluster`.
    pub cluster: Option<Arc<burrow_log_postgres::membership::Node>>,
    /// What other nodes authenticate forwarded calls with, with `--cluster`.
    pub cluster_secret: Option<String>,
    /// Owners already seen in the registry and names just found missing. An instance's owner
    /// never changes, so this saves a registry round trip per request (the proxy's hot path)
    /// and keeps known instances reachable while the registry is down; a destroyed instance
    /// still answers 404, from its actor.
    pub lookups: crate::lookups::Lookups,
    /// The fault run's lists (test builds only).
    #[cfg(feature = "faults")]
    pub lists: burrow_instance::lists::Lists,
}
