//! Routes of test builds only (cargo feature `faults`), for the cluster fault run
//! (`tests/suite/cluster_faults/`), all behind an admin token:
//!
//! - `POST /_test/lists/{id}` with `{"element"}` appends to a list; `GET /_test/lists/{id}?op=`
//!   reads it (see [`burrow_instance::lists`]). Both answer the epoch and log entry the turn
//!   committed as.
//! - `POST /_test/faults` with `{"pauseAfterAppendMs": n}` and/or `{"pauseBeforeAppendMs": n}`
//!   (0 clears) sets, while the process runs, the pause between a turn's append to the log and
//!   its local commit, or between its checks and its append.
//! - `POST /_test/panic` panics in its handler (the server must answer 500 and keep serving).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use burrow_instance::lists::{ListAck, Lists};
use burrow_instance::remote::Cluster;
use burrow_runtime::Runtime;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Admin, Json, Params};
use crate::state::AppState;

/// The lists, forwarded through `cluster` when there is one.
pub(crate) fn open_lists(
    runtime: &Runtime,
    cluster: Option<Arc<dyn Cluster>>,
) -> Result<Lists, crate::StartError> {
    let lists = Lists::open(runtime)?;
    Ok(match cluster {
        Some(cluster) => lists.with_cluster(cluster),
        None => lists,
    })
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/lists/{id}", post(append).get(read))
        .route("/faults", post(faults))
        .route("/panic", post(panic))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Append {
    element: String,
}

async fn append(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    Json(body): Json<Append>,
) -> Result<axum::Json<ListAck>, ApiError> {
    state
        .lists
        .append(&id, body.element)
        .await
        .map(axum::Json)
        .map_err(|e| ApiError::from_instance("list append", e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    op: String,
}

async fn read(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    Params(query): Params<Read>,
) -> Result<axum::Json<ListAck>, ApiError> {
    state
        .lists
        .read(&id, query.op)
        .await
        .map(axum::Json)
        .map_err(|e| ApiError::from_instance("list read", e))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Faults {
    pause_after_append_ms: Option<u64>,
    pause_before_append_ms: Option<u64>,
}

async fn faults(_: Admin, Json(body): Json<Faults>) -> axum::http::StatusCode {
    let pause = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
    if let Some(ms) = body.pause_after_append_ms {
        tracing::warn!(ms, "fault switch: pause between append and local commit");
        burrow_runtime::set_pause_after_append(pause(ms));
    }
    if let Some(ms) = body.pause_before_append_ms {
        tracing::warn!(ms, "fault switch: pause before append");
        burrow_runtime::set_pause_before_append(pause(ms));
    }
    axum::http::StatusCode::NO_CONTENT
}

async fn panic(_: Admin) -> axum::http::StatusCode {
    tracing::info!("about to panic on purpose");
    panic!("a panic on purpose")
}
