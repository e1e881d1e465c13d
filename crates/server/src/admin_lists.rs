//! Admin listings of actors and incidents: `GET /api/admin/actors`, `/actors/count` and
//! `/incidents`. In a cluster they come from PostgreSQL (every node's actors and incidents);
//! on one machine from the runtime's catalog, or for incidents from the replicated log when
//! there is one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use burrow_log_postgres::views::{IncidentKind, IncidentRow};
use burrow_runtime::turn_log::Incident;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::{Admin, Params};
use crate::paging::{self, cursor};
use crate::state::AppState;

/// The page size of these listings when none is asked for.
const DEFAULT_LIMIT: usize = 50;

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what}");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Log unavailable").details(what.to_owned())
}

/// A page of at most `limit` after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActorsQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The instance actors, by id: `{"actors":[{id, name, createdAt, lastActiveAt, nodeId?}],
/// "nextCursor"}`.
#[utoipa::path(
    get,
    path = "/actors",
    tag = "admin",
    security(("bearer" = [])),
    params(ActorsQuery),
    responses(
        (status = 200, description = "The instance actors, paged: `{actors, nextCursor}`"),
        crate::openapi::Errors,
    ),
)]
pub(crate) async fn actors(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
    Params(query): Params<ActorsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let after: Option<burrow_runtime::ActorId> = cursor(query.cursor.as_deref())?;
    let (actors, last) = match &state.cluster {
        Some(node) => {
            let after = after.map(|id| id.to_string());
            let rows = node
                .log()
                .actors(burrow_instance::NAMESPACE, after.as_deref(), limit)
                .await
                .map_err(|e| unavailable("listing actors from the log", e))?;
            let last = rows.last().map(|r| r.id.clone());
            let actors: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "name": r.name,
                        "createdAt": r.created_at_ms,
                        "lastActiveAt": r.updated_at_ms,
                        "nodeId": r.node_id,
                    })
                })
                .collect();
            (actors, last)
        }
        None => {
            let records = state
                .runtime
                .catalog()
                .list(burrow_instance::NAMESPACE, after, limit)
                .await
                .map_err(|e| ApiError::from_call("list actors", e))?;
            let last = records.last().map(|r| r.id.to_string());
            let actors = records
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id.to_string(),
                        "name": r.name,
                        "createdAt": burrow_state::epoch_ms(r.created_at),
                        "lastActiveAt": burrow_state::epoch_ms(r.last_active),
                    })
                })
                .collect();
            (actors, last)
        }
    };
    let next = paging::next(actors.len(), limit, last);
    Ok(axum::Json(json!({ "actors": actors, "nextCursor": next })))
}

