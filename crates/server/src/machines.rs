//! The cluster's machine book over PostgreSQL and the internal machines API
//! (`POST /_burrow/machines/{id}/{start|stop|delete}` on the hosting node), for
//! [`ClusterProvider`]. See `docs/CLUSTER.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use burrow_identity::MachineId;
use burrow_instance::provider::{
    BookFuture, ClusterProvider, Hosted, Labels, Machine, MachineBook, MachineOp, MachineState,
    ProviderError, SandboxProvider as _,
};
use burrow_instance::remote::PROTOCOL_VERSION;
use burrow_log_postgres::PgTurnLog;
use burrow_log_postgres::machines::{HostedMachine, MachineRow, Wanted};
use serde_json::json;

use crate::error::ApiError;
use crate::peers::{PROTOCOL_HEADER, SECRET_HEADER};
use crate::state::AppState;

/// The machine book of a node.
pub struct PgMachineBook {
    log: PgTurnLog,
    secret: String,
    http: reqwest::Client,
}

impl PgMachineBook {
    /// The book in `log` (a node's log), asking other nodes with `secret`.
    pub fn new(log: PgTurnLog, secret: String, timeout: std::time::Duration) -> PgMachineBook {
        PgMachineBook {
            log,
            secret,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .unwrap_or_default(),
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Failed(format!("{what}: {e}"))
}

fn state_name(state: MachineState) -> &'static str {
    match state {
        MachineState::Destroying => "destroying",
        MachineState::Stopped => "stopped",
        MachineState::Starting => "starting",
        MachineState::Running => "running",
    }
}

fn state_named(name: &str) -> MachineState {
    match name {
        "destroying" => MachineState::Destroying,
        "starting" => MachineState::Starting,
        "running" => MachineState::Running,
        _ => MachineState::Stopped,
    }
}

fn row_of(machine: &Machine) -> Result<MachineRow, ProviderError> {
    Ok(MachineRow {
        machine_id: machine.id.to_string(),
        volume_id: machine.volume_id.to_string(),
        user_id: machine.labels.user_id.to_string(),
        sandbox_id: machine.labels.sandbox_id.to_string(),
        record: serde_json::to_string(&machine.labels).map_err(|e| failed("labels", e))?,
        state: state_name(machine.state).into(),
        address: machine.address.map(|a| a.to_string()),
        created_at_ms: machine.created_at_ms,
    })
}

fn hosted_of(h: HostedMachine) -> Result<Hosted, ProviderError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        ProviderError::Failed(format!(
            "machine {} recorded with a bad {what}: {e}",
            h.row.machine_id
        ))
    };
    let labels: Labels = serde_json::from_str(&h.row.record).map_err(|e| bad("record", &e))?;
    Ok(Hosted {
        machine: Machine {
            id: h.row.machine_id.parse().map_err(|e| bad("id", &e))?,
            volume_id: h.row.volume_id.parse().map_err(|e| bad("volume", &e))?,
            labels,
            state: state_named(&h.row.state),
            created_at_ms: h.row.created_at_ms,
            address: h.row.address.as_deref().and_then(|a| a.parse().ok()),
        },
        node_id: h.node_id,
        node_url: h.node_url,
        host_alive: h.host_alive,
    })
}

impl MachineBook for PgMachineBook {
    fn record<'a>(&'a self, machine: &'a Machine, started: bool) -> BookFuture<'a, ()> {
        Box::pin(async move {
            let row = row_of(machine)?;
            self.log
                .record_machine(&row, started)
                .await
                .map_err(|e| failed("recording the machine", e))
        })
    }

    fn forget<'a>(&'a self, id: &'a MachineId) -> BookFuture<'a, ()> {
        Box::pin(async move {
            self.log
                .forget_machine(id.as_str())
                .await
                .map_err(|e| failed("forgetting the machine", e))
        })
    }

    fn find<'a>(&'a self, id: &'a MachineId) -> BookFuture<'a, Option<Hosted>> {
        Box::pin(async move {
            let found = self
                .log
                .machine(id.as_str())
                .await
                .map_err(|e| failed("finding the machine", e))?;
            found.map(hosted_of).transpose()
        })
    }

