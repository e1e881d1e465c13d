//! The schema: every field of an instance's persisted state, defined once.
//!
//! The `schema!` invocation at the bottom is the single definition. From it follow the
//! [`InstanceState`] struct, the list of [`FIELDS`] (and so the storage keys), the defaults of a
//! fresh state and of fields absent from older states, [`InstanceState::load`],
//! [`InstanceState::create`], [`InstanceState::reset`], and the typed partial [`Update`]. A field
//! added there cannot be forgotten by any of them.

use std::collections::BTreeMap;

use burrow_identity::{MachineId, OrgId, SandboxId, UserId, VolumeId};
use burrow_runtime::Storage;

use crate::codec::{decode, encode};
use crate::types::{DestroyError, ErrorNote, MachineSize, RestoreSource, SecretEnvelope, Status};

/// Storage keys of fields are this prefix and the field's name.
pub const KEY_PREFIX: &str = "state/";
/// The raw bytes of a field that failed to decode are kept under this prefix and its name.
pub const QUARANTINE_PREFIX: &str = "state.quarantined/";
/// The storage key of the schema version the state was written with.
pub const VERSION_KEY: &str = "state.version";
/// The schema version this code writes.
///
/// - 1: `machine_size` was text `"<cpus>x<memory MB>"`; there were no image fields.
/// - 2: `machine_size` is a [`MachineSize`]; image fields added.
pub const SCHEMA_VERSION: u32 = 2;

/// The fields that together are the instance's identity. If one of them cannot be decoded the
/// state counts as lost (and is restored from the registry); it never falls back to a default,
/// which could turn an organisation's instance into a personal one.
pub const IDENTITY_FIELDS: [&str; 3] = ["user_id", "sandbox_id", "org_id"];

/// A field that failed to decode when the state was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFailure {
    /// The field's name.
    pub field: &'static str,
    /// Why its bytes did not decode.
    pub reason: String,
}

/// What loading found.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// Nothing is stored: the instance was never provisioned (or was reset).
    Empty,
    /// The state, with the fields that failed to decode (each now holding its default, its raw
    /// bytes kept under [`QUARANTINE_PREFIX`], and its name in `quarantined_fields`).
    State {
        /// The state.
        state: Box<InstanceState>,
        /// Fields that failed to decode on this load.
        failures: Vec<FieldFailure>,
    },
    /// An identity field failed to decode: the state counts as lost and must be restored. Every
    /// stored value, the broken ones included, is left as it was.
    Lost {
        /// The fields that failed (at least one identity field among them).
        failures: Vec<FieldFailure>,
    },
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The actor's storage failed.
    #[error("state storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A value could not be encoded.
    #[error("encoding field {field}: {reason}")]
    Encode {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The stored schema version is newer than this code: refusing to read (and later
    /// overwrite) what it does not understand.
    #[error(
        "the state was written by schema version {found}; this build reads up to {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// The version found.
        found: u32,
    },
    /// The stored schema version does not decode.
    #[error("the stored schema version does not decode: {0}")]
    BadVersion(String),
    /// The state an update would produce breaks a rule of the schema.
    #[error("invalid state: {0}")]
    Invalid(String),
}

/// Converts a value stored by an older schema version; `None` when `version` needs no
/// conversion.
type Upgrade<T> = fn(u32, &[u8]) -> Option<Result<T, String>>;

/// Decodes a stored field, converting it first if an older schema version wrote it.
fn decode_field<T: serde::de::DeserializeOwned>(
    version: u32,
    bytes: &[u8],
    upgrade: Option<Upgrade<T>>,
) -> Result<T, String> {
    match upgrade.and_then(|upgrade| upgrade(version, bytes)) {
        Some(converted) => converted,
        None => decode::<T>(bytes),
    }
}

/// Converts `machine_size` as schema version 1 stored it (`"2x2048"`).
fn machine_size_from_v1(version: u32, bytes: &[u8]) -> Option<Result<Option<MachineSize>, String>> {
    if version >= 2 {
        return None;
    }
    Some(decode::<Option<String>>(bytes).and_then(|text| {
        text.map(|text| {
            let (cpus, memory) = text.split_once('x').ok_or_else(|| {
                format!("version-1 machine size {text:?} is not <cpus>x<memory MB>")
            })?;
            Ok(MachineSize {
                cpus: cpus.parse().map_err(|e| format!("cpus in {text:?}: {e}"))?,
                memory_mb: memory
                    .parse()
                    .map_err(|e| format!("memory in {text:?}: {e}"))?,
            })
        })
        .transpose()
    }))
}

