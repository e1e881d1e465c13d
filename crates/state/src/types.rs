//! The value types the schema's fields hold.

use serde::{Deserialize, Serialize};

/// Where an instance is in its lifecycle. `None` (no status) means "not provisioned".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Provisioned: identity and configuration written, sandbox not started yet.
    Provisioned,
    /// A start is in progress.
    Starting,
    /// The sandbox runs and answered its health check.
    Running,
    /// The sandbox is stopped.
    Stopped,
    /// A restart is in progress.
    Restarting,
    /// A two-phase destroy is in progress.
    Destroying,
    /// A volume-snapshot restore is in progress.
    Restoring,
}

/// The size of an instance's sandbox machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSize {
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in megabytes.
    pub memory_mb: u32,
}

/// The last failure of a destroy step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyError {
    /// Which step failed (for example "delete machine").
    pub operation: String,
    /// The provider's status code, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong.
    pub message: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// The last failure of a start or restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNote {
    /// What went wrong.
    pub message: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// An encrypted secret: the ciphertext and the data key that encrypts it, itself wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretEnvelope {
    /// The encrypted value.
    pub ciphertext: Vec<u8>,
    /// The data key, wrapped by the key-encryption key.
    pub wrapped_key: Vec<u8>,
    /// The algorithm (for example "aes-256-gcm").
    pub algorithm: String,
    /// The envelope format version.
    pub version: u32,
}

/// Which registry lookup a restore used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RestoreSource {
    /// The instance's own id (instance-keyed actors).
    InstanceId,
    /// The sandbox id (legacy actors).
    SandboxId,
    /// The user's active personal instance (legacy actors, last resort).
    PersonalInstance,
}
