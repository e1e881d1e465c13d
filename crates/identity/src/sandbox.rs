use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::{IdError, IdKind};
use crate::serde_str::serde_via_str;
use crate::user::{USER_ID_MAX_BYTES, UserId};
use crate::uuid_ids::InstanceId;

/// The longest legacy sandbox id: base64 of a [`USER_ID_MAX_BYTES`]-byte user id.
pub const LEGACY_SANDBOX_ID_MAX_LEN: usize = (USER_ID_MAX_BYTES * 4).div_ceil(3);

const INSTANCE_KEYED_PREFIX: &str = "ki_";
const INSTANCE_KEYED_LEN: usize = 35;

/// The id of an instance's sandbox, in one of two kinds told apart by the text alone.
///
/// - **Instance-keyed**: `ki_` followed by the 32 lower-case hex digits of the instance id, 35
///   characters in all. Derived from the [`InstanceId`], never stored on its own.
/// - **Legacy**: base64url without padding of the UTF-8 bytes of the user id (at most 63
///   characters), from before instances had ids of their own. Reversible to the [`UserId`].
///
/// Parsing decides the kind by the `ki_` prefix together with the length 35, with no database
/// read. The two kinds cannot be confused: no UTF-8 text has a base64url encoding that starts
/// with `ki`. The first byte a base64 text decodes to is the six bits of its first character
/// followed by the top two bits of its second; `k` is 36 (`100100`) and `i` is 34 (`100010`), so
/// the text would start with the byte `10010010` (0x92). A byte of the form `10xxxxxx` is a UTF-8
/// continuation byte, which can never begin a valid UTF-8 string. So every legacy sandbox id
/// differs from every instance-keyed one in its first two characters already.
///
/// ```
/// use burrow_identity::{InstanceId, SandboxId};
/// let id: InstanceId = "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse()?;
/// let keyed: SandboxId = "ki_3f2504e04f8911d39a0c0305e82c3301".parse()?;
/// assert_eq!(keyed.instance_id(), Some(id));
///
/// let legacy: SandboxId = "dXNlcl80Mg".parse()?;
/// assert_eq!(legacy.user_id().map(|u| u.as_str()), Some("user_42"));
/// # Ok::<(), burrow_identity::IdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SandboxId {
    /// `ki_` + the 32 hex digits of this instance id.
    InstanceKeyed(InstanceId),
    /// base64url (no padding) of this user id.
    Legacy(UserId),
}

impl SandboxId {
    /// The instance id of an instance-keyed sandbox id; `None` for a legacy one.
    pub fn instance_id(&self) -> Option<InstanceId> {
        match self {
            SandboxId::InstanceKeyed(id) => Some(*id),
            SandboxId::Legacy(_) => None,
        }
    }

    /// The user id of a legacy sandbox id; `None` for an instance-keyed one.
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            SandboxId::InstanceKeyed(_) => None,
            SandboxId::Legacy(user) => Some(user),
        }
    }

    /// Whether this is an instance-keyed sandbox id.
    pub fn is_instance_keyed(&self) -> bool {
        matches!(self, SandboxId::InstanceKeyed(_))
    }
}

fn parse_instance_keyed(input: &str) -> Result<SandboxId, IdError> {
    let hex = &input[INSTANCE_KEYED_PREFIX.len()..];
    // Lower case only: the derived form is lower case, and a sandbox id is matched as text in
    // registries and labels, so a second spelling would be a second, unequal key.
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(IdError::new(
            IdKind::SandboxId,
            input,
            "an instance-keyed sandbox id is `ki_` followed by 32 lower-case hex digits",
        ));
    }
    let value = u128::from_str_radix(hex, 16)
        .map_err(|e| IdError::new(IdKind::SandboxId, input, e.to_string()))?;
    Ok(SandboxId::InstanceKeyed(InstanceId::from_uuid(
        Uuid::from_u128(value),
    )))
}

fn parse_legacy(input: &str) -> Result<SandboxId, IdError> {
    let invalid = |reason: String| IdError::new(IdKind::SandboxId, input, reason);
    if input.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    // No legacy id starts with `ki` (see the type's docs), so this is a mistyped keyed id.
    if input.starts_with(INSTANCE_KEYED_PREFIX) {
        return Err(invalid(format!(
            "is {} characters long; an instance-keyed sandbox id is `ki_` followed by 32 \
             lower-case hex digits (35 characters)",
            input.len()
        )));
    }
    if input.len() > LEGACY_SANDBOX_ID_MAX_LEN {
        return Err(invalid(format!(
            "is {} characters long; a legacy sandbox id has at most {LEGACY_SANDBOX_ID_MAX_LEN} \
             and an instance-keyed one is `ki_` + 32 hex digits",
            input.len()
        )));
    }
    // The engine refuses padding and non-zero trailing bits, so each user id has exactly one
    // legacy sandbox id.
    let bytes = URL_SAFE_NO_PAD
        .decode(input)
        .map_err(|e| invalid(format!("not base64url without padding ({e})")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid("does not decode to UTF-8 text, so it names no user".into()))?;
    let user: UserId = text
        .parse()
        .map_err(|e: IdError| invalid(format!("decodes to an invalid user id: {}", e.reason())))?;
    Ok(SandboxId::Legacy(user))
}

impl FromStr for SandboxId {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, IdError> {
        if input.len() == INSTANCE_KEYED_LEN && input.starts_with(INSTANCE_KEYED_PREFIX) {
            parse_instance_keyed(input)
        } else {
            parse_legacy(input)
        }
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxId::InstanceKeyed(id) => {
                write!(f, "{INSTANCE_KEYED_PREFIX}{}", id.as_uuid().simple())
            }
            SandboxId::Legacy(user) => f.write_str(&URL_SAFE_NO_PAD.encode(user.as_str())),
        }
    }
}

serde_via_str!(SandboxId);
