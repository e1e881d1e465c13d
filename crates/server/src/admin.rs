//! `/api/admin/*`: any instance, with an admin token.

use std::sync::Arc;

use axum::extract::{Path, State};
use burrow_identity::{InstanceId, OrgId};
use burrow_restore::Registry as _;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Admin, Json, Params, user_id};
use crate::openapi::{Errors, InstanceErrors};
use crate::paging::{self, cursor};
use crate::resolve::{Scope, any_instance};
use crate::state::AppState;
use crate::views;

/// The admin routes.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    use crate::admin_lists::{__path_actors, __path_count, __path_incidents, __path_namespaces};
    use crate::admin_lists::{actors, count, incidents, namespaces};
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(debug_status))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(destroy))
        .routes(routes!(namespaces))
        .routes(routes!(actors))
        .routes(routes!(count))
        .routes(routes!(incidents))
        .routes(routes!(snapshot))
        .routes(routes!(cluster))
}

/// Exactly one of `seq` (a log entry) and `at` (an RFC 3339 time).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SnapshotQuery {
    seq: Option<u64>,
    at: Option<String>,
}

/// An actor's SQLite file as it was at entry `seq`, or at time `at` (RFC 3339), rebuilt from
/// the replicated log: 200 `application/vnd.sqlite3`; 404 for an actor (or a point) the log does
/// not know; 410 for a point older than the log's retention.
#[utoipa::path(
    get,
    path = "/actors/{namespace}/{id}/snapshot",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("namespace" = String, Path, description = "The actor's namespace"),
        ("id" = String, Path, description = "The actor id: 64 hex digits"),
        SnapshotQuery,
    ),
    responses(
        (status = 200, description = "The SQLite file as it was then", content_type = "application/vnd.sqlite3"),
        (status = 404, description = "Unknown actor, a point past its last entry, or no replicated log", body = crate::openapi::ErrorBody),
        (status = 410, description = "Older than the log keeps", body = crate::openapi::ErrorBody),
        Errors,
    ),
)]
async fn snapshot(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
    Path((namespace, id)): Path<(String, String)>,
    Params(query): Params<SnapshotQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::{StatusCode, header};
    use burrow_runtime::point_in_time::{ExportError, export_at};
    let Some(log) = &state.turn_log else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "actor snapshots come from the replicated log: run with --durability replicated",
        ));
    };
    let id: burrow_runtime::ActorId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid actor id {id:?}: 64 hex digits")))?;
    let key = burrow_runtime::turn_log::LogKey {
        namespace: namespace.as_str().into(),
        id,
    };
    let seq = match (query.seq, query.at.as_deref()) {
        (Some(seq), None) => seq,
        (None, Some(at)) => {
            let when =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        ApiError::bad_request(format!("at={at:?} is not an RFC 3339 time: {e}"))
                    })?;
            let at_ms = (when.unix_timestamp_nanos() / 1_000_000) as i64;
            let found = log
                .seq_at(&key, at_ms)
                .await
                .map_err(|e| ApiError::internal("reading the log", e))?;
            match found {
                Some(seq) => seq,
                // Nothing that old is left: compacted away, or the actor did not exist yet.
                None => match log.head(&key).await {
                    Ok(Some(_)) => {
                        return Err(ApiError::new(
                            StatusCode::GONE,
                            format!("{at} is before what the log keeps of this actor"),
                        ));
                    }
                    Ok(None) => return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown actor")),
                    Err(e) => return Err(ApiError::internal("reading the log", e)),
                },
            }
        }
        _ => return Err(ApiError::bad_request("give exactly one of seq and at")),
    };
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dest = std::env::temp_dir().join(format!(
        "burrow-export-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let exported = export_at(&**log, &key, seq, &dest).await;
    let bytes = match &exported {
        Ok(_) => tokio::fs::read(&dest)
            .await
            .map_err(|e| ApiError::internal("exporting", e)),
        Err(_) => Ok(Vec::new()),
    };
    for suffix in ["", "-wal", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dest.display()));
    }
    let _ = std::fs::remove_file(dest.with_extension("db-image"));
    match exported {
        Ok(_) => {}
        Err(ExportError::UnknownActor(_)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown actor"));
        }
        Err(e @ ExportError::NotYet { .. }) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()));
        }
        Err(e @ ExportError::OutsideRetention(_)) => {
            return Err(ApiError::new(StatusCode::GONE, e.to_string()));
        }
        Err(e) => return Err(ApiError::internal("exporting", e)),
    }
    let bytes = bytes?;
    Ok(axum::response::IntoResponse::into_response((
        [(header::CONTENT_TYPE, "application/vnd.sqlite3")],
        bytes,
    )))
}

/// The page size of admin listings when none is asked for.
const DEFAULT_LIMIT: usize = 50;

fn limit(given: Option<usize>) -> Result<usize, ApiError> {
    paging::limit(given, DEFAULT_LIMIT)
}

fn path_id(text: &str) -> Result<InstanceId, ApiError> {
    text.parse().map_err(|_| ApiError::invalid_instance_id())
}

