//! `/api/platform/*`: the internal API, authenticated by `x-internal-api-key`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use burrow_identity::{ActorName, InstanceId, OrgId, UserId};
use burrow_instance::provider::ClusterProvider;
use burrow_instance::{InstanceRef, Provision};
use burrow_restore::{MarkOutcome, Registry as _};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{Json, Params, Platform, instance_id, user_id};
use crate::openapi::{Errors, InstanceErrors};
use crate::resolve::{Scope, instance};
use crate::state::AppState;
use crate::views;

/// The platform routes.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_organization))
        .routes(routes!(provision))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(destroy))
        .routes(routes!(status))
        .routes(routes!(debug_status))
        .routes(routes!(gateway_token))
}

/// Which instance: `instanceId` (absent: the user's legacy instance) of `userId`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct InstanceQuery {
    instance_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrganizationBody {
    name: Option<String>,
    id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/organizations",
    tag = "platform",
    security(("internalApiKey" = [])),
    request_body = OrganizationBody,
    responses(
        (status = 201, description = "Created (or the same one again): `{orgId}`"),
        (status = 409, description = "The id is taken by another name", body = crate::openapi::ErrorBody),
        Errors,
    ),
)]
async fn create_organization(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Json(body): Json<OrganizationBody>,
) -> Result<Response, ApiError> {
    let name = body.name.unwrap_or_default();
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request(
            "name is required: 1 to 200 characters, not blank",
        ));
    }
    let id = match body.id {
        Some(id) => id
            .parse::<OrgId>()
            .map_err(|_| ApiError::bad_request("Invalid organization ID"))?,
        None => OrgId::new_random(),
    };
    let org = state
        .registry
        .create_organization(id, name.trim())
        .await
        .map_err(|e| ApiError::from_registry("create organization", e))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "orgId": org.id }))).into_response())
}

/// The instance a platform request names, after checking the user owns it.
async fn target(
    state: &AppState,
    query: &InstanceQuery,
    body_user: Option<&str>,
    body_instance: Option<&str>,
) -> Result<(ActorName, InstanceRef<ClusterProvider>, UserId), ApiError> {
    let id = match (query.instance_id.as_deref(), body_instance) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::bad_request(
                "instanceId differs between the query and the body",
            ));
        }
        (q, b) => instance_id(q.or(b))?,
    };
    let user = user_id(body_user.or(query.user_id.as_deref()))?;
    let (name, handle) = instance(state, Scope::Platform, &user, id).await?;
    Ok((name, handle, user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProvisionBody {
    user_id: Option<String>,
    instance_id: Option<String>,
    org_id: Option<String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

#[utoipa::path(
    post,
    path = "/provision",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    request_body = ProvisionBody,
    responses(
        (status = 201, description = "Provisioned: `{sandboxId, instanceId}`"),
        (status = 200, description = "Already provisioned; configuration merged"),
        Errors,
        InstanceErrors,
    ),
)]
async fn provision(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<ProvisionBody>,
) -> Result<Response, ApiError> {
    let id = match (query.instance_id.as_deref(), body.instance_id.as_deref()) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::bad_request(
                "instanceId differs between the query and the body",
            ));
        }
        (q, b) => instance_id(q.or(b))?,
    };
    let user = user_id(body.user_id.as_deref().or(query.user_id.as_deref()))?;
    let org_id = body
        .org_id
        .as_deref()
        .map(|o| {
            o.parse::<OrgId>()
                .map_err(|_| ApiError::bad_request("Invalid organization ID"))
        })
        .transpose()?;
    if org_id.is_some() && id.is_none() {
        return Err(ApiError::bad_request(
            "an organization instance needs an instanceId (legacy instances are personal)",
        ));
    }
    // A new instance has no registry row yet: only an existing row must be the user's.
    if let Some(id) = id {
        let row = state
            .registry
            .get(id)
            .await
            .map_err(|e| ApiError::from_registry("provision", e))?;
        if let Some(row) = row
            && row.is_active()
            && row.user_id != user
        {
            return Err(ApiError::instance_not_found());
        }
    }
    let name = match id {
        Some(id) => ActorName::Instance(id),
        None => ActorName::Legacy(user.clone()),
    };
    let provisioned = state
        .instances
        .get(&name)
        .provision(Provision {
            user_id: user,
            org_id,
            env_vars: body.env_vars,
            secrets: body.secrets,
        })
        .await
        .map_err(|e| Scope::Platform.error("provision", e))?;
    state.lookups.provisioned(&name);
    let code = if provisioned.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        axum::Json(json!({
            "sandboxId": provisioned.sandbox_id,
            "instanceId": provisioned.instance_id,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    user_id: Option<String>,
    instance_id: Option<String>,
    #[serde(default)]
    skip_cooldown: bool,
    image_tag: Option<String>,
}

#[utoipa::path(
    post,
    path = "/start",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    request_body = UserBody,
    responses(
        (status = 200, description = "`{started}`: false when already starting or running and healthy"),
        Errors,
        InstanceErrors,
    ),
)]
async fn start(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<UserBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (_, handle, _) = target(
        &state,
        &query,
        body.user_id.as_deref(),
        body.instance_id.as_deref(),
    )
    .await?;
    let started = handle
        .start(body.skip_cooldown)
        .await
        .map_err(|e| Scope::Platform.error("start", e))?;
    Ok(axum::Json(json!({ "started": started })))
}

