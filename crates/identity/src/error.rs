use std::fmt;

/// Which kind of identifier failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// An [`InstanceId`](crate::InstanceId).
    InstanceId,
    /// An [`OrgId`](crate::OrgId).
    OrgId,
    /// A [`UserId`](crate::UserId).
    UserId,
    /// A [`SandboxId`](crate::SandboxId).
    SandboxId,
    /// An [`ActorName`](crate::ActorName).
    ActorName,
    /// A [`MachineId`](crate::MachineId).
    MachineId,
    /// A [`VolumeId`](crate::VolumeId).
    VolumeId,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::InstanceId => "instance id",
            IdKind::OrgId => "org id",
            IdKind::UserId => "user id",
            IdKind::SandboxId => "sandbox id",
            IdKind::ActorName => "actor name",
            IdKind::MachineId => "machine id",
            IdKind::VolumeId => "volume id",
        })
    }
}

/// An identifier that does not follow its rule.
///
/// The message names the kind of identifier, quotes the offending input (escaped, and cut short
/// if it is long, so hostile input cannot flood a log) and says what was expected:
///
/// ```
/// let err = "not-a-uuid".parse::<burrow_identity::InstanceId>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"invalid instance id "not-a-uuid": expected a hyphenated UUID (8-4-4-4-12 hex digits, 36 characters)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input}: {reason}")]
pub struct IdError {
    kind: IdKind,
    input: String,
    reason: String,
}

/// How much of a bad input an error quotes.
const QUOTED_CHARS: usize = 80;

impl IdError {
    pub(crate) fn new(kind: IdKind, input: &str, reason: impl Into<String>) -> Self {
        let quoted = if input.chars().count() > QUOTED_CHARS {
            let head: String = input.chars().take(QUOTED_CHARS).collect();
            format!("{head:?}… ({} bytes)", input.len())
        } else {
            format!("{input:?}")
        };
        IdError {
            kind,
            input: quoted,
            reason: reason.into(),
        }
    }

    /// The kind of identifier that was being parsed.
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// The offending input as the message shows it: quoted, escaped, and shortened if long.
    pub fn quoted_input(&self) -> &str {
        &self.input
    }

    /// What the input should have looked like.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
