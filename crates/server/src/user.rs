//! `/api/user/*`: a user's own instances, with a bearer token. Another user's instance and a
//! missing one answer the same 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use burrow_identity::{ActorName, InstanceId};
use burrow_instance::ConfigPatch;
use burrow_restore::Registry as _;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Json, Params, User, instance_id};
use crate::openapi::{Errors, InstanceErrors};
use crate::paging;
use crate::resolve::{Scope, instance};
use crate::state::AppState;
use crate::views;

/// The user routes.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(config, patch_config))
        .routes(routes!(instances))
}

/// Which instance: `instanceId` (absent: the caller's legacy instance).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct InstanceQuery {
    instance_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/status",
    tag = "user",
    security(("bearer" = [])),
    params(InstanceQuery),
    responses(
        (status = 200, description = "The instance's status"),
        Errors,
        InstanceErrors,
    ),
)]
async fn status(
    User(caller): User,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = instance_id(query.instance_id.as_deref())?;
    let (name, handle) = instance(&state, Scope::User, &caller.user_id, id).await?;
    let view = handle
        .status()
        .await
        .map_err(|e| Scope::User.error("status", e))?;
    Ok(axum::Json(views::status(&name, &view)))
}

#[utoipa::path(
    get,
    path = "/config",
    tag = "user",
    security(("bearer" = [])),
    params(InstanceQuery),
    responses(
        (status = 200, description = "`{envVars, secretNames}`: secret values are never returned"),
        Errors,
        InstanceErrors,
    ),
)]
async fn config(
    User(caller): User,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = instance_id(query.instance_id.as_deref())?;
    let (_, handle) = instance(&state, Scope::User, &caller.user_id, id).await?;
    let config = handle
        .config()
        .await
        .map_err(|e| Scope::User.error("config", e))?;
    Ok(axum::Json(views::config(&config)))
}

/// Names to set (a value) or remove (`null`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    env_vars: BTreeMap<String, Option<String>>,
    #[serde(default)]
    secrets: BTreeMap<String, Option<String>>,
}

#[utoipa::path(
    patch,
    path = "/config",
    tag = "user",
    security(("bearer" = [])),
    params(InstanceQuery),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The new configuration (applies at the next start)"),
        Errors,
        InstanceErrors,
    ),
)]
async fn patch_config(
    User(caller): User,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<PatchBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = instance_id(query.instance_id.as_deref())?;
    let (_, handle) = instance(&state, Scope::User, &caller.user_id, id).await?;
    let config = handle
        .patch_config(ConfigPatch {
            env_vars: body.env_vars,
            secrets: body.secrets,
        })
        .await
        .map_err(|e| Scope::User.error("config update", e))?;
    Ok(axum::Json(views::config(&config)))
}

/// The page size of `GET /api/user/instances` when none is asked for.
const DEFAULT_LIMIT: usize = 100;
/// Statuses read at once for a listing: enough to overlap the actors' wake-ups, few enough
/// that one listing cannot occupy every shard.
const STATUS_CONCURRENCY: usize = 16;

/// A page: at most `limit` (1–500, default 100) after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/instances",
    tag = "user",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "`{instances, nextCursor}`: the caller's active instances in id order"),
        Errors,
    ),
)]
async fn instances(
    User(caller): User,
    State(state): State<Arc<AppState>>,
    Params(query): Params<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let after = paging::cursor::<InstanceId>(query.cursor.as_deref())?;
    let rows = state
        .registry
        .list_by_user(&caller.user_id, after, limit)
        .await
        .map_err(|e| ApiError::from_registry("list instances", e))?;
    let next = paging::next(rows.len(), limit, rows.last().map(|r| r.id));
    let state = &state;
    let caller = &caller;
    let out: Vec<Value> = futures_util::stream::iter(rows)
        .map(|row| async move {
            let instance_id = views::row_instance_id(&row);
            let name = match instance_id {
                Some(id) => ActorName::Instance(id),
                None => ActorName::Legacy(caller.user_id.clone()),
            };
            // The status is the actor's; an actor that cannot answer right now is listed
            // without one rather than failing the whole list.
            let status = match state.instances.get(&name).status().await {
                Ok(v) => json!(v.status),
                Err(e) => {
                    tracing::warn!(instance = %name, error = %e, "status unavailable for listing");
                    Value::Null
                }
            };
            json!({
                "instanceId": instance_id,
                "sandboxId": row.sandbox_id,
                "orgId": row.org_id,
                "name": row.name,
                "status": status,
            })
        })
        .buffered(STATUS_CONCURRENCY)
        .collect()
        .await;
    Ok(axum::Json(json!({ "instances": out, "nextCursor": next })))
}