    fn labelled<'a>(
        &'a self,
        user: &'a burrow_identity::UserId,
        sandbox: &'a burrow_identity::SandboxId,
    ) -> BookFuture<'a, Vec<Hosted>> {
        Box::pin(async move {
            let rows = self
                .log
                .machines_labelled(user.as_ref(), &sandbox.to_string())
                .await
                .map_err(|e| failed("listing machines", e))?;
            rows.into_iter().map(hosted_of).collect()
        })
    }

    fn ask<'a>(&'a self, hosted: &'a Hosted, op: MachineOp) -> BookFuture<'a, Option<Machine>> {
        Box::pin(async move {
            let id = &hosted.machine.id;
            let url = hosted
                .node_url
                .as_deref()
                .ok_or_else(|| ProviderError::NotFound(id.to_string()))?;
            let (verb, body) = match &op {
                MachineOp::Start(env) => ("start", json!({ "env": env })),
                MachineOp::Stop => ("stop", json!({})),
                MachineOp::Delete => ("delete", json!({})),
            };
            let response = self
                .http
                .post(format!(
                    "{}/_burrow/machines/{id}/{verb}",
                    url.trim_end_matches('/')
                ))
                .header(SECRET_HEADER, &self.secret)
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .json(&body)
                .send()
                .await
                .map_err(|e| failed(&format!("asking {url} to {verb} machine {id}"), e))?;
            if !response.status().is_success() {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(ProviderError::Failed(format!(
                    "{url} refused to {verb} machine {id} ({status}): {text}"
                )));
            }
            Ok(self.find(id).await?.map(|h| h.machine))
        })
    }

    fn defer<'a>(&'a self, id: &'a MachineId, op: MachineOp) -> BookFuture<'a, ()> {
        Box::pin(async move {
            let wanted = match op {
                MachineOp::Stop => Wanted::Stopped,
                MachineOp::Delete => Wanted::Deleted,
                MachineOp::Start(_) => return Ok(()),
            };
            self.log
                .want_machine(id.as_str(), wanted)
                .await
                .map_err(|e| failed("recording what is wanted of the machine", e))
        })
    }
}

/// What this node was asked to do with its machines while it could not be asked: carried out
/// when it starts or rejoins; then every machine it hosts is recorded again, and records of
/// machines it no longer has (its data directory was lost) are dropped.
pub async fn settle(log: &PgTurnLog, provider: &ClusterProvider) {
    let recorded = match log.machines_here().await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::warn!("reading this node's machines: {e}");
            return;
        }
    };
    let mut ops = Vec::new();
    for (id, wanted) in recorded {
        let Ok(id) = id.parse::<MachineId>() else {
            continue;
        };
        if !provider.local().hosts(&id) {
            if let Err(e) = log.forget_machine(id.as_str()).await {
                tracing::warn!(machine = %id, "forgetting a machine this node no longer has: {e}");
            }
            continue;
        }
        match wanted {
            Wanted::Stopped => ops.push((id, MachineOp::Stop)),
            Wanted::Deleted => ops.push((id, MachineOp::Delete)),
            Wanted::Kept => {}
        }
    }
    match provider.settle(&ops).await {
        Ok(done) => tracing::info!(done, "settled this node's machines"),
        Err(e) => tracing::warn!("settling this node's machines: {e}"),
    }
}

/// `POST /_burrow/machines/{id}/{op}`: another node asks this one, which hosts the machine.
#[utoipa::path(
    post,
    path = "/_burrow/machines/{id}/{op}",
    tag = "cluster",
    security(("clusterSecret" = [])),
    params(
        ("id" = String, Path, description = "The machine id"),
        ("op" = String, Path, description = "`start` (body `{env}`), `stop` or `delete`"),
    ),
    responses(
        (status = 200, description = "`{ok: true}`"),
        (status = 400, description = "A bad machine id or body, or another protocol version", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not the cluster's secret", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not hosted here, or no such operation", body = crate::openapi::ErrorBody),
        (status = 500, description = "The operation failed", body = crate::openapi::ErrorBody),
    )
)]
pub async fn internal(
    State(state): State<Arc<AppState>>,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    crate::internal::authenticate(&state, &headers)?;
    let id: MachineId = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("machine id {id:?}: {e}")))?;
    let provider = state.instances.provider();
    if !provider.local().hosts(&id) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Not found")
            .details(format!("machine {id} is not hosted here")));
    }
    let result = match op.as_str() {
        "start" => {
            #[derive(serde::Deserialize)]
            struct StartBody {
                env: BTreeMap<String, String>,
            }
            let body: StartBody = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("a start: {e}")))?;
            provider.start(&id, body.env).await.map(drop)
        }
        "stop" => provider.stop(&id).await,
        "delete" => provider.delete_here(&id).await,
        other => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "Not found")
                .details(format!("no machine operation {other:?}")));
        }
    };
    result.map_err(|e| ApiError::internal("machine operation", e))?;
    Ok(Json(json!({ "ok": true })))
}
