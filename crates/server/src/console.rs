//! `/console`: the operators' web console. A page, a script and a style sheet, embedded in the
//! binary (nothing to build or deploy beside it). The page is public; everything it shows
//! comes from the admin API with the admin token the operator pastes in, which the page keeps
//! in the tab's session storage only.

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the console's responses allow: its own script, style and API and nothing else (no
/// inline script, no other origin, no framing).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// The console's routes, at the root of the router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(slash))
        .routes(routes!(script))
        .routes(routes!(style))
}

#[utoipa::path(
    get,
    path = "/console",
    tag = "operations",
    responses(
        (status = 200, description = "The console's page (public; it asks for an admin token)", content_type = "text/html"),
    ),
)]
async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

#[utoipa::path(
    get,
    path = "/console/",
    tag = "operations",
    responses((status = 308, description = "To /console")),
)]
async fn slash() -> Redirect {
    Redirect::permanent("/console")
}

#[utoipa::path(
    get,
    path = "/console/console.js",
    tag = "operations",
    responses(
        (status = 200, description = "The console's script", content_type = "text/javascript"),
    ),
)]
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(
    get,
    path = "/console/console.css",
    tag = "operations",
    responses(
        (status = 200, description = "The console's style sheet", content_type = "text/css"),
    ),
)]
async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