/// How many instance actors there are: `{"count"}`.
#[utoipa::path(
    get,
    path = "/actors/count",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{count}` of instance actors"),
        crate::openapi::Errors,
    ),
)]
pub(crate) async fn count(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
) -> Result<axum::Json<Value>, ApiError> {
    let count = match &state.cluster {
        Some(node) => node
            .log()
            .actor_count(burrow_instance::NAMESPACE)
            .await
            .map_err(|e| unavailable("counting actors in the log", e))?,
        None => state
            .runtime
            .catalog()
            .count(burrow_instance::NAMESPACE)
            .await
            .map_err(|e| ApiError::from_call("count actors", e))?,
    };
    Ok(axum::Json(json!({ "count": count })))
}

/// `kind` (`deadAlarm` or `quarantined`), and a page of at most `limit` after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncidentsQuery {
    kind: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Dead-lettered alarms (`kind=deadAlarm`) or quarantined actor files (`kind=quarantined`),
/// oldest first: `{"incidents":[…], "nextCursor"}`.
#[utoipa::path(
    get,
    path = "/incidents",
    tag = "admin",
    security(("bearer" = [])),
    params(IncidentsQuery),
    responses(
        (status = 200, description = "Oldest first, paged: `{incidents, nextCursor}`"),
        crate::openapi::Errors,
    ),
)]
pub(crate) async fn incidents(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
    Params(query): Params<IncidentsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let kind = match query.kind.as_deref() {
        Some("deadAlarm") => IncidentKind::DeadAlarm,
        Some("quarantined") => IncidentKind::Quarantined,
        other => {
            return Err(ApiError::bad_request(format!(
                "kind must be deadAlarm or quarantined, got {other:?}"
            )));
        }
    };
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let after: Option<i64> = cursor(query.cursor.as_deref())?;
    let Some(log) = &state.pg_log else {
        return local_incidents(&state, kind).await;
    };
    let rows = log
        .incidents(kind, after, limit)
        .await
        .map_err(|e| unavailable("listing incidents from the log", e))?;
    let next = paging::next(rows.len(), limit, rows.last().map(|r| r.id.to_string()));
    Ok(axum::Json(json!({
        "incidents": rows.iter().map(incident_view).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

fn incident_view(row: &IncidentRow) -> Value {
    let mut view = json!({
        "actorId": row.actor_id,
        "namespace": row.namespace,
        "nodeId": row.node_id,
        "at": row.at_ms,
    });
    let detail = match &row.incident {
        Incident::DeadAlarm {
            name,
            due_ms,
            attempts,
            error,
        } => json!({"alarm": name, "dueAt": due_ms, "attempts": attempts, "lastError": error}),
        Incident::Quarantined { reason, moved_to } => {
            json!({"reason": reason, "movedTo": moved_to})
        }
    };
    if let (Some(view), Value::Object(detail)) = (view.as_object_mut(), detail) {
        view.extend(detail);
    }
    view
}

/// Without a replicated log: the dead letters and quarantined files this runtime's catalog
/// holds for the instance actors (all of them: one machine's are few).
async fn local_incidents(
    state: &AppState,
    kind: IncidentKind,
) -> Result<axum::Json<Value>, ApiError> {
    let catalog = state.runtime.catalog();
    let incidents: Vec<Value> = match kind {
        IncidentKind::DeadAlarm => catalog
            .dead_alarms(burrow_instance::NAMESPACE)
            .await
            .map_err(|e| ApiError::from_call("list dead alarms", e))?
            .iter()
            .map(|d| {
                json!({
                    "actorId": d.id.to_string(),
                    "namespace": d.namespace,
                    "nodeId": null,
                    "at": burrow_state::epoch_ms(d.dead_at),
                    "alarm": d.name,
                    "dueAt": burrow_state::epoch_ms(d.due),
                    "attempts": d.attempts,
                    "lastError": d.last_error,
                })
            })
            .collect(),
        IncidentKind::Quarantined => catalog
            .quarantined(burrow_instance::NAMESPACE)
            .await
            .map_err(|e| ApiError::from_call("list quarantined files", e))?
            .iter()
            .map(|q| {
                json!({
                    "actorId": q.id.to_string(),
                    "namespace": q.namespace,
                    "nodeId": null,
                    "at": burrow_state::epoch_ms(q.at),
                    "reason": q.reason,
                    "movedTo": q.moved_to.display().to_string(),
                })
            })
            .collect(),
    };
    Ok(axum::Json(
        json!({ "incidents": incidents, "nextCursor": null }),
    ))
}

/// The runtime's namespaces with how many actors this node's catalog lists in each:
/// `{"namespaces":[{"namespace","count"}]}`.
#[utoipa::path(
    get,
    path = "/namespaces",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{namespaces: [{namespace, count}]}` from this node's catalog"),
        crate::openapi::Errors,
    ),
)]
pub(crate) async fn namespaces(
    Admin(_): Admin,
    State(state): State<Arc<AppState>>,
) -> Result<axum::Json<Value>, ApiError> {
    let catalog = state.runtime.catalog();
    let failed = |e| ApiError::internal("reading the catalog", e);
    let mut listed = Vec::new();
    for namespace in catalog.namespaces().await.map_err(failed)? {
        let count = catalog.count(&namespace).await.map_err(failed)?;
        listed.push(json!({ "namespace": namespace, "count": count }));
    }
    Ok(axum::Json(json!({ "namespaces": listed })))
}
