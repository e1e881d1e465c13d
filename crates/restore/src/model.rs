use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};

use crate::error::RegistryError;

/// An organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its name (never blank).
    pub name: String,
    /// When created, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A row to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    /// The row's id (for instance-keyed rows, the instance id its actor is named by).
    pub id: InstanceId,
    /// The owner.
    pub user_id: UserId,
    /// `ki_` + the id for an instance-keyed row; the user's legacy sandbox id for a legacy row.
    pub sandbox_id: SandboxId,
    /// The owning organisation, or `None` for a personal instance.
    pub org_id: Option<OrgId>,
    /// A display name.
    pub name: Option<String>,
}

impl NewInstance {
    /// A row of an instance-keyed instance: its sandbox id derives from its id.
    pub fn instance_keyed(id: InstanceId, user_id: UserId, org_id: Option<OrgId>) -> NewInstance {
        NewInstance {
            id,
            user_id,
            sandbox_id: id.sandbox_id(),
            org_id,
            name: None,
        }
    }

    /// Checks the two kinds of rows: an instance-keyed row's sandbox id is `ki_` + its own id;
    /// a legacy row's is its user's legacy sandbox id.
    pub(crate) fn validate(&self) -> Result<(), RegistryError> {
        match &self.sandbox_id {
            SandboxId::InstanceKeyed(id) if *id != self.id => {
                Err(RegistryError::InvalidInput(format!(
                    "an instance-keyed row's sandbox id must be {}, not {}",
                    self.id.sandbox_id(),
                    self.sandbox_id
                )))
            }
            SandboxId::Legacy(user) if *user != self.user_id => {
                Err(RegistryError::InvalidInput(format!(
                    "legacy sandbox id {} belongs to user {user:?}, not {:?}",
                    self.sandbox_id,
                    self.user_id.as_str()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// A row of the `instances` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// The row's id.
    pub id: InstanceId,
    /// The owner.
    pub user_id: UserId,
    /// The sandbox id.
    pub sandbox_id: SandboxId,
    /// The organisation, if any.
    pub org_id: Option<OrgId>,
    /// A display name.
    pub name: Option<String>,
    /// When created (ms since the epoch).
    pub created_at_ms: i64,
    /// When destroyed (soft delete); `None` while active.
    pub destroyed_at_ms: Option<i64>,
}

impl InstanceRow {
    /// Whether the row is active (not destroyed).
    pub fn is_active(&self) -> bool {
        self.destroyed_at_ms.is_none()
    }

    pub(crate) fn matches(&self, new: &NewInstance) -> bool {
        self.user_id == new.user_id
            && self.sandbox_id == new.sandbox_id
            && self.org_id == new.org_id
            && self.name == new.name
    }
}

/// What [`Registry::mark_destroyed`](crate::Registry::mark_destroyed) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The row was active and is now destroyed.
    Marked,
    /// The row was already destroyed; nothing changed.
    AlreadyDestroyed,
    /// No row has that id.
    NotFound,
}

/// Parses a stored column into an identifier, as a registry failure if it does not parse.
pub(crate) fn column<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, RegistryError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| RegistryError::Internal(format!("stored {what} {text:?}: {e}")))
}