macro_rules! schema {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = $fresh:expr ; absent $absent:expr $(, upgrade $upgrade:path)? ;
    )*) => {
        /// An instance's persisted state: one storage key per field (`state/<field>`), values in
        /// bincode 2.
        ///
        /// Each field's documentation ends with its two defaults: *fresh* (a newly created
        /// state) and *absent* (a state written by an older schema that lacks the field).
        #[derive(Debug, Clone, PartialEq)]
        pub struct InstanceState {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Fresh: `", stringify!($fresh), "`. Absent: `", stringify!($absent), "`.")]
                pub $name: $ty,
            )*
        }

        /// Every field's name, in schema order; `state/<name>` is its storage key.
        pub const FIELDS: &[&str] = &[$(stringify!($name)),*];

        impl InstanceState {
            /// A fresh state: not provisioned, every field at its fresh default.
            pub fn fresh() -> InstanceState {
                InstanceState { $($name: $fresh,)* }
            }

            /// Writes every field (and the schema version) as one atomic multi-key write.
            pub fn create(&self, storage: &Storage) -> Result<(), StateError> {
                self.validate()?;
                let entries: Vec<(String, Vec<u8>)> = vec![$(
                    (
                        concat!("state/", stringify!($name)).to_owned(),
                        encode(&self.$name).map_err(|reason| StateError::Encode {
                            field: stringify!($name),
                            reason,
                        })?,
                    ),
                )*];
                write(storage, entries)
            }

            /// Reads the state. Fields absent from an older state take their *absent*
            /// defaults; values of an older schema version are converted. A non-identity field
            /// whose bytes do not decode takes its fresh default, its raw bytes are kept under
            /// [`QUARANTINE_PREFIX`] and its name is added to `quarantined_fields` (so this
            /// writes, and must run inside a turn). An identity field that does not decode
            /// makes the state [`Loaded::Lost`] and changes nothing on disk.
            pub fn load(storage: &Storage) -> Result<Loaded, StateError> {
                let version = match storage.get::<Vec<u8>>(VERSION_KEY)? {
                    Some(bytes) => decode::<u32>(&bytes).map_err(StateError::BadVersion)?,
                    None if storage.list::<Vec<u8>>(KEY_PREFIX)?.is_empty() => return Ok(Loaded::Empty),
                    // States from before the version key existed.
                    None => 1,
                };
                if version > SCHEMA_VERSION {
                    return Err(StateError::NewerSchema { found: version });
                }
                let mut state = InstanceState::fresh();
                let mut failures = Vec::new();
                let mut broken: Vec<(&'static str, Vec<u8>)> = Vec::new();
                $(
                    match storage.get::<Vec<u8>>(concat!("state/", stringify!($name)))? {
                        None => state.$name = $absent,
                        Some(bytes) => {
                            let upgrade = None::<Upgrade<$ty>> $(.or(Some($upgrade as Upgrade<$ty>)))?;
                            let decoded = decode_field::<$ty>(version, &bytes, upgrade);
                            match decoded {
                                Ok(value) => state.$name = value,
                                Err(reason) => {
                                    failures.push(FieldFailure { field: stringify!($name), reason });
                                    broken.push((stringify!($name), bytes));
                                }
                            }
                        }
                    }
                )*
                if failures.iter().any(|f| IDENTITY_FIELDS.contains(&f.field)) {
                    return Ok(Loaded::Lost { failures });
                }
                if !broken.is_empty() {
                    let fresh = InstanceState::fresh();
                    let mut entries = Vec::new();
                    for (field, raw) in broken {
                        entries.push((format!("{QUARANTINE_PREFIX}{field}"), raw));
                        entries.push((format!("{KEY_PREFIX}{field}"), fresh.encoded(field)?));
                        state.reset_field(field);
                        if !state.quarantined_fields.iter().any(|f| f == field) {
                            state.quarantined_fields.push(field.to_owned());
                        }
                    }
                    entries.push((
                        format!("{KEY_PREFIX}quarantined_fields"),
                        state.encoded("quarantined_fields")?,
                    ));
                    write(storage, entries)?;
                }
                Ok(Loaded::State { state: Box::new(state), failures })
            }

            /// The encoding of one field of this state.
            fn encoded(&self, field: &str) -> Result<Vec<u8>, StateError> {
                match field {
                    $(stringify!($name) => encode(&self.$name).map_err(|reason| StateError::Encode {
                        field: stringify!($name),
                        reason,
                    }),)*
                    other => unreachable!("{other} is not a schema field"),
                }
            }

            /// Puts one field back to its fresh default.
            fn reset_field(&mut self, field: &str) {
                match field {
                    $(stringify!($name) => self.$name = $fresh,)*
                    other => unreachable!("{other} is not a schema field"),
                }
            }
        }

        /// A partial update: names only schema fields, writes them in one atomic multi-key
        /// write, and changes the in-memory state only once the write succeeded.
        ///
        /// ```
        /// use burrow_state::{Status, Update};
        /// let update = Update::default().status(Some(Status::Running)).health_check_fail_count(0);
        /// assert!(!update.is_empty());
        /// ```
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Update {
            $($name: Option<$ty>,)*
        }

        impl Update {
            $(
                #[doc = concat!("Sets `", stringify!($name), "`.")]
                pub fn $name(mut self, value: $ty) -> Update {
                    self.$name = Some(value);
                    self
                }
            )*

            /// An update that sets `fields` (names from [`FIELDS`]; others are ignored) to the
            /// values they have in `from`.
            pub fn copying(from: &InstanceState, fields: &[&str]) -> Update {
                let mut update = Update::default();
                $(
                    if fields.contains(&stringify!($name)) {
                        update.$name = Some(from.$name.clone());
                    }
                )*
                update
            }

            /// Whether the update sets nothing.
            pub fn is_empty(&self) -> bool {
                true $(&& self.$name.is_none())*
            }

            /// The names of the fields it sets.
            pub fn fields(&self) -> Vec<&'static str> {
                let mut fields = Vec::new();
                $(if self.$name.is_some() { fields.push(stringify!($name)); })*
                fields
            }

            /// Applies the update to an in-memory state only.
            pub fn apply_in_memory(&self, state: &mut InstanceState) {
                $(if let Some(value) = &self.$name { state.$name = value.clone(); })*
            }

            /// Writes the fields it sets (one atomic multi-key write), then applies it to
            /// `state`. If the result would break a rule of the schema, or the write fails,
            /// neither storage nor `state` changes.
            pub fn apply(&self, state: &mut InstanceState, storage: &Storage) -> Result<(), StateError> {
                let mut next = state.clone();
                self.apply_in_memory(&mut next);
                next.validate()?;
                let mut entries = Vec::new();
                $(
                    if let Some(value) = &self.$name {
                        entries.push((
                            concat!("state/", stringify!($name)).to_owned(),
                            encode(value).map_err(|reason| StateError::Encode {
                                field: stringify!($name),
                                reason,
                            })?,
                        ));
                    }
                )*
                write(storage, entries)?;
                *state = next;
                Ok(())
            }
        }
    };
}

