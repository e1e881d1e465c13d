//! The embedded registry: one SQLite file, the default when no PostgreSQL URL is configured.

use burrow_state::now_ms;
use std::path::Path;
use std::sync::{Arc, Mutex};

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::RegistryError;
use crate::model::{InstanceRow, MarkOutcome, NewInstance, Organization, column};
use crate::registry::Registry;

mod embedded {
    refinery::embed_migrations!("../../migrations/sqlite");
}

/// The SQLite migrations (for tools and tests; [`SqliteRegistry::open`] applies them).
pub fn sqlite_migrations() -> refinery::Runner {
    embedded::migrations::runner()
}

/// The registry in an embedded SQLite file.
#[derive(Clone)]
pub struct SqliteRegistry {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRegistry").finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Internal(e.to_string())
}

const COLUMNS: &str =
    "id, user_id, sandbox_id, organization_id, name, created_at_ms, destroyed_at_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 5]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
}

fn instance(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<InstanceRow, RegistryError>> {
    let [id, user, sandbox, org, name] = row(r)?;
    let (created, destroyed): (i64, Option<i64>) = (r.get(5)?, r.get(6)?);
    Ok((|| {
        Ok(InstanceRow {
            id: column(&id.unwrap_or_default(), "instance id")?,
            user_id: column(&user.unwrap_or_default(), "user id")?,
            sandbox_id: column(&sandbox.unwrap_or_default(), "sandbox id")?,
            org_id: org.map(|o| column(&o, "org id")).transpose()?,
            name,
            created_at_ms: created,
            destroyed_at_ms: destroyed,
        })
    })())
}

impl SqliteRegistry {
    /// Opens (creating if needed) the registry at `path` and applies its migrations.
    pub fn open(path: &Path) -> Result<SqliteRegistry, RegistryError> {
        let mut conn = Connection::open(path).map_err(internal)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .map_err(internal)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(internal)?;
        sqlite_migrations().run(&mut conn).map_err(internal)?;
        Ok(SqliteRegistry {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("not poisoned")))
            .await
            .map_err(internal)?
    }

    fn query_one(
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        conn.query_row(sql, params, instance)
            .optional()
            .map_err(internal)?
            .transpose()
    }

    fn query_many(
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        let mut stmt = conn.prepare(sql).map_err(internal)?;
        let rows = stmt.query_map(params, instance).map_err(internal)?;
        rows.map(|r| r.map_err(internal).and_then(|r| r)).collect()
    }
}

impl SqliteRegistry {
    /// Active rows whose `owner_column` equals `owner`, in id order, after `after`.
    async fn list_active(
        &self,
        owner_column: &'static str,
        owner: String,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        self.with(move |conn| {
            Self::query_many(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM instances
                     WHERE {owner_column} = ?1 AND destroyed_at_ms IS NULL AND id > ?2
                     ORDER BY id LIMIT ?3"
                ),
                params![owner, after, limit as i64],
            )
        })
        .await
    }
}

