use std::fmt;
use std::str::FromStr;

use crate::error::{IdError, IdKind};
use crate::sandbox::SandboxId;
use crate::serde_str::serde_via_str;
use crate::user::UserId;
use crate::uuid_ids::InstanceId;

/// The name under which an instance's actor lives.
///
/// Instance-keyed actors are named by their instance id, legacy actors (which predate instance
/// ids) by their user id. Both kinds share one actor namespace, so the name carries its kind —
/// `i:<instance id>` or `u:<user id>` — and a user id that happens to look like a UUID can
/// never address an instance's actor.
///
/// ```
/// use burrow_identity::{ActorName, InstanceId, UserId};
/// let id: InstanceId = "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse()?;
/// let user: UserId = "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse()?;
/// assert_eq!(ActorName::Instance(id).to_string(), "i:3f2504e0-4f89-11d3-9a0c-0305e82c3301");
/// assert_eq!(ActorName::Legacy(user).to_string(), "u:3f2504e0-4f89-11d3-9a0c-0305e82c3301");
/// # Ok::<(), burrow_identity::IdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActorName {
    /// The actor of an instance-keyed instance.
    Instance(InstanceId),
    /// The actor of a legacy instance, keyed by its user.
    Legacy(UserId),
}

impl ActorName {
    /// The actor that owns a sandbox: the instance's actor for an instance-keyed sandbox id, the
    /// user's legacy actor for a legacy one.
    pub fn for_sandbox(sandbox: &SandboxId) -> ActorName {
        match sandbox {
            SandboxId::InstanceKeyed(id) => ActorName::Instance(*id),
            SandboxId::Legacy(user) => ActorName::Legacy(user.clone()),
        }
    }

    /// The sandbox id this actor's sandbox has.
    pub fn sandbox_id(&self) -> SandboxId {
        match self {
            ActorName::Instance(id) => id.sandbox_id(),
            ActorName::Legacy(user) => user.legacy_sandbox_id(),
        }
    }
}

impl FromStr for ActorName {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, IdError> {
        let invalid = |reason: &str| IdError::new(IdKind::ActorName, input, reason);
        if let Some(id) = input.strip_prefix("i:") {
            let id = id
                .parse()
                .map_err(|e: IdError| invalid(&format!("after `i:`: {}", e.reason())))?;
            Ok(ActorName::Instance(id))
        } else if let Some(user) = input.strip_prefix("u:") {
            let user = user
                .parse()
                .map_err(|e: IdError| invalid(&format!("after `u:`: {}", e.reason())))?;
            Ok(ActorName::Legacy(user))
        } else {
            Err(invalid("expected `i:<instance id>` or `u:<user id>`"))
        }
    }
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorName::Instance(id) => write!(f, "i:{id}"),
            ActorName::Legacy(user) => write!(f, "u:{user}"),
        }
    }
}

serde_via_str!(ActorName);
