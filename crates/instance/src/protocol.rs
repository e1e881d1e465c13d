//! What callers send an instance and what they get back: one message type per operation,
//! each naming its reply, all of them serializable (for forwarding to the host that owns an
//! actor). [`InstanceRef`](crate::InstanceRef) wraps them in methods.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};
use burrow_runtime::{CallError, Message};
use burrow_state::{DebugStatusView, Status, StatusView};
use serde::{Deserialize, Serialize};

use crate::provider::{Machine, ProviderError};

/// A provision request. The instance id (if any) comes from the actor's own name. Its
/// `Debug` names the secrets without their values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A configuration change: `Some` sets a name, `None` removes it. Its `Debug` names the
/// secrets without their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPatch {
    /// Env vars to set or remove.
    pub env_vars: BTreeMap<String, Option<String>>,
    /// Secrets to set or remove.
    pub secrets: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for Provision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provision")
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .field("env_vars", &self.env_vars)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Debug for ConfigPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: BTreeMap<&String, &str> = self
            .secrets
            .iter()
            .map(|(k, v)| (k, if v.is_some() { "<set>" } else { "<removed>" }))
            .collect();
        f.debug_struct("ConfigPatch")
            .field("env_vars", &self.env_vars)
            .field("secrets", &secrets)
            .finish()
    }
}

/// What a provision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroyed {
    /// Whether everything is gone (`false`: the rest is retried by alarm).
    pub finalized: bool,
    /// The instance's owner.
    pub user_id: UserId,
    /// Its sandbox id.
    pub sandbox_id: SandboxId,
}

/// The configuration as users may see it: env var values, secret names only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// Env vars.
    pub env_vars: BTreeMap<String, String>,
    /// Names of the secrets set.
    pub secret_names: Vec<String>,
}

/// The debug status and the next reconcile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebugStatus {
    /// Everything an admin may see of the state.
    pub view: DebugStatusView,
    /// When the next alarm is due (ms since the epoch).
    pub next_alarm_ms: Option<i64>,
    /// Configured names the sandbox does not receive, each with why: stored before a rule
    /// refused them (`LD_PRELOAD`, `PATH`, …).
    pub withheld: BTreeMap<String, String>,
}

/// Where to send a proxied request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
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
    /// The runtime could not run the call (overloaded, shutting down, the turn failed…). Made
    /// by the caller's side of a call, never by the actor, so it is never serialized.
    #[error(transparent)]
    #[serde(skip)]
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

/// What an operation answers: its result, or why it was refused.
pub type Answer<T> = Result<T, InstanceError>;

impl Message for Provision {
    type Reply = Answer<Provisioned>;
}

/// Starts the sandbox; the reply is `true` when this call began a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// Run metadata recovery even within its cooldown.
    pub skip_cooldown: bool,
}

impl Message for Start {
    type Reply = Answer<bool>;
}

/// Stops the sandbox (its process is gone when the reply comes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop;

impl Message for Stop {
    type Reply = Answer<()>;
}

/// Restarts the sandbox with the current configuration, recording `image_tag` if given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    /// The image version to record.
    pub image_tag: Option<String>,
}

impl Message for Restart {
    type Reply = Answer<Restarted>;
}

/// What a restart did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restarted {
    /// The restart began.
    Began,
    /// The restart was refused; the reason says why (for example, a start is in progress).
    Refused(String),
}

/// Destroys the instance (two-phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroy {
    /// Mark the registry row destroyed once everything else is gone.
    pub mark_registry_on_finalize: bool,
}

impl Message for Destroy {
    type Reply = Answer<Destroyed>;
}

/// What the user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetStatus;

impl Message for GetStatus {
    type Reply = Answer<StatusView>;
}

/// Everything an admin may see, and the next alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetDebugStatus;

impl Message for GetDebugStatus {
    type Reply = Answer<DebugStatus>;
}

/// The configuration (secret names only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConfig;

impl Message for GetConfig {
    type Reply = Answer<ConfigView>;
}

impl Message for ConfigPatch {
    type Reply = Answer<ConfigView>;
}

/// Where to proxy to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoute;

impl Message for GetRoute {
    type Reply = Answer<Route>;
}