#[utoipa::path(
    post,
    path = "/stop",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    request_body = UserBody,
    responses(
        (status = 200, description = "`{stopped: true}`: the sandbox process is gone"),
        Errors,
        InstanceErrors,
    ),
)]
async fn stop(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<UserBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (_, handle, _) = target(
        &state,
        &query,
        body.user_id.as_deref(),
        body.instance_id.as_deref(),
    )
    .await?;
    handle
        .stop()
        .await
        .map_err(|e| Scope::Platform.error("stop", e))?;
    Ok(axum::Json(json!({ "stopped": true })))
}

#[utoipa::path(
    post,
    path = "/restart",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    request_body = UserBody,
    responses(
        (status = 200, description = "`{success, error?}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn restart(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<UserBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (_, handle, _) = target(
        &state,
        &query,
        body.user_id.as_deref(),
        body.instance_id.as_deref(),
    )
    .await?;
    let outcome = handle
        .restart(body.image_tag)
        .await
        .map_err(|e| Scope::Platform.error("restart", e))?;
    Ok(axum::Json(views::restarted(outcome)))
}

#[utoipa::path(
    post,
    path = "/destroy",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    request_body = UserBody,
    responses(
        (status = 200, description = "`{finalized, destroyedUserId, destroyedSandboxId}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn destroy(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
    Json(body): Json<UserBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (name, handle, _) = target(
        &state,
        &query,
        body.user_id.as_deref(),
        body.instance_id.as_deref(),
    )
    .await?;
    destroy_instance(state, name, handle).await
}

/// Destroys an instance to the end even if the caller goes away: once the registry row is
/// marked, the actor must be told, or the instance would answer 404 everywhere while its
/// sandbox kept running. So the work runs in a task of its own, which a dropped request (a
/// client that disconnects, the request timeout) does not cancel.
pub(crate) async fn destroy_instance(
    state: Arc<AppState>,
    name: ActorName,
    handle: InstanceRef<ClusterProvider>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    tokio::spawn(async move { destroy_to_the_end(&state, &name, &handle).await })
        .await
        .map_err(|e| ApiError::internal("destroy", e))?
}

/// Marks the registry row destroyed first (so that a crash cannot leave an active row that
/// would bring the instance back), then destroys the actor; un-marks if the actor refuses.
async fn destroy_to_the_end(
    state: &AppState,
    name: &ActorName,
    handle: &InstanceRef<ClusterProvider>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let row_id: Option<InstanceId> = match name {
        ActorName::Instance(id) => Some(*id),
        ActorName::Legacy(user) => state
            .registry
            .get_by_sandbox(&user.legacy_sandbox_id())
            .await
            .map_err(|e| ApiError::from_registry("destroy", e))?
            .filter(|row| row.is_active() && row.user_id == *user)
            .map(|row| row.id),
    };
    // The actor must exist before anything is marked (and a lost one is restored now, while
    // its row is still active).
    handle
        .status()
        .await
        .map_err(|e| Scope::Platform.error("destroy", e))?;
    let mut marked = false;
    if let Some(id) = row_id {
        marked = state
            .registry
            .mark_destroyed(id)
            .await
            .map_err(|e| ApiError::from_registry("destroy", e))?
            == MarkOutcome::Marked;
    }
    match handle.destroy(true).await {
        Ok(d) => {
            state.lookups.destroyed(name);
            Ok(axum::Json(json!({
            "finalized": d.finalized,
            "destroyedUserId": d.user_id,
            "destroyedSandboxId": d.sandbox_id,
            })))
        }
        Err(e) => {
            if marked
                && let Some(id) = row_id
                && let Err(undo) = state.registry.undo_destroy(id).await
            {
                tracing::error!(instance = %id, error = %undo, "could not un-mark a refused destroy");
            }
            Err(Scope::Platform.error("destroy", e))
        }
    }
}

#[utoipa::path(
    get,
    path = "/status",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    responses(
        (status = 200, description = "The instance's status"),
        Errors,
        InstanceErrors,
    ),
)]
async fn status(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (name, handle, _) = target(&state, &query, None, None).await?;
    let view = handle
        .status()
        .await
        .map_err(|e| Scope::Platform.error("status", e))?;
    Ok(axum::Json(views::status(&name, &view)))
}

#[utoipa::path(
    get,
    path = "/debug-status",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    responses(
        (status = 200, description = "Everything but secret and env var values"),
        Errors,
        InstanceErrors,
    ),
)]
async fn debug_status(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (name, handle, _) = target(&state, &query, None, None).await?;
    let debug = handle
        .debug_status()
        .await
        .map_err(|e| Scope::Platform.error("debug status", e))?;
    Ok(axum::Json(views::debug_status(&name, &debug)))
}

#[utoipa::path(
    get,
    path = "/gateway-token",
    tag = "platform",
    security(("internalApiKey" = [])),
    params(InstanceQuery),
    responses(
        (status = 200, description = "`{gatewayToken}`"),
        Errors,
        InstanceErrors,
    ),
)]
async fn gateway_token(
    _: Platform,
    State(state): State<Arc<AppState>>,
    Params(query): Params<InstanceQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (_, handle, _) = target(&state, &query, None, None).await?;
    let view = handle
        .status()
        .await
        .map_err(|e| Scope::Platform.error("gateway token", e))?;
    let sandbox = view.sandbox_id.ok_or_else(|| {
        ApiError::internal(
            "gateway token",
            "a provisioned instance without a sandbox id",
        )
    })?;
    Ok(axum::Json(
        json!({ "gatewayToken": state.instances.gateway_token(&sandbox) }),
    ))
}
