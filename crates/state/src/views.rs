//! What users and admins may see of a state.

use std::collections::BTreeMap;

use burrow_identity::{MachineId, OrgId, SandboxId, UserId, VolumeId};
use serde::{Deserialize, Serialize};

use crate::schema::InstanceState;
use crate::types::{DestroyError, ErrorNote, MachineSize, RestoreSource, Status};

/// What the instance's user may see: identity, status, timestamps, and how many env vars and
/// secrets there are — never their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The owner.
    pub user_id: Option<UserId>,
    /// The sandbox's id.
    pub sandbox_id: Option<SandboxId>,
    /// The owning organisation.
    pub org_id: Option<OrgId>,
    /// Lifecycle status (`None`: not provisioned).
    pub status: Option<Status>,
    /// When provisioned.
    pub provisioned_at: Option<i64>,
    /// When the sandbox last started.
    pub last_started_at: Option<i64>,
    /// When the sandbox last stopped.
    pub last_stopped_at: Option<i64>,
    /// The machine size.
    pub machine_size: Option<MachineSize>,
    /// The image version running.
    pub image_version: Option<String>,
    /// How many environment variables are set.
    pub env_var_count: usize,
    /// How many secrets are set.
    pub secret_count: usize,
}

/// A secret as an admin may see it: its envelope's metadata, never its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    /// The algorithm.
    pub algorithm: String,
    /// The envelope format version.
    pub version: u32,
}

/// Everything an admin may see: the whole state except secret material and env var values
/// (their names are shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugStatusView {
    /// What the user sees.
    #[serde(flatten)]
    pub status: StatusView,
    /// When the current start began.
    pub starting_at: Option<i64>,
    /// When the current restart began.
    pub restarting_at: Option<i64>,
    /// Provider binding.
    pub provider_app_name: Option<String>,
    /// Provider machine.
    pub machine_id: Option<MachineId>,
    /// Provider volume.
    pub volume_id: Option<VolumeId>,
    /// Provider region.
    pub region: Option<String>,
    /// Consecutive failed health checks.
    pub health_check_fail_count: u32,
    /// When metadata recovery last ran.
    pub last_metadata_recovery_at: Option<i64>,
    /// Two-phase destroy: machine still to delete.
    pub pending_destroy_machine_id: Option<MachineId>,
    /// Two-phase destroy: volume still to delete.
    pub pending_destroy_volume_id: Option<VolumeId>,
    /// Two-phase destroy: mark the registry row on finalising.
    pub pending_registry_mark_on_finalize: bool,
    /// Last destroy failure.
    pub last_destroy_error: Option<DestroyError>,
    /// Last start failure.
    pub last_start_error: Option<ErrorNote>,
    /// Last restart failure.
    pub last_restart_error: Option<ErrorNote>,
    /// Env var names.
    pub env_var_names: Vec<String>,
    /// Secrets by name, metadata only.
    pub secrets: BTreeMap<String, SecretInfo>,
    /// Image variant.
    pub image_variant: Option<String>,
    /// Tracked image tag.
    pub tracked_image_tag: Option<String>,
    /// Tracked image digest.
    pub tracked_image_digest: Option<String>,
    /// Feature flags.
    pub instance_features: Vec<String>,
    /// Last restore.
    pub restored_at: Option<i64>,
    /// Last restore's lookup.
    pub restored_from: Option<RestoreSource>,
    /// Fields reset after failing to decode.
    pub quarantined_fields: Vec<String>,
    /// A restore lost the configuration.
    pub configuration_lost: bool,
}

impl InstanceState {
    /// What the user may see.
    pub fn status_view(&self) -> StatusView {
        StatusView {
            user_id: self.user_id.clone(),
            sandbox_id: self.sandbox_id.clone(),
            org_id: self.org_id,
            status: self.status,
            provisioned_at: self.provisioned_at,
            last_started_at: self.last_started_at,
            last_stopped_at: self.last_stopped_at,
            machine_size: self.machine_size,
            image_version: self.image_version.clone(),
            env_var_count: self.env_vars.len(),
            secret_count: self.encrypted_secrets.len(),
        }
    }

    /// What an admin may see.
    pub fn debug_view(&self) -> DebugStatusView {
        DebugStatusView {
            status: self.status_view(),
            starting_at: self.starting_at,
            restarting_at: self.restarting_at,
            provider_app_name: self.provider_app_name.clone(),
            machine_id: self.machine_id.clone(),
            volume_id: self.volume_id.clone(),
            region: self.region.clone(),
            health_check_fail_count: self.health_check_fail_count,
            last_metadata_recovery_at: self.last_metadata_recovery_at,
            pending_destroy_machine_id: self.pending_destroy_machine_id.clone(),
            pending_destroy_volume_id: self.pending_destroy_volume_id.clone(),
            pending_registry_mark_on_finalize: self.pending_registry_mark_on_finalize,
            last_destroy_error: self.last_destroy_error.clone(),
            last_start_error: self.last_start_error.clone(),
            last_restart_error: self.last_restart_error.clone(),
            env_var_names: self.env_vars.keys().cloned().collect(),
            secrets: self
                .encrypted_secrets
                .iter()
                .map(|(name, e)| {
                    (
                        name.clone(),
                        SecretInfo {
                            algorithm: e.algorithm.clone(),
                            version: e.version,
                        },
                    )
                })
                .collect(),
            image_variant: self.image_variant.clone(),
            tracked_image_tag: self.tracked_image_tag.clone(),
            tracked_image_digest: self.tracked_image_digest.clone(),
            instance_features: self.instance_features.clone(),
            restored_at: self.restored_at,
            restored_from: self.restored_from,
            quarantined_fields: self.quarantined_fields.clone(),
            configuration_lost: self.configuration_lost,
        }
    }
}
