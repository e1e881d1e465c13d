use std::fmt;
use std::str::FromStr;

use crate::error::{IdError, IdKind};
use crate::sandbox::SandboxId;
use crate::serde_str::serde_via_str;

/// The longest user id, in bytes: base64 of 47 bytes is 63 characters, the most a legacy
/// sandbox id may have.
pub const USER_ID_MAX_BYTES: usize = 47;

/// The id of a user: non-empty UTF-8 text of at most [`USER_ID_MAX_BYTES`] bytes with no
/// control characters.
///
/// User ids come from an identity provider, so their content is otherwise free; the length
/// bound exists so that the legacy sandbox id derived from one always fits in 63 characters.
///
/// ```
/// use burrow_identity::UserId;
/// assert!("user_01HZX".parse::<UserId>().is_ok());
/// assert!("".parse::<UserId>().is_err());
/// assert!("tab\there".parse::<UserId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// The user id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The legacy sandbox id of this user: base64url without padding of the UTF-8 bytes.
    pub fn legacy_sandbox_id(&self) -> SandboxId {
        SandboxId::Legacy(self.clone())
    }
}

impl FromStr for UserId {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::new(IdKind::UserId, input, "must not be empty"));
        }
        if input.len() > USER_ID_MAX_BYTES {
            return Err(IdError::new(
                IdKind::UserId,
                input,
                format!(
                    "is {} bytes long; at most {USER_ID_MAX_BYTES} bytes are allowed",
                    input.len()
                ),
            ));
        }
        if let Some(c) = input.chars().find(|c| c.is_control()) {
            return Err(IdError::new(
                IdKind::UserId,
                input,
                format!("contains the control character {c:?}"),
            ));
        }
        Ok(UserId(input.to_owned()))
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, IdError> {
        value.parse()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_via_str!(UserId);