/// Exactly one of `userId` and `orgId`; a page of at most `limit` after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    user_id: Option<String>,
    org_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/instances",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Registry rows, paged: `{instances, nextCursor}`"),
        Errors,
    ),
)]
async fn list(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = limit(query.limit)?;
    let after = cursor::<InstanceId>(query.cursor.as_deref())?;
    let rows = match (query.user_id.as_deref(), query.org_id.as_deref()) {
        (Some(user), None) => {
            let user = user_id(Some(user))?;
            state.registry.list_by_user(&user, after, limit).await
        }
        (None, Some(org)) => {
            let org: OrgId = org
                .parse()
                .map_err(|_| ApiError::bad_request("Invalid organization ID"))?;
            state.registry.list_by_org(org, after, limit).await
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of userId and orgId",
            ));
        }
    }
    .map_err(|e| ApiError::from_registry("list instances", e))?;
    let next = paging::next(rows.len(), limit, rows.last().map(|r| r.id));
    Ok(axum::Json(json!({
        "instances": rows.iter().map(views::row).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

#[utoipa::path(
    get,
    path = "/instances/{instance_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
    ),
    responses(
        (status = 200, description = "The debug status: everything but secret and env var values"),
        Errors,
        InstanceErrors,
    ),
)]
async fn debug_status(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (name, handle, _) = any_instance(&state, path_id(&id)?).await?;
    let debug = handle
        .debug_status()
        .await
        .map_err(|e| Scope::User.error("debug status", e))?;
    Ok(axum::Json(views::debug_status(&name, &debug)))
}

/// `skipCooldown`: start even within the cooldown after a failed start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    skip_cooldown: bool,
}

#[utoipa::path(
    post,
    path = "/instances/{instance_id}/start",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
    ),
    request_body = StartBody,
    responses(
        (status = 200, description = "`{started}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn start(
    Admin(admin): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(body): Json<StartBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let (name, handle, _) = any_instance(&state, path_id(&id)?).await?;
    tracing::info!(admin = %admin.user_id, instance = %name, "admin start");
    let started = handle
        .start(body.skip_cooldown)
        .await
        .map_err(|e| Scope::User.error("start", e))?;
    Ok(axum::Json(json!({ "started": started })))
}

#[utoipa::path(
    post,
    path = "/instances/{instance_id}/stop",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
    ),
    responses(
        (status = 200, description = "`{stopped: true}`: the sandbox process is gone"),
        Errors,
        InstanceErrors,
    ),
)]
async fn stop(
    Admin(admin): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (name, handle, _) = any_instance(&state, path_id(&id)?).await?;
    tracing::info!(admin = %admin.user_id, instance = %name, "admin stop");
    handle
        .stop()
        .await
        .map_err(|e| Scope::User.error("stop", e))?;
    Ok(axum::Json(json!({ "stopped": true })))
}

/// `imageTag`: the image to restart into (default: the tracked one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RestartBody {
    image_tag: Option<String>,
}

#[utoipa::path(
    post,
    path = "/instances/{instance_id}/restart",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
    ),
    request_body = RestartBody,
    responses(
        (status = 200, description = "`{success, error?}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn restart(
    Admin(admin): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(body): Json<RestartBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let (name, handle, _) = any_instance(&state, path_id(&id)?).await?;
    tracing::info!(admin = %admin.user_id, instance = %name, "admin restart");
    let outcome = handle
        .restart(body.image_tag)
        .await
        .map_err(|e| Scope::User.error("restart", e))?;
    Ok(axum::Json(views::restarted(outcome)))
}

#[utoipa::path(
    post,
    path = "/instances/{instance_id}/destroy",
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
    ),
    responses(
        (status = 200, description = "`{finalized, destroyedUserId, destroyedSandboxId}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn destroy(
    Admin(admin): Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (name, handle, _) = any_instance(&state, path_id(&id)?).await?;
    tracing::info!(admin = %admin.user_id, instance = %name, "admin destroy");
    crate::platform::destroy_instance(state, name, handle).await
}

/// `GET /api/admin/cluster`: every node PostgreSQL knows, with its lease and how many actors
/// its current incarnation holds.
#[utoipa::path(
    get,
    path = "/cluster",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{nodes}`: every node PostgreSQL knows"),
        (status = 404, description = "Not part of a cluster", body = crate::openapi::ErrorBody),
        Errors,
    ),
)]
async fn cluster(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(node) = &state.cluster else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "this server is not part of a cluster: run it with --cluster",
        ));
    };
    let nodes = burrow_log_postgres::membership::nodes(node.log())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading the cluster's nodes");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Cluster state unavailable",
            )
        })?;
    let nodes: Vec<Value> = nodes
        .into_iter()
        .map(|n| {
            let status = match (n.status, n.lease_running) {
                (burrow_log_postgres::membership::NodeStatus::Alive, true) => "alive",
                (burrow_log_postgres::membership::NodeStatus::Alive, false) => "expired",
                (burrow_log_postgres::membership::NodeStatus::Draining, _) => "draining",
                (burrow_log_postgres::membership::NodeStatus::Left, _) => "left",
            };
            json!({
                "nodeId": n.node_id,
                "incarnation": n.incarnation,
                "advertiseUrl": n.advertise_url,
                "status": status,
                "leaseExpiresAt": n.lease_expires_at_ms,
                "actorsOwned": n.actors_owned,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "nodes": nodes })))
}
