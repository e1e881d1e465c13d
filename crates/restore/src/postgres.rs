//! The registry in PostgreSQL, through a deadpool-postgres pool.

use std::future::Future;
use std::time::Duration;

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::RegistryError;
use crate::model::{InstanceRow, MarkOutcome, NewInstance, Organization, column};
use crate::registry::Registry;

mod embedded {
    refinery::embed_migrations!("../../migrations/postgres");
}

/// The PostgreSQL migrations (for tools and tests; [`PgRegistry::connect`] applies them).
pub fn postgres_migrations() -> refinery::Runner {
    embedded::migrations::runner()
}

/// The default time limit of each registry operation (connecting included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry in PostgreSQL. Cheap to clone; connections come from a pool, and each
/// operation — connecting included — must answer within the configured timeout, or fail with
/// the retryable [`RegistryError::Timeout`].
#[derive(Clone)]
pub struct PgRegistry {
    pool: Pool,
    timeout: Duration,
}

/// The advisory lock key that serialises the registry's migrations ("burrowrg").
const MIGRATION_LOCK: i64 = 0x6275_7272_6f77_7267;

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRegistry")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn map_pg(e: tokio_postgres::Error) -> RegistryError {
    match e.as_db_error() {
        Some(db) => RegistryError::Internal(format!("{}: {}", db.code().code(), db.message())),
        None => RegistryError::Unavailable(e.to_string()),
    }
}

fn is(e: &tokio_postgres::Error, state: &SqlState) -> bool {
    e.code() == Some(state)
}

const COLUMNS: &str = "id, user_id, sandbox_id, organization_id, name,
    floor(extract(epoch from created_at) * 1000)::int8,
    floor(extract(epoch from destroyed_at) * 1000)::int8";

fn instance(row: &tokio_postgres::Row) -> Result<InstanceRow, RegistryError> {
    let user: String = row.get(1);
    let sandbox: String = row.get(2);
    Ok(InstanceRow {
        id: InstanceId::from_uuid(row.get(0)),
        user_id: column(&user, "user id")?,
        sandbox_id: column(&sandbox, "sandbox id")?,
        org_id: row.get::<_, Option<Uuid>>(3).map(OrgId::from_uuid),
        name: row.get(4),
        created_at_ms: row.get(5),
        destroyed_at_ms: row.get(6),
    })
}

impl PgRegistry {
    /// Connects to the registry at `url` (a `postgres://` URL or key–value string), applies
    /// the migrations, and gives every later operation `timeout` to answer.
    pub async fn connect(url: &str, timeout: Duration) -> Result<PgRegistry, RegistryError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| RegistryError::InvalidInput(format!("database URL: {e}")))?;
        config.connect_timeout(timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let registry = PgRegistry { pool, timeout };
        registry
            .timed(async {
                let mut client = registry.client().await?;
                let client: &mut tokio_postgres::Client = &mut client;
                let failed = |e: &dyn std::fmt::Display| {
                    RegistryError::Internal(format!("migrating the registry: {e}"))
                };
                // Servers sharing a registry start together: refinery's `CREATE TABLE IF NOT
                // EXISTS` races with itself, so one migrates at a time (a session lock, freed
                // with the connection if it dies).
                client
                    .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                    .await
                    .map_err(|e| failed(&e))?;
                let migrated = postgres_migrations().run_async(client).await;
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                    .await;
                migrated.map(drop).map_err(|e| failed(&e))
            })
            .await?;
        Ok(registry)
    }

    /// Runs one operation within the timeout.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| RegistryError::Timeout(self.timeout))?
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, RegistryError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Timeout(_) => RegistryError::Timeout(self.timeout),
            deadpool_postgres::PoolError::Backend(e) => map_pg(e),
            other => RegistryError::Unavailable(other.to_string()),
        })
    }

    async fn one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<InstanceRow>, RegistryError> {
        self.timed(async {
            let client = self.client().await?;
            let row = client.query_opt(sql, params).await.map_err(map_pg)?;
            row.as_ref().map(instance).transpose()
        })
        .await
    }

    async fn many(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        self.timed(async {
            let client = self.client().await?;
            let rows = client.query(sql, params).await.map_err(map_pg)?;
            rows.iter().map(instance).collect()
        })
        .await
    }
}

