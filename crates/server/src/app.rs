//! The router: every route, the layers around them, and the OpenAPI document made from them.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// A client for the proxy: HTTP/1 to sandboxes, giving up on a connection attempt after
/// `connect_timeout`.
pub fn proxy_client(connect_timeout: std::time::Duration) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Every route, and the OpenAPI document made from them (served at `/openapi.json`).
pub fn router(state: Arc<AppState>) -> Router {
    use utoipa_axum::routes;
    let api = OpenApiRouter::new()
        .nest("/platform", crate::platform::routes())
        .nest("/user", crate::user::routes())
        .nest("/admin", crate::admin::routes())
        .layer(middleware::from_fn_with_state(state.clone(), api_deadline));
    let document = Arc::new(std::sync::OnceLock::new());
    let (router, api) = OpenApiRouter::with_openapi(crate::openapi::Document::openapi())
        .nest("/api", api)
        .merge(crate::proxy::routes())
        .routes(routes!(crate::internal::call))
        .routes(routes!(crate::machines::internal))
        .routes(routes!(crate::health::healthz))
        .routes(routes!(crate::health::readyz))
        .routes(routes!(crate::health::metrics))
        .merge(crate::console::routes())
        .merge(crate::openapi::routes(document.clone()))
        .split_for_parts();
    let _ = document.set(crate::openapi::finish(api));
    // Test builds only, and undocumented: the fault run's switches.
    #[cfg(feature = "faults")]
    let router = router.nest("/_test", crate::test_routes::routes());
    let router = router
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "Not found")
                .details("no such route: /openapi.json lists them")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .details("/openapi.json lists each route's methods")
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
