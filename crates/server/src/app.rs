//! The router and the state every route shares.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use burrow_instance::Instances;
use burrow_instance::provider::ClusterProvider;
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
    pub instances: Instances<ClusterProvider>,
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
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics));
    #[cfg(feature = "faults")]
    let router = router.nest("/_test", crate::test_routes::routes());
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn(record_http))
        .layer(middleware::from_fn(catch_panics))
        .with_state(state)
}

/// Liveness, and the durability acknowledged writes have (an operator's first question).
async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "durability": state.runtime.durability().name() }))
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
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("burrow_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("burrow_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
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

/// The method as a metric label: the standard methods by name, anything else `other` (a
/// client can send any token as a method; each would be a new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
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
