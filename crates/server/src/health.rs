//! What probes and scrapers ask: `/healthz` (the process answers), `/readyz` (it can do its
//! work now) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use burrow_restore::Registry as _;
use serde_json::json;

use crate::state::AppState;

/// How long each readiness check may take: a probe's own timeout is typically a few seconds,
/// and an answer that comes later is as bad as none.
pub const READY_WITHIN: Duration = Duration::from_secs(2);

/// Liveness, and the durability acknowledged writes have (an operator's first question).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "`{status: \"ok\", durability}`"),
    ),
)]
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "durability": state.runtime.durability().name() }))
}

/// Readiness: 200 when the registry answers, the runtime accepts work and, in a cluster, this
/// node holds its lease; otherwise 503 with every reason. The checks run at once, each within
/// [`READY_WITHIN`].
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "`{status: \"ready\", checks}`"),
    (status = 503, description = "`{status: \"not ready\", checks, reasons}`"),
))]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let registry = async {
        match tokio::time::timeout(READY_WITHIN, state.registry.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("registry: {e}")),
            Err(_) => Err(format!(
                "registry: no answer within {} ms",
                READY_WITHIN.as_millis()
            )),
        }
    };
    let runtime = async {
        state
            .runtime
            .ready(READY_WITHIN)
            .await
            .map_err(|e| format!("runtime: {e}"))
    };
    let (registry, runtime) = tokio::join!(registry, runtime);
    let cluster = state.cluster.as_ref().map(|node| {
        node.holds_lease().then_some(()).ok_or_else(|| {
            "cluster: this node does not hold its lease (it claims no actor)".to_owned()
        })
    });
    let mut checks = serde_json::Map::new();
    let mut reasons = Vec::new();
    for (name, outcome) in [("registry", registry), ("runtime", runtime)]
        .into_iter()
        .chain(cluster.map(|c| ("cluster", c)))
    {
        checks.insert(name.to_owned(), json!(outcome.is_ok()));
        if let Err(reason) = outcome {
            reasons.push(reason);
        }
    }
    if reasons.is_empty() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks })),
        )
    } else {
        tracing::warn!(?reasons, "not ready");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "checks": checks, "reasons": reasons })),
        )
    }
}

/// The Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
    ),
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
