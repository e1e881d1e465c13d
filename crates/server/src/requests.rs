//! What wraps every request: its id, its span and one log line, its metrics, and the 500
//! a panicking handler answers instead of dropping the connection.

use std::any::Any;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;

/// The header a request's id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id taken from a client; a longer one (or one with characters outside
/// `[A-Za-z0-9._:-]`) is replaced by a generated one, so a client cannot write what it likes
/// into every log line of its request.
pub const MAX_REQUEST_ID: usize = 128;

/// Wraps `router` in the request layers, outermost first: a client's unusable id dropped, an
/// id set (the client's or a new UUID), the request span with its one info line on answer,
/// the id echoed in the response, metrics by route, and panics caught.
pub(crate) fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_unusable_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(
                        DefaultOnResponse::new()
                            .level(Level::INFO)
                            .latency_unit(tower_http::LatencyUnit::Micros),
                    )
                    // The answer's line carries the status; a second line per 5xx says less.
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(middleware::from_fn(record_http))
            .layer(CatchPanicLayer::custom(panicked)),
    )
}

fn drop_unusable_id(mut request: Request) -> Request {
    let usable = request.headers().get(REQUEST_ID).is_none_or(usable_id);
    if !usable {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

fn usable_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The span every log line of a request carries. The path only, never the query (a proxied
/// request's query may hold a sandbox's own secrets).
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
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

/// A handler that panicked answers 500 in the API's format; the server keeps serving. Runs
/// inside the request's span, so the log line names the request.
fn panicked(cause: Box<dyn Any + Send + 'static>) -> Response {
    let message = cause
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(panic = %message, "a handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
        .details("the handler failed; the request id names it in the server's log")
        .into_response()
}
