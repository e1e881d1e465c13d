//! Choosing the registry: PostgreSQL when a URL is configured, the embedded SQLite otherwise.

use std::path::Path;
use std::time::Duration;

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};

use crate::error::RegistryError;
use crate::model::{InstanceRow, MarkOutcome, NewInstance, Organization};
use crate::postgres::PgRegistry;
use crate::registry::Registry;
use crate::sqlite::SqliteRegistry;

/// File name of the embedded registry inside the data directory.
pub const SQLITE_REGISTRY_FILE: &str = "registry.db";

/// Either registry, chosen at start-up.
#[derive(Debug, Clone)]
pub enum AnyRegistry {
    /// PostgreSQL.
    Postgres(PgRegistry),
    /// The embedded SQLite registry.
    Sqlite(SqliteRegistry),
}

impl AnyRegistry {
    /// PostgreSQL at `database_url` if one is given (each operation limited to `timeout`),
    /// otherwise the embedded registry at `<data_dir>/registry.db`. Migrations are applied
    /// either way.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        timeout: Duration,
    ) -> Result<AnyRegistry, RegistryError> {
        match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Ok(AnyRegistry::Postgres(
                PgRegistry::connect(url, timeout).await?,
            )),
            None => {
                let path = data_dir.join(SQLITE_REGISTRY_FILE);
                let registry = tokio::task::spawn_blocking(move || SqliteRegistry::open(&path))
                    .await
                    .map_err(|e| RegistryError::Internal(e.to_string()))??;
                Ok(AnyRegistry::Sqlite(registry))
            }
        }
    }
}

/// Runs the call on whichever registry this is, counting it and timing it by operation:
/// `burrow_registry_operations_total{op,outcome}` and `burrow_registry_operation_seconds{op}`.
macro_rules! delegate {
    ($self:ident, $op:literal, $r:ident => $call:expr) => {{
        let started = std::time::Instant::now();
        let result = match $self {
            AnyRegistry::Postgres($r) => $call.await,
            AnyRegistry::Sqlite($r) => $call.await,
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_retryable() => "unavailable",
            Err(_) => "error",
        };
        metrics::counter!("burrow_registry_operations_total", "op" => $op, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("burrow_registry_operation_seconds", "op" => $op)
            .record(started.elapsed().as_secs_f64());
        result
    }};
}

impl Registry for AnyRegistry {
    async fn create_organization(
        &self,
        id: OrgId,
        name: &str,
    ) -> Result<Organization, RegistryError> {
        delegate!(self, "create_organization", r => r.create_organization(id, name))
    }

    async fn create_instance(&self, new: &NewInstance) -> Result<InstanceRow, RegistryError> {
        delegate!(self, "create_instance", r => r.create_instance(new))
    }

    async fn get(&self, id: InstanceId) -> Result<Option<InstanceRow>, RegistryError> {
        delegate!(self, "get", r => r.get(id))
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        delegate!(self, "ping", r => r.ping())
    }

    async fn get_by_sandbox(
        &self,
        sandbox_id: &SandboxId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        delegate!(self, "get_by_sandbox", r => r.get_by_sandbox(sandbox_id))
    }

    async fn personal_instance(
        &self,
        user_id: &UserId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        delegate!(self, "personal_instance", r => r.personal_instance(user_id))
    }

    async fn list_by_user(
        &self,
        user_id: &UserId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        delegate!(self, "list_by_user", r => r.list_by_user(user_id, after, limit))
    }

    async fn list_by_org(
        &self,
        org_id: OrgId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        delegate!(self, "list_by_org", r => r.list_by_org(org_id, after, limit))
    }

    async fn mark_destroyed(&self, id: InstanceId) -> Result<MarkOutcome, RegistryError> {
        delegate!(self, "mark_destroyed", r => r.mark_destroyed(id))
    }

    async fn undo_destroy(&self, id: InstanceId) -> Result<bool, RegistryError> {
        delegate!(self, "undo_destroy", r => r.undo_destroy(id))
    }
}
