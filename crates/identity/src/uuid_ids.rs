use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{IdError, IdKind};
use crate::sandbox::SandboxId;
use crate::serde_str::serde_via_str;

/// Parses the one accepted spelling of a UUID: hyphenated 8-4-4-4-12 hex digits, either case.
///
/// `Uuid::try_parse` alone would also take the simple, braced and URN forms; accepting those
/// would give one id several spellings, and every spelling that reaches storage or a log is one
/// more to reconcile.
fn parse_hyphenated(kind: IdKind, input: &str) -> Result<Uuid, IdError> {
    let shaped = input.len() == 36
        && input.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !shaped {
        return Err(IdError::new(
            kind,
            input,
            "expected a hyphenated UUID (8-4-4-4-12 hex digits, 36 characters)",
        ));
    }
    // The shape check above leaves nothing for the parser to reject.
    Uuid::try_parse(input).map_err(|e| IdError::new(kind, input, e.to_string()))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random (version 4) id.
            pub fn new_random() -> Self {
                $name(Uuid::new_v4())
            }

            /// The id of an existing UUID value.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                $name(uuid)
            }

            /// The UUID value.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Accepts the hyphenated form in upper, lower or mixed case; anything else is an
            /// error naming the input.
            fn from_str(input: &str) -> Result<Self, IdError> {
                parse_hyphenated($kind, input).map($name)
            }
        }

        impl fmt::Display for $name {
            /// The canonical form: lower-case hyphenated, 36 characters.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                $name(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        serde_via_str!($name);
    };
}

uuid_id!(
    /// The id of an instance: a UUID whose canonical text is lower-case hyphenated.
    ///
    /// Parsing accepts either case and canonicalises, so two spellings of one id can never
    /// address two different actors:
    ///
    /// ```
    /// use burrow_identity::InstanceId;
    /// let lower: InstanceId = "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse()?;
    /// let upper: InstanceId = "3F2504E0-4F89-11D3-9A0C-0305E82C3301".parse()?;
    /// assert_eq!(lower, upper);
    /// assert_eq!(upper.to_string(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    /// # Ok::<(), burrow_identity::IdError>(())
    /// ```
    InstanceId,
    IdKind::InstanceId
);

uuid_id!(
    /// The id of an organisation, with the same text rules as an [`InstanceId`].
    ///
    /// An instance without an organisation (`Option<OrgId>` is `None`) is a personal instance.
    OrgId,
    IdKind::OrgId
);

impl InstanceId {
    /// The sandbox id derived from this instance id: `ki_` followed by its 32 lower-case hex
    /// digits. It is never stored apart from the id it comes from.
    pub fn sandbox_id(&self) -> SandboxId {
        SandboxId::InstanceKeyed(*self)
    }
}
