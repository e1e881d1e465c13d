//! Finding the instance a request names, and checking that it belongs to the caller — before
//! any actor is woken, so that probing random ids creates nothing.

use axum::http::StatusCode;
use burrow_identity::{ActorName, InstanceId, UserId};
use burrow_instance::provider::ClusterProvider;
use burrow_instance::{InstanceError, InstanceRef};

use crate::error::ApiError;
use crate::state::AppState;

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

/// The owner of `name`, if it exists: a legacy actor's file here, or the active registry row
/// restore would rebuild it from ([`burrow_restore::find_row`]).
/// A lookup that reaches the registry costs `caller` one from its budget.
async fn owner_of(
    state: &AppState,
    name: &ActorName,
    caller: Option<&UserId>,
) -> Result<Option<UserId>, ApiError> {
    if let Some(known) = state.lookups.known(name) {
        return Ok(known);
    }
    if let ActorName::Legacy(user) = name
        && state.instances.has_local_state(name)
    {
        state.lookups.remember(name, Some(user));
        return Ok(Some(user.clone()));
    }
    if let Some(caller) = caller {
        state.lookups.take(caller).map_err(|t| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many lookups").details(format!(
                "instance lookups are limited to {} per second per user; retry in {} ms",
                state.limits.lookups_per_second,
                t.retry_after.as_millis().max(1)
            ))
        })?;
    }
    let owner = burrow_restore::find_row(&state.registry, name)
        .await
        .map_err(|e| ApiError::from_registry("instance lookup", e))?
        .map(|(row, _)| row.user_id);
    state.lookups.remember(name, owner.as_ref());
    Ok(owner)
}

/// The instance `id` of `owner` (or, without an id, `owner`'s legacy instance). It must exist
/// (see `owner_of`) and belong to `owner` before its actor is woken: probing random ids or
/// user ids creates nothing. User-scope lookups count against `owner`'s lookup budget.
pub async fn instance(
    state: &AppState,
    scope: Scope,
    owner: &UserId,
    id: Option<InstanceId>,
) -> Result<(ActorName, InstanceRef<ClusterProvider>), ApiError> {
    let name = match id {
        None => ActorName::Legacy(owner.clone()),
        Some(id) => ActorName::Instance(id),
    };
    let caller = (scope == Scope::User).then_some(owner);
    match owner_of(state, &name, caller).await? {
        None => return Err(scope.missing()),
        Some(found) if found != *owner => return Err(ApiError::instance_not_found()),
        Some(_) => {}
    }
    let handle = state.instances.get(&name);
    Ok((name, handle))
}

/// An instance by id alone (admin routes): it must have an active instance-keyed row.
pub async fn any_instance(
    state: &AppState,
    id: InstanceId,
) -> Result<(ActorName, InstanceRef<ClusterProvider>, UserId), ApiError> {
    let name = ActorName::Instance(id);
    let owner = owner_of(state, &name, None)
        .await?
        .ok_or_else(ApiError::instance_not_found)?;
    let handle = state.instances.get(&name);
    Ok((name, handle, owner))
}