impl Registry for SqliteRegistry {
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
        let name = name.to_owned();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO organizations (id, name, created_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                params![id.to_string(), name, now_ms()],
            )
            .map_err(internal)?;
            let (stored, created): (String, i64) = conn
                .query_row(
                    "SELECT name, created_at_ms FROM organizations WHERE id = ?1",
                    [id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(internal)?;
            if stored != name {
                return Err(RegistryError::Conflict(format!(
                    "organisation {id} exists with the name {stored:?}"
                )));
            }
            Ok(Organization {
                id,
                name,
                created_at_ms: created,
            })
        })
        .await
    }

    async fn create_instance(&self, new: &NewInstance) -> Result<InstanceRow, RegistryError> {
        new.validate()?;
        let new = new.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(internal)?;
            let existing = Self::query_one(&tx, &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"), [new.id.to_string()])?;
            if let Some(existing) = existing {
                return if existing.matches(&new) {
                    Ok(existing)
                } else {
                    Err(RegistryError::Conflict(format!("instance {} exists with other contents", new.id)))
                };
            }
            if let Some(org) = new.org_id {
                let known: bool = tx
                    .query_row("SELECT count(*) > 0 FROM organizations WHERE id = ?1", [org.to_string()], |r| r.get(0))
                    .map_err(internal)?;
                if !known {
                    return Err(RegistryError::UnknownOrganization(org));
                }
            }
            let inserted = tx.execute(
                "INSERT INTO instances (id, user_id, sandbox_id, organization_id, name, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    new.id.to_string(),
                    new.user_id.as_str(),
                    new.sandbox_id.to_string(),
                    new.org_id.map(|o| o.to_string()),
                    new.name,
                    now_ms()
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    return Err(RegistryError::Conflict(format!(
                        "user {:?} already has an active instance with sandbox id {}",
                        new.user_id.as_str(),
                        new.sandbox_id
                    )));
                }
                Err(e) => return Err(internal(e)),
            }
            let row = Self::query_one(&tx, &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"), [new.id.to_string()])?
                .ok_or_else(|| internal("the inserted row vanished"))?;
            tx.commit().map_err(internal)?;
            Ok(row)
        })
        .await
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT count(*) FROM (SELECT 1 FROM instances LIMIT 1)",
                [],
                |_| Ok(()),
            )
            .map_err(internal)
        })
        .await
    }

    async fn get(&self, id: InstanceId) -> Result<Option<InstanceRow>, RegistryError> {
        self.with(move |conn| {
            Self::query_one(
                conn,
                &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
                [id.to_string()],
            )
        })
        .await
    }

    async fn get_by_sandbox(
        &self,
        sandbox_id: &SandboxId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        let sandbox = sandbox_id.to_string();
        self.with(move |conn| {
            Self::query_one(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM instances WHERE sandbox_id = ?1
                     ORDER BY destroyed_at_ms IS NOT NULL, created_at_ms DESC, id LIMIT 1"
                ),
                [sandbox],
            )
        })
        .await
    }

    async fn personal_instance(
        &self,
        user_id: &UserId,
    ) -> Result<Option<InstanceRow>, RegistryError> {
        let user = user_id.as_str().to_owned();
        self.with(move |conn| {
            Self::query_one(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM instances
                     WHERE user_id = ?1 AND organization_id IS NULL AND destroyed_at_ms IS NULL
                     ORDER BY created_at_ms, id LIMIT 1"
                ),
                [user],
            )
        })
        .await
    }

    async fn list_by_user(
        &self,
        user_id: &UserId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        self.list_active("user_id", user_id.as_str().to_owned(), after, limit)
            .await
    }

    async fn list_by_org(
        &self,
        org_id: OrgId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, RegistryError> {
        self.list_active("organization_id", org_id.to_string(), after, limit)
            .await
    }

    async fn mark_destroyed(&self, id: InstanceId) -> Result<MarkOutcome, RegistryError> {
        self.with(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE instances SET destroyed_at_ms = ?2 WHERE id = ?1 AND destroyed_at_ms IS NULL",
                    params![id.to_string(), now_ms()],
                )
                .map_err(internal)?;
            if changed == 1 {
                return Ok(MarkOutcome::Marked);
            }
            let exists: bool = conn
                .query_row("SELECT count(*) > 0 FROM instances WHERE id = ?1", [id.to_string()], |r| r.get(0))
                .map_err(internal)?;
            Ok(if exists { MarkOutcome::AlreadyDestroyed } else { MarkOutcome::NotFound })
        })
        .await
    }

    async fn undo_destroy(&self, id: InstanceId) -> Result<bool, RegistryError> {
        self.with(move |conn| {
            match conn.execute(
                "UPDATE instances SET destroyed_at_ms = NULL WHERE id = ?1 AND destroyed_at_ms IS NOT NULL",
                [id.to_string()],
            ) {
                Ok(changed) => Ok(changed == 1),
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => Err(
                    RegistryError::Conflict(format!("another active instance took the sandbox id of {id}")),
                ),
                Err(e) => Err(internal(e)),
            }
        })
        .await
    }
}
