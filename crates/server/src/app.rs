//! The router and the state every route shares.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use burrow_instance::Instances;
use burrow_instance::provider::ClusterProvider;
use burrow_restore::AnyRegistry;
use burrow_runtime::Runtime;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::ApiError;
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

/// A client for the proxy: HTTP/1 to sandboxes, giving up on a connection attempt after
/// `connect_timeout`.
pub fn proxy_client(connect_timeout: std::time::Duration) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .nest("/platform", crate::platform::routes())
        .nest("/user", crate::user::routes())
        .nest("/admin", crate::admin::routes())
        .layer(middleware::from_fn_with_state(state.clone(), api_deadline));
    let router = Router::new()
        .nest("/api", api)
        .route("/i/{instance_id}", any(crate::proxy::proxy))
        .route("/i/{instance_id}/{*rest}", any(crate::proxy::proxy))
        .route(
            "/_burrow/actors/{namespace}/{id}/call",
            post(crate::internal::call),
        )
        .route(
            "/_burrow/machines/{id}/{op}",
            post(crate::machines::internal),
        )
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .route("/metrics", get(crate::health::metrics))
        .merge(crate::console::routes());
    #[cfg(feature = "faults")]
    let router = router.nest("/_test", crate::test_routes::routes());
    let router = router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        });
    crate::requests::layer(router).with_state(state)
}

/// An API request not answered within the request timeout gets 503. What the handler began
/// is dropped with it, so work that must finish once begun (a destroy) runs in a task of its
/// own. The proxy is not bounded here: its responses stream for as long as they take.
async fn api_deadline(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Request timed out")
            .details(format!("not answered within {} ms", limit.as_millis()))
            .into_response(),
    }
}
