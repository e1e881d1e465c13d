//! What callers send an instance and what they get back.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};
use burrow_runtime::CallError;
use burrow_state::{DebugStatusView, Status, StatusView};

use crate::provider::Machine;

/// A provision request. The instance id (if any) comes from the actor's own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// The owner.
    pub user_id: UserId,
    /// The owning organisation (instance-keyed instances only).
    pub org_id: Option<OrgId>,
    /// Env vars to set.
    pub env_vars: BTreeMap<String, String>,
    /// Secrets to set.
    pub secrets: BTreeMap<String, String>,
}

/// A configuration change: `Some` sets a name, `None` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPatch {
    /// Env vars to set or remove.
    pub env_vars: BTreeMap<String, Option<String>>,
    /// Secrets to set or remove.
    pub secrets: BTreeMap<String, Option<String>>,
}

/// What a provision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The instance's sandbox id.
    pub sandbox_id: SandboxId,
    /// The instance id (`None` for a legacy instance).
    pub instance_id: Option<InstanceId>,
    /// Whether this call created the instance (`false`: it existed; its configuration was
    /// updated).
    pub created: bool,
}

/// What a destroy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    /// Whether everything is gone (`false`: the rest is retried by alarm).
    pub finalized: bool,
    /// The instance's owner.
    pub user_id: UserId,
    /// Its sandbox id.
    pub sandbox_id: SandboxId,
}

/// The configuration as users may see it: env var values, secret names only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// Env vars.
    pub env_vars: BTreeMap<String, String>,
    /// Names of the secrets set.
    pub secret_names: Vec<String>,
}

/// The debug status and the next reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugStatus {
    /// Everything an admin may see of the state.
    pub view: DebugStatusView,
    /// When the next alarm is due (ms since the epoch).
    pub next_alarm_ms: Option<i64>,
}

/// Where to send a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The owner.
    pub user_id: UserId,
    /// The organisation.
    pub org_id: Option<OrgId>,
    /// The sandbox id.
    pub sandbox_id: SandboxId,
    /// The status.
    pub status: Status,
    /// The sandbox's address, while running.
    pub address: Option<SocketAddr>,
}

/// Why an operation was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InstanceError {
    /// There is no instance here, and the registry has none to restore.
    #[error("instance not provisioned")]
    NotProvisioned,
    /// The instance belongs to another user.
    #[error("the instance belongs to another user")]
    WrongUser,
    /// The request is malformed; the message names what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// The organisation does not exist.
    #[error("unknown organisation {0}")]
    UnknownOrganization(OrgId),
    /// The instance's state forbids the operation (for example: being destroyed).
    #[error("{0}")]
    Conflict(String),
    /// The registry could not be reached; nothing was changed. Retry later.
    #[error("registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The registry failed otherwise.
    #[error("registry failure: {0}")]
    Registry(String),
    /// The sandbox provider failed.
    #[error("sandbox provider: {0}")]
    Provider(String),
    /// The runtime could not run the call (overloaded, shutting down, the turn failed…).
    #[error(transparent)]
    Call(#[from] CallError),
}

impl InstanceError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            InstanceError::RegistryUnavailable(_) => true,
            InstanceError::Call(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// A request to the instance actor. Build them through [`InstanceRef`](crate::InstanceRef).
#[derive(Debug)]
#[doc(hidden)]
pub enum Request {
    Provision(Provision),
    Start {
        skip_cooldown: bool,
    },
    Stop,
    Restart {
        image_tag: Option<String>,
    },
    Destroy {
        mark_registry_on_finalize: bool,
    },
    Status,
    DebugStatus,
    Config,
    PatchConfig(ConfigPatch),
    Route,
    /// Reports of the actor's own background work.
    Internal(Internal),
}

/// A report of background work, delivered to the actor as a turn.
#[derive(Debug)]
#[doc(hidden)]
pub struct Internal(pub(crate) Report);

#[derive(Debug)]
pub(crate) enum Report {
    /// A start found, re-bound or created its machine (or failed to).
    Bound {
        attempt: u64,
        result: Result<Machine, String>,
    },
    /// A start's health wait ended.
    Healthy {
        attempt: u64,
        result: Result<(), String>,
    },
    /// Cleanup of a machine nobody wanted finished.
    Cleaned,
}

/// The actor's answers. Build them through [`InstanceRef`](crate::InstanceRef).
#[derive(Debug)]
#[doc(hidden)]
pub enum Reply {
    Provisioned(Provisioned),
    Started(bool),
    Stopped,
    Restarted(Result<(), String>),
    Destroyed(Destroyed),
    Status(Box<StatusView>),
    DebugStatus(Box<DebugStatus>),
    Config(ConfigView),
    Route(Route),
    Done,
}