/// Writes `entries` and the schema version in one savepoint: all of them or none.
fn write(storage: &Storage, entries: Vec<(String, Vec<u8>)>) -> Result<(), StateError> {
    let version = encode(&SCHEMA_VERSION).map_err(|reason| StateError::Encode {
        field: "version",
        reason,
    })?;
    storage.transaction(|s| {
        s.put(VERSION_KEY, &version)?;
        s.put_many::<[u8]>(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    })?;
    Ok(())
}

impl InstanceState {
    /// Checks the rules that hold across fields: a state without a user id has no status.
    pub fn validate(&self) -> Result<(), StateError> {
        if self.user_id.is_none() && self.status.is_some() {
            return Err(StateError::Invalid(format!(
                "status {:?} without a user id (a state with no user id is not provisioned)",
                self.status
            )));
        }
        Ok(())
    }

    /// Deletes every field (and the version) from storage and returns a fresh state. Raw bytes
    /// kept aside under [`QUARANTINE_PREFIX`] stay: resetting never destroys evidence.
    pub fn reset(storage: &Storage) -> Result<InstanceState, StateError> {
        storage.transaction(|s| {
            for (key, _) in s.list::<Vec<u8>>(KEY_PREFIX)? {
                s.delete(&key)?;
            }
            s.delete(VERSION_KEY).map(drop)
        })?;
        Ok(InstanceState::fresh())
    }

    /// The raw bytes kept aside for a field that failed to decode, if any.
    pub fn quarantined_raw(storage: &Storage, field: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(storage.get::<Vec<u8>>(&format!("{QUARANTINE_PREFIX}{field}"))?)
    }
}

schema! {
    /// The owner. `None`: not provisioned.
    user_id: Option<UserId> = None; absent None;
    /// The sandbox's id (instance-keyed or legacy).
    sandbox_id: Option<SandboxId> = None; absent None;
    /// The owning organisation; `None` is a personal instance.
    org_id: Option<OrgId> = None; absent None;
    /// Lifecycle status; `None` is "not provisioned" (always so without a user id).
    status: Option<Status> = None; absent None;
    /// When provisioned (ms since the epoch).
    provisioned_at: Option<i64> = None; absent None;
    /// When the current start began.
    starting_at: Option<i64> = None; absent None;
    /// When the current restart began.
    restarting_at: Option<i64> = None; absent None;
    /// When the sandbox last started.
    last_started_at: Option<i64> = None; absent None;
    /// When the sandbox last stopped.
    last_stopped_at: Option<i64> = None; absent None;
    /// The provider's app name.
    provider_app_name: Option<String> = None; absent None;
    /// The provider's machine id.
    machine_id: Option<MachineId> = None; absent None;
    /// The provider's volume id.
    volume_id: Option<VolumeId> = None; absent None;
    /// The provider region.
    region: Option<String> = None; absent None;
    /// The machine size (schema version 1 stored `"<cpus>x<memory MB>"`; converted on load).
    machine_size: Option<MachineSize> = None; absent None, upgrade machine_size_from_v1;
    /// Consecutive failed health checks.
    health_check_fail_count: u32 = 0; absent 0;
    /// When metadata recovery last ran.
    last_metadata_recovery_at: Option<i64> = None; absent None;
    /// Two-phase destroy: the machine still to delete.
    pending_destroy_machine_id: Option<MachineId> = None; absent None;
    /// Two-phase destroy: the volume still to delete.
    pending_destroy_volume_id: Option<VolumeId> = None; absent None;
    /// Two-phase destroy: mark the registry row destroyed when finalising.
    pending_registry_mark_on_finalize: bool = false; absent false;
    /// The last destroy failure.
    last_destroy_error: Option<DestroyError> = None; absent None;
    /// The last start failure.
    last_start_error: Option<ErrorNote> = None; absent None;
    /// The last restart failure.
    last_restart_error: Option<ErrorNote> = None; absent None;
    /// Environment variables for the sandbox, by name.
    env_vars: BTreeMap<String, String> = BTreeMap::new(); absent BTreeMap::new();
    /// Encrypted secrets for the sandbox, by name.
    encrypted_secrets: BTreeMap<String, SecretEnvelope> = BTreeMap::new(); absent BTreeMap::new();
    /// The image version running.
    image_version: Option<String> = None; absent None;
    /// The image variant. States from before image tracking (version 1) ran the legacy image.
    image_variant: Option<String> = None; absent Some("legacy".to_owned());
    /// The image tag being tracked for updates.
    tracked_image_tag: Option<String> = None; absent None;
    /// The digest of the tracked tag last seen.
    tracked_image_digest: Option<String> = None; absent None;
    /// Feature flags of the instance.
    instance_features: Vec<String> = Vec::new(); absent Vec::new();
    /// When the state was last restored from the registry.
    restored_at: Option<i64> = None; absent None;
    /// Which registry lookup that restore used.
    restored_from: Option<RestoreSource> = None; absent None;
    /// Set by a restore from the registry, which holds no configuration: the env vars and
    /// secrets are gone from this state (the quarantined actor file may still hold them).
    configuration_lost: bool = false; absent false;
    /// Fields whose stored bytes failed to decode and were reset to their defaults (their raw
    /// bytes are kept under `state.quarantined/<field>`).
    quarantined_fields: Vec<String> = Vec::new(); absent Vec::new();
}
