//! Burrow's identifier rules, in one place.
//!
//! Every crate that handles an instance id, a user id, a sandbox id, an organisation id or the
//! name of an instance's actor goes through these types, so a rule is written once and a value
//! that got past a parser is known to be well formed everywhere else. Nothing here does I/O.
//!
//! | type | form |
//! |---|---|
//! | [`InstanceId`] | UUID, canonical lower-case hyphenated (36 chars); parsing accepts either case |
//! | [`OrgId`] | the same form as an instance id; `None` where an org id is optional means "personal" |
//! | [`UserId`] | non-empty UTF-8, at most 47 bytes, no control characters |
//! | [`SandboxId`] | `ki_` + 32 hex digits of the instance id, or base64url (no padding) of the user id |
//! | [`ActorName`] | `i:<instance id>` or `u:<user id>` |
//! | [`MachineId`], [`VolumeId`] | a sandbox provider's ids: 1–128 bytes of ASCII letters, digits, `-`, `_`, `.` |
//!
//! ```
//! use burrow_identity::{ActorName, InstanceId, SandboxId, UserId};
//!
//! let id: InstanceId = "3F2504E0-4F89-11D3-9A0C-0305E82C3301".parse()?;
//! assert_eq!(id.to_string(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
//!
//! let sandbox = id.sandbox_id();
//! assert_eq!(sandbox.to_string(), "ki_3f2504e04f8911d39a0c0305e82c3301");
//! assert_eq!(sandbox.to_string().parse::<SandboxId>()?.instance_id(), Some(id));
//!
//! let user: UserId = "alice@example.com".parse()?;
//! let legacy = user.legacy_sandbox_id();
//! assert_eq!(legacy.to_string(), "YWxpY2VAZXhhbXBsZS5jb20");
//! assert_eq!(ActorName::for_sandbox(&legacy), ActorName::Legacy(user));
//! # Ok::<(), burrow_identity::IdError>(())
//! ```

mod actor_name;
mod error;
mod provider_ids;
mod sandbox;
mod serde_str;
mod user;
mod uuid_ids;

pub use actor_name::ActorName;
pub use error::{IdError, IdKind};
pub use provider_ids::{MachineId, PROVIDER_ID_MAX_BYTES, VolumeId};
pub use sandbox::{LEGACY_SANDBOX_ID_MAX_LEN, SandboxId};
pub use user::{USER_ID_MAX_BYTES, UserId};
pub use uuid_ids::{InstanceId, OrgId};