/// A report of the actor's own background work, delivered to it as a turn.
#[derive(Debug)]
pub(crate) enum Report {
    /// A start found, re-bound or created its machine (or failed to).
    Bound {
        attempt: u64,
        result: Result<Machine, ProviderError>,
    },
    /// A start's health wait ended.
    Healthy {
        attempt: u64,
        result: Result<(), Unhealthy>,
    },
    /// Cleanup of a machine nobody wanted finished.
    Cleaned,
}

impl Message for Report {
    type Reply = ();
}

/// A start's health wait ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sandbox did not answer its health check within {waited:?}")]
pub(crate) struct Unhealthy {
    pub(crate) waited: std::time::Duration,
}

// The fault run's lists (`lists.rs`, feature `faults`).

/// Appends `element` to a list (an element already there stays where it is).
#[cfg(feature = "faults")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAppend {
    /// The element: the client's operation id, unique per append.
    pub element: String,
}

/// Reads a whole list.
#[cfg(feature = "faults")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRead {
    /// The client's operation id (logged with the acknowledgement).
    pub op: String,
}

/// What a list turn acknowledges.
#[cfg(feature = "faults")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAck {
    /// The list's id.
    pub list: String,
    /// The client's operation id.
    pub op: String,
    /// The epoch the turn committed under (0 outside replicated mode).
    pub epoch: u64,
    /// The log entry the turn committed as (0 outside replicated mode).
    pub seq: u64,
    /// The whole list, for a read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub elements: Option<Vec<String>>,
}

#[cfg(feature = "faults")]
impl Message for ListAppend {
    type Reply = Answer<ListAck>;
}

#[cfg(feature = "faults")]
impl Message for ListRead {
    type Reply = Answer<ListAck>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
        let json = serde_json::to_string(&value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value, "{json}");
    }

    #[test]
    fn messages_and_replies_survive_serialization() {
        let user: UserId = "alice".parse().unwrap();
        let instance: InstanceId = "6f1c1c9e-2f7a-4f3e-9a51-0d7c6f1b2a33".parse().unwrap();
        let sandbox = SandboxId::InstanceKeyed(instance);
        round_trip(Provision {
            user_id: user.clone(),
            org_id: None,
            env_vars: BTreeMap::from([("A".into(), "1".into())]),
            secrets: BTreeMap::from([("S".into(), "hidden".into())]),
        });
        round_trip(Start {
            skip_cooldown: true,
        });
        round_trip(Stop);
        round_trip(Restart {
            image_tag: Some("v2".into()),
        });
        round_trip(Destroy {
            mark_registry_on_finalize: true,
        });
        round_trip(GetStatus);
        round_trip(GetDebugStatus);
        round_trip(GetConfig);
        round_trip(GetRoute);
        round_trip(ConfigPatch {
            env_vars: BTreeMap::from([("A".into(), None)]),
            secrets: BTreeMap::new(),
        });
        let state = burrow_state::InstanceState {
            user_id: Some(user.clone()),
            sandbox_id: Some(sandbox.clone()),
            status: Some(Status::Running),
            ..burrow_state::InstanceState::fresh()
        };
        let answers: Vec<Answer<Provisioned>> = vec![
            Ok(Provisioned {
                sandbox_id: sandbox.clone(),
                instance_id: Some(instance),
                created: true,
            }),
            Err(InstanceError::Conflict("being destroyed".into())),
            Err(InstanceError::NotProvisioned),
        ];
        for answer in answers {
            round_trip(answer);
        }
        round_trip::<Answer<Restarted>>(Ok(Restarted::Refused("busy".into())));
        round_trip::<Answer<StatusView>>(Ok(state.status_view()));
        round_trip::<Answer<DebugStatus>>(Ok(DebugStatus {
            view: state.debug_view(),
            next_alarm_ms: Some(1_800_000_000_000),
            withheld: BTreeMap::from([("PATH".into(), "refused".into())]),
        }));
        round_trip::<Answer<Route>>(Ok(Route {
            user_id: user,
            org_id: None,
            sandbox_id: sandbox,
            status: Status::Running,
            address: Some("127.0.0.1:8080".parse().unwrap()),
        }));
    }
}
