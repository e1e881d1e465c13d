//! The internal endpoint other nodes of a cluster forward calls to:
//! `POST /_burrow/actors/{namespace}/{id}/call` (and the authentication every internal
//! endpoint shares; the machines API is in `machines.rs`). Authenticated with the cluster secret only
//! (the edge node authenticated the user and checked ownership); not encrypted, so nodes must
//! talk over a private network. See `docs/CLUSTER.md`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use burrow_identity::ActorName;
use burrow_instance::remote::{ForwardReply, Forwarded, PROTOCOL_VERSION};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::peers::{PROTOCOL_HEADER, SECRET_HEADER};
use crate::state::AppState;

/// Serves one forwarded call on this node.
#[utoipa::path(
    post,
    path = "/_burrow/actors/{namespace}/{id}/call",
    tag = "cluster",
    security(("clusterSecret" = [])),
    params(
        ("namespace" = String, Path, description = "The actor's namespace"),
        ("id" = String, Path, description = "The actor's name"),
    ),
    request_body(content = String, description = "A forwarded call (JSON, versioned by the protocol header)"),
    responses(
        (status = 200, description = "The call's outcome, or a refusal (not the holder, another protocol version)"),
        (status = 400, description = "Not a forwarded call, or another protocol version", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not the cluster's secret", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not a clustered server, or no such namespace", body = crate::openapi::ErrorBody),
    )
)]
pub async fn call(
    State(state): State<Arc<AppState>>,
    Path((namespace, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ForwardReply>, ApiError> {
    authenticate(&state, &headers)?;
    #[cfg(feature = "faults")]
    if namespace == burrow_instance::lists::LIST_NAMESPACE {
        let call: Forwarded = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("a forwarded call: {e}")))?;
        return Ok(Json(state.lists.serve_forwarded(&id, call).await));
    }
    if namespace != burrow_instance::NAMESPACE {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Not found")
            .details(format!("no namespace {namespace:?} takes forwarded calls")));
    }
    let name: ActorName = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("actor name {id:?}: {e}")))?;
    let call: Forwarded = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("a forwarded call: {e}")))?;
    if call.version != PROTOCOL_VERSION {
        return Err(version_refused(Some(call.version)));
    }
    Ok(Json(state.instances.serve_forwarded(&name, call).await))
}

/// Checks that an internal request comes from a node of this cluster (the cluster secret) and
/// speaks this node's protocol version. Outside a cluster there are no internal endpoints.
pub(crate) fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(secret) = state.cluster_secret.as_deref() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Not found"));
    };
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    if !given.is_some_and(|g| bool::from(g.ct_eq(secret.as_bytes()))) {
        return Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").details(format!(
                "internal calls need the cluster secret in {SECRET_HEADER}"
            )),
        );
    }
    let version = headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if version != Some(PROTOCOL_VERSION) {
        return Err(version_refused(version));
    }
    Ok(())
}

fn version_refused(version: Option<u32>) -> ApiError {
    let given = version.map_or_else(|| "none".to_owned(), |v| v.to_string());
    ApiError::bad_request(format!(
        "forwarding protocol version {given} is not spoken here (this node speaks {PROTOCOL_VERSION})"
    ))
}
