//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`. It is generated from
//! the route definitions themselves: every route is added to the router through
//! `utoipa_axum::routes!` from its handler's `#[utoipa::path]`, so a route cannot exist
//! without being documented (the `openapi` test checks both directions against a running
//! server).

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// An error, as every route answers one.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// More about it, when there is more.
    pub details: Option<serde_json::Value>,
}

/// What every route may answer besides success (routes that take an instance also
/// [`InstanceErrors`]).
#[derive(IntoResponses)]
pub enum Errors {
    /// No or a bad credential.
    #[response(
        status = 401,
        description = "No credential, or one that is invalid or expired"
    )]
    Unauthorized(ErrorBody),
    /// A credential without the right.
    #[response(status = 403, description = "The credential does not allow this route")]
    Forbidden(ErrorBody),
    /// Malformed input.
    #[response(status = 400, description = "Malformed input, named in the error")]
    BadRequest(ErrorBody),
    /// Something unexpected.
    #[response(status = 500, description = "An unexpected failure")]
    Internal(ErrorBody),
    /// Transiently unavailable.
    #[response(status = 503, description = "Transiently unavailable; see Retry-After")]
    Unavailable(ErrorBody),
}

/// What a route taking an instance may also answer, in the documented order of checks.
#[derive(IntoResponses)]
pub enum InstanceErrors {
    /// Unknown, or someone else's.
    #[response(status = 404, description = "No such instance (or not the caller's)")]
    NotFound(ErrorBody),
    /// The instance's state forbids it.
    #[response(status = 409, description = "The instance's state forbids this now")]
    Conflict(ErrorBody),
    /// Too much at once.
    #[response(
        status = 429,
        description = "Overloaded or too many lookups; see Retry-After"
    )]
    TooMany(ErrorBody),
}

/// What the proxy answers besides the errors of any instance route.
#[derive(IntoResponses)]
pub enum Relayed {
    /// The sandbox's answer.
    #[response(
        status = 200,
        description = "Whatever the sandbox answers (any status); a WebSocket upgrade is relayed"
    )]
    Answer,
    /// Unreachable.
    #[response(status = 502, description = "The sandbox could not be reached")]
    Unreachable(ErrorBody),
    /// Too slow.
    #[response(status = 504, description = "The sandbox did not answer in time")]
    TooSlow(ErrorBody),
}

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Burrow",
        description = "Durable actors on SQLite and the instance manager built on them. See docs/HTTP_API.md."
    ),
    modifiers(&Credentials),
    tags(
        (name = "platform", description = "The internal API: header x-internal-api-key"),
        (name = "user", description = "A user's own instances: a bearer token"),
        (name = "admin", description = "Any instance: an admin token"),
        (name = "proxy", description = "HTTP and WebSocket to an instance's sandbox: a bearer token"),
        (name = "operations", description = "Probes, metrics, the console, this document"),
        (name = "cluster", description = "Between the nodes of a cluster: the cluster secret"),
    )
)]
pub struct Document;

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "internalApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-internal-api-key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "clusterSecret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                crate::peers::SECRET_HEADER,
            ))),
        );
    }
}

/// The finished document: axum's wildcard `{*rest}` written as OpenAPI's `{rest}`.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> String {
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    document
        .to_json()
        .expect("the document is made of serialisable parts")
}

/// Serves the document; `document` is filled once the router is built (the document is made
/// from the router, this route included).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
    document: std::sync::Arc<std::sync::OnceLock<String>>,
) -> utoipa_axum::router::OpenApiRouter<S> {
    let (schemas, paths, _): utoipa_axum::router::UtoipaMethodRouter<S> =
        utoipa_axum::routes!(openapi_json);
    let serve = axum::routing::get(move || {
        let document = document.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                document.get().cloned().unwrap_or_default(),
            )
        }
    });
    utoipa_axum::router::OpenApiRouter::new().routes((schemas, paths, serve))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json"),
    ),
)]
// Only documents the route: `routes!` takes its path, the router another handler.
async fn openapi_json() {}
