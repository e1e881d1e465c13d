//! Where sandboxes come from: the [`SandboxProvider`] trait, the default [`LocalProvider`],
//! which runs each sandbox as a local process, and [`PodmanProvider`], which runs each as a
//! container through the Docker Engine API.

mod cluster;
mod local;
mod podman;
mod probe;
mod proc;
mod uids;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;

use burrow_identity::{MachineId, OrgId, SandboxId, UserId, VolumeId};
use serde::{Deserialize, Serialize};

pub use cluster::{BookFuture, ClusterProvider, Hosted, MachineBook, MachineOp};
pub use local::{LocalProvider, LocalProviderConfig};
pub use podman::{Exit, PodmanProvider, PodmanProviderConfig, build_gateway_image};
pub use uids::SandboxUids;

/// The labels a sandbox carries, by which metadata recovery finds it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Labels {
    /// The owner.
    pub user_id: UserId,
    /// The instance's sandbox id.
    pub sandbox_id: SandboxId,
    /// The owning organisation.
    pub org_id: Option<OrgId>,
}

/// What a machine is doing, as the provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MachineState {
    /// Being deleted; metadata recovery ignores it.
    Destroying,
    /// Not running.
    Stopped,
    /// Running but not yet reachable.
    Starting,
    /// Running and reachable.
    Running,
}

/// A sandbox machine and its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The machine's id.
    pub id: MachineId,
    /// Its volume's id.
    pub volume_id: VolumeId,
    /// Its labels.
    pub labels: Labels,
    /// What it is doing.
    pub state: MachineState,
    /// When it was created, in milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Where it serves, while it runs.
    pub address: Option<SocketAddr>,
}

/// What a new machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// Its labels.
    pub labels: Labels,
    /// Its process environment.
    pub env: BTreeMap<String, String>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No machine has this id.
    #[error("no machine {0}")]
    NotFound(String),
    /// The request is malformed (for example an id that is not the provider's).
    #[error("invalid provider request: {0}")]
    Invalid(String),
    /// The provider failed; trying again may help.
    #[error("provider failure: {0}")]
    Failed(String),
}

impl ProviderError {
    /// A [`Failed`](ProviderError::Failed) naming what was being done and why it failed.
    pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Failed(format!("{what}: {e}"))
    }
}

/// A source of sandboxes: machines (the running program) with volumes (their data), labelled
/// with their instance's identity.
///
/// Every method is idempotent where that makes sense: starting a running machine, stopping a
/// stopped one and deleting something already gone all succeed. The futures are `Send`: the
/// instance actor runs them on the host's runtime.
pub trait SandboxProvider: Send + Sync + 'static {
    /// Creates a volume and a machine on it, and starts the machine (without waiting for its
    /// health check).
    fn create(
        &self,
        spec: MachineSpec,
    ) -> impl Future<Output = Result<Machine, ProviderError>> + Send;

    /// Starts a stopped machine with `env` (a running one is left as it is).
    fn start(
        &self,
        machine_id: &MachineId,
        env: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Machine, ProviderError>> + Send;

    /// Stops a machine; its volume stays.
    fn stop(
        &self,
        machine_id: &MachineId,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// The machine with this id, if it exists.
    fn get(
        &self,
        machine_id: &MachineId,
    ) -> impl Future<Output = Result<Option<Machine>, ProviderError>> + Send;

    /// Every machine labelled with this user and sandbox id.
    fn list(
        &self,
        user_id: &UserId,
        sandbox_id: &SandboxId,
    ) -> impl Future<Output = Result<Vec<Machine>, ProviderError>> + Send;

    /// One health probe: whether the machine runs and answers its health check.
    fn healthy(
        &self,
        machine_id: &MachineId,
    ) -> impl Future<Output = Result<bool, ProviderError>> + Send;

    /// Stops and deletes a machine (already gone counts as success).
    fn delete_machine(
        &self,
        machine_id: &MachineId,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Deletes a volume and its data (already gone counts as success).
    fn delete_volume(
        &self,
        volume_id: &VolumeId,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// A new id of a provider's form: `prefix` and 32 lower-case hex digits.
pub(crate) fn new_hex_id(prefix: char) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` has the form [`new_hex_id`] gives, with this prefix.
pub(crate) fn is_hex_id(id: &str, prefix: char) -> bool {
    id.len() == 33
        && id.starts_with(prefix)
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Metadata recovery's choice among an instance's machines: not being destroyed; running over
/// starting over stopped; the newest on a tie.
pub fn best_machine(machines: &[Machine]) -> Option<&Machine> {
    machines
        .iter()
        .filter(|m| m.state != MachineState::Destroying)
        .max_by_key(|m| (m.state, m.created_at_ms))
}
