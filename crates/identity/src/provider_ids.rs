use std::fmt;
use std::str::FromStr;

use crate::error::{IdError, IdKind};
use crate::serde_str::serde_via_str;

/// The longest machine or volume id, in bytes.
pub const PROVIDER_ID_MAX_BYTES: usize = 128;

macro_rules! provider_id {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(input: &str) -> Result<Self, IdError> {
                check(input, $kind).map(|()| $name(input.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        serde_via_str!($name);
    };
}

provider_id!(
    /// The id a sandbox provider gave a machine: 1 to 128 bytes of ASCII letters, digits, `-`,
    /// `_` and `.`. Each provider has its own form within that (the local provider's is `m` and
    /// 32 hex digits) and checks it itself.
    ///
    /// ```
    /// use burrow_identity::MachineId;
    /// assert!("m0123456789abcdef0123456789abcdef".parse::<MachineId>().is_ok());
    /// assert!("".parse::<MachineId>().is_err());
    /// assert!("../etc".parse::<MachineId>().is_err());
    /// ```
    MachineId,
    IdKind::MachineId
);

provider_id!(
    /// The id a sandbox provider gave a volume: the same rule as a [`MachineId`].
    ///
    /// ```
    /// use burrow_identity::VolumeId;
    /// assert!("v0123456789abcdef0123456789abcdef".parse::<VolumeId>().is_ok());
    /// assert!("has space".parse::<VolumeId>().is_err());
    /// ```
    VolumeId,
    IdKind::VolumeId
);

fn check(input: &str, kind: IdKind) -> Result<(), IdError> {
    if input.is_empty() {
        return Err(IdError::new(kind, input, "must not be empty"));
    }
    if input.len() > PROVIDER_ID_MAX_BYTES {
        return Err(IdError::new(
            kind,
            input,
            format!(
                "is {} bytes long; at most {PROVIDER_ID_MAX_BYTES} bytes are allowed",
                input.len()
            ),
        ));
    }
    if input == "." || input == ".." {
        return Err(IdError::new(kind, input, "is not a name"));
    }
    match input
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(IdError::new(
            kind,
            input,
            format!("contains {c:?}; only ASCII letters, digits, '-', '_' and '.' are allowed"),
        )),
        None => Ok(()),
    }
}
