//! Rebuilding a lost actor's state from the registry, by the actor's own key.

use burrow_identity::ActorName;
use burrow_state::{InstanceState, RestoreSource, Status};

use crate::error::RegistryError;
use crate::model::InstanceRow;
use crate::registry::Registry;

/// A state rebuilt from the registry, ready to be written by the actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// Identity from the row; lifecycle at a safe "provisioned"; configuration empty and
    /// `configuration_lost` set (the registry holds no configuration).
    pub state: InstanceState,
    /// The row it came from.
    pub row: InstanceRow,
    /// Which lookup found the row.
    pub source: RestoreSource,
}

/// Finds the row of the actor named `actor`, and which lookup found it: `None` when the registry
/// has no active row for it.
///
/// An instance-keyed actor looks itself up by its instance id — never by its user, so an
/// instance of a user who also has a legacy personal instance finds its own row. A legacy
/// actor looks up its legacy sandbox id, then the user's active personal instance. The server
/// asks the same question (does this actor exist, and whose is it?) before it wakes an actor.
pub async fn find_row<R: Registry>(
    registry: &R,
    actor: &ActorName,
) -> Result<Option<(InstanceRow, RestoreSource)>, RegistryError> {
    Ok(match actor {
        // Only the instance-keyed row of this id: a legacy row also has an id, but its actor
        // is the user's legacy actor, and two actors must never drive one sandbox.
        ActorName::Instance(id) => registry
            .get(*id)
            .await?
            .filter(|row| row.is_active() && row.sandbox_id == id.sandbox_id())
            .map(|row| (row, RestoreSource::InstanceId)),
        ActorName::Legacy(user) => {
            match registry
                .get_by_sandbox(&user.legacy_sandbox_id())
                .await?
                .filter(|row| row.is_active() && row.user_id == *user)
            {
                Some(row) => Some((row, RestoreSource::SandboxId)),
                None => registry
                    .personal_instance(user)
                    .await?
                    .map(|row| (row, RestoreSource::PersonalInstance)),
            }
        }
    })
}

/// Finds the row of the actor named `actor` ([`find_row`]) and builds the state to write, or
/// `None` when the registry has no active row for it (a destroyed row restores nothing).
/// Nothing is written here: a registry that cannot answer leaves the actor as it was (the
/// error says whether to retry).
pub async fn restore<R: Registry>(
    registry: &R,
    actor: &ActorName,
    now_ms: i64,
) -> Result<Option<Restored>, RegistryError> {
    let found = find_row(registry, actor).await?;
    Ok(found.map(|(row, source)| {
        let mut state = InstanceState::fresh();
        state.user_id = Some(row.user_id.clone());
        state.sandbox_id = Some(row.sandbox_id.clone());
        state.org_id = row.org_id;
        state.status = Some(Status::Provisioned);
        state.provisioned_at = Some(row.created_at_ms);
        state.restored_at = Some(now_ms);
        state.restored_from = Some(source);
        state.configuration_lost = true;
        Restored { state, row, source }
    }))
}
