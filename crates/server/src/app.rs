//! The router and the state every route shares.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use burrow_instance::{Instances, LocalProvider};
use burrow_restore::AnyRegistry;
use burrow_runtime::Runtime;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::error::ApiError;
use crate::keys::Keys;

/// What every route shares.
pub struct AppState {
    /// The instance actors.
    pub instances: Instances<LocalProvider>,
    /// The registry.
    pub registry: AnyRegistry,
    /// The runtime (catalog queries).
    pub runtime: Runtime,
    /// The server's secrets.
    pub keys: Keys,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The proxy's HTTP client.
    pub http: Client<HttpConnector, Body>,
    /// Owners of instance ids already seen active in the registry. An instance's owner never
    /// changes, so this saves a registry round trip per request (the proxy's hot path) and
    /// keeps known instances reachable while the registry is down; a destroyed instance still
    /// answers 404, from its actor.
    pub owners: dashmap::DashMap<burrow_identity::InstanceId, burrow_identity::UserId>,
}

/// The most owners remembered; past it the map starts over (it is only a cache).
pub const OWNER_CACHE_LIMIT: usize = 100_000;

/// The process-wide Prometheus recorder (a process has one metrics recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only what this one records");
            }
            handle
        })
        .clone()
}

/// A client for the proxy: HTTP/1 to loopback sandboxes.
pub fn proxy_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .nest("/platform", crate::platform::routes())
        .nest("/user", crate::user::routes())
        .nest("/admin", crate::admin::routes());
    Router::new()
        .nest("/api", api)
        .route("/i/{instance_id}", any(crate::proxy::proxy))
        .route("/i/{instance_id}/{*rest}", any(crate::proxy::proxy))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(render_metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn(record_http))
        .layer(middleware::from_fn(catch_panics))
        .with_state(state)
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Counts requests and their durations by route template (never by raw path: ids would make
/// the series unbounded).
async fn record_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("burrow_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("burrow_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A handler that panics answers 500 in the API's format; the server keeps serving.
async fn catch_panics(request: Request, next: Next) -> Response {
    use futures_util::FutureExt as _;
    let path = request.uri().path().to_owned();
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            ApiError::internal("request", format!("a handler panicked on {path}")).into_response()
        }
    }
}