impl PgRegistry {
    /// Active rows whose `owner_column` equals `owner`, in id order, after `after`.
    async fn list_active(
        &self,
        owner_column: &str,
        owner: &(dyn tokio_postgres::types::ToSql + Sync),
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        let after = after.map_or(Uuid::nil(), |a| a.as_uuid());
        self.many(
            &format!(
                "SELECT {COLUMNS} FROM instances
                 WHERE {owner_column} = $1 AND destroyed_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[owner, &after, &(limit as i64)],
        )
        .await
    }
}

impl Registry for PgRegistry {
    async fn create_organization(
        &self,
        id: OrgId,
        name: &str,
    ) -> Result<Organization, RegistryError> {
        if name.trim().is_empty() {
            return Err(RegistryError::InvalidInput(
                "an organisation's name must not be blank".into(),
            ));
        }
        self.timed(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    &[&id.as_uuid(), &name],
                )
                .await
                .map_err(map_pg)?;
            let row = client
                .query_one(
                    "SELECT name, floor(extract(epoch from created_at) * 1000)::int8
                     FROM organizations WHERE id = $1",
                    &[&id.as_uuid()],
                )
                .await
                .map_err(map_pg)?;
            let stored: String = row.get(0);
            if stored != name {
                return Err(RegistryError::Conflict(format!(
                    "organisation {id} exists with the name {stored:?}"
                )));
            }
            Ok(Organization {
                id,
                name: stored,
                created_at_ms: row.get(1),
            })
        })
        .await
    }

    async fn create_instance(&self, new: &NewInstance) -> Result<InstanceRow, RegistryError> {
        new.validate()?;
        let inserted = self
            .timed(async {
                let client = self.client().await?;
                if let Some(org) = new.org_id {
                    let known = client
                        .query_opt(
                            "SELECT 1 FROM organizations WHERE id = $1",
                            &[&org.as_uuid()],
                        )
                        .await
                        .map_err(map_pg)?;
                    if known.is_none() {
                        return Err(RegistryError::UnknownOrganization(org));
                    }
                }
                let sql = format!(
                    "INSERT INTO instances (id, user_id, sandbox_id, organization_id, name)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
                );
                let org = new.org_id.map(|o| o.as_uuid());
                match client
                    .query_opt(
                        &sql,
                        &[
                            &new.id.as_uuid(),
                            &new.user_id.as_str(),
                            &new.sandbox_id.to_string(),
                            &org,
                            &new.name,
                        ],
                    )
                    .await
                {
                    Ok(row) => row.as_ref().map(instance).transpose(),
                    Err(e) if is(&e, &SqlState::UNIQUE_VIOLATION) => {
                        Err(RegistryError::Conflict(format!(
                            "user {:?} already has an active instance with sandbox id {}",
                            new.user_id.as_str(),
                            new.sandbox_id
                        )))
                    }
                    // The organisation went away between the check and the insert.
                    Err(e) if is(&e, &SqlState::FOREIGN_KEY_VIOLATION) => match new.org_id {
                        Some(org) => Err(RegistryError::UnknownOrganization(org)),
                        None => Err(map_pg(e)),
                    },
                    Err(e) => Err(map_pg(e)),
                }
            })
            .await?;
        match inserted {
            Some(row) => Ok(row),
            // The id exists: the same row again is fine, another is a conflict.
            None => match self.get(new.id).await? {
                Some(existing) if existing.matches(new) => Ok(existing),
                _ => Err(RegistryError::Conflict(format!(
                    "instance {} exists with other contents",
                    new.id
                ))),
            },
        }
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        self.timed(async {
            let client = self.client().await?;
            client
                .query_opt("SELECT 1 FROM instances LIMIT 1", &[])
                .await
                .map_err(map_pg)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: InstanceId) -> Result<Option<InstanceRow>, RegistryError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM instances WHERE id = $1"),
            &[&id.as_uuid()],
        )
        .await
    }

    async fn get_by_sandbox(
        &self,
        sandbox_id: &SandboxId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM instances WHERE sandbox_id = $1
                 ORDER BY destroyed_at IS NOT NULL, created_at DESC, id LIMIT 1"
            ),
            &[&sandbox_id.to_string()],
        )
        .await
    }

    async fn personal_instance(
        &self,
        user_id: &UserId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM instances
                 WHERE user_id = $1 AND organization_id IS NULL AND destroyed_at IS NULL
                 ORDER BY created_at, id LIMIT 1"
            ),
            &[&user_id.as_str()],
        )
        .await
    }

    async fn list_by_user(
        &self,
        user_id: &UserId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        self.list_active("user_id", &user_id.as_str(), after, limit)
            .await
    }

    async fn list_by_org(
        &self,
        org_id: OrgId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        self.list_active("organization_id", &org_id.as_uuid(), after, limit)
            .await
    }

    async fn mark_destroyed(&self, id: InstanceId) -> Result<MarkOutcome, RegistryError> {
        self.timed(async {
            let client = self.client().await?;
            let changed = client
                .execute(
                    "UPDATE instances SET destroyed_at = now() WHERE id = $1 AND destroyed_at IS NULL",
                    &[&id.as_uuid()],
                )
                .await
                .map_err(map_pg)?;
            if changed == 1 {
                return Ok(MarkOutcome::Marked);
            }
            let exists = client
                .query_opt("SELECT 1 FROM instances WHERE id = $1", &[&id.as_uuid()])
                .await
                .map_err(map_pg)?;
            Ok(if exists.is_some() {
                MarkOutcome::AlreadyDestroyed
            } else {
                MarkOutcome::NotFound
            })
        })
        .await
    }

    async fn undo_destroy(&self, id: InstanceId) -> Result<bool, RegistryError> {
        self.timed(async {
            let client = self.client().await?;
            match client
                .execute(
                    "UPDATE instances SET destroyed_at = NULL WHERE id = $1 AND destroyed_at IS NOT NULL",
                    &[&id.as_uuid()],
                )
                .await
            {
                Ok(changed) => Ok(changed == 1),
                Err(e) if is(&e, &SqlState::UNIQUE_VIOLATION) => Err(RegistryError::Conflict(format!(
                    "another active instance took the sandbox id of {id}"
                ))),
                Err(e) => Err(map_pg(e)),
            }
        })
        .await
    }
}
