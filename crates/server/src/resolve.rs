//! Finding the instance a request names, and checking that it belongs to the caller — before
//! any actor is woken, so that probing random ids creates nothing.

use burrow_identity::{ActorName, InstanceId, UserId};
use burrow_instance::{InstanceError, InstanceRef, LocalProvider};
use burrow_restore::Registry as _;

use crate::app::AppState;
use crate::error::ApiError;

/// Who is asking, which decides what "not found" looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Platform callers are trusted: "not provisioned" and "not yours" may differ.
    Platform,
    /// Users must not learn whether someone else's instance exists.
    User,
}

impl Scope {
    /// The 404 for an instance that does not exist.
    pub fn missing(self) -> ApiError {
        match self {
            Scope::Platform => ApiError::not_provisioned(),
            Scope::User => ApiError::instance_not_found(),
        }
    }

    /// An instance error for `operation`.
    pub fn error(self, operation: &str, e: InstanceError) -> ApiError {
        match e {
            InstanceError::NotProvisioned => self.missing(),
            InstanceError::WrongUser => ApiError::instance_not_found(),
            other => ApiError::from_instance(operation, other),
        }
    }
}

/// The owner of instance `id`, if it has an active instance-keyed row. Owners never change,
/// so one seen once is remembered (see [`AppState::owners`]).
async fn owner_of(state: &AppState, id: InstanceId) -> Result<Option<UserId>, ApiError> {
    if let Some(owner) = state.owners.get(&id) {
        return Ok(Some(owner.clone()));
    }
    let row = state
        .registry
        .get(id)
        .await
        .map_err(|e| ApiError::from_registry("instance lookup", e))?
        .filter(|row| row.is_active() && row.sandbox_id == id.sandbox_id());
    Ok(row.map(|row| {
        if state.owners.len() >= crate::app::OWNER_CACHE_LIMIT {
            state.owners.clear();
        }
        state.owners.insert(id, row.user_id.clone());
        row.user_id
    }))
}

/// The instance `id` of `owner` (or, without an id, `owner`'s legacy instance). An
/// instance-keyed id must name an active instance-keyed row of `owner` in the registry.
pub async fn instance(
    state: &AppState,
    scope: Scope,
    owner: &UserId,
    id: Option<InstanceId>,
) -> Result<(ActorName, InstanceRef<LocalProvider>), ApiError> {
    let name = match id {
        None => ActorName::Legacy(owner.clone()),
        Some(id) => match owner_of(state, id).await? {
            None => return Err(scope.missing()),
            Some(found) if found != *owner => return Err(ApiError::instance_not_found()),
            Some(_) => ActorName::Instance(id),
        },
    };
    let handle = state.instances.get(&name);
    Ok((name, handle))
}

/// An instance by id alone (admin routes): it must have an active instance-keyed row.
pub async fn any_instance(
    state: &AppState,
    id: InstanceId,
) -> Result<(ActorName, InstanceRef<LocalProvider>, UserId), ApiError> {
    let owner = owner_of(state, id)
        .await?
        .ok_or_else(ApiError::instance_not_found)?;
    let name = ActorName::Instance(id);
    let handle = state.instances.get(&name);
    Ok((name, handle, owner))
}
