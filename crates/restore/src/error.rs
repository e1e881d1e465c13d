use burrow_identity::OrgId;

/// Why a registry operation failed. [`is_retryable`](RegistryError::is_retryable) says
/// whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry could not be reached (connection refused, connection lost). Retryable.
    #[error("registry unreachable: {0}")]
    Unavailable(String),
    /// The registry did not answer within the operation timeout. Retryable.
    #[error("registry did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The request breaks a rule of the registry (it names what).
    #[error("invalid registry request: {0}")]
    InvalidInput(String),
    /// The organisation does not exist.
    #[error("unknown organisation {0}")]
    UnknownOrganization(OrgId),
    /// A different row already holds this id, or the user already has an active row with this
    /// sandbox id.
    #[error("registry conflict: {0}")]
    Conflict(String),
    /// The registry answered with something unexpected (a bug or a broken database).
    #[error("registry failure: {0}")]
    Internal(String),
}

impl RegistryError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RegistryError::Unavailable(_) | RegistryError::Timeout(_)
        )
    }
}
