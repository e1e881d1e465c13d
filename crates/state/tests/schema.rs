//! The schema against real actor storage: round trips, partial updates, corruption, evolution.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use burrow_identity::{InstanceId, MachineId, OrgId, SandboxId, UserId, VolumeId};
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Namespace, Options, Runtime};
use burrow_state::{
    DestroyError, ErrorNote, FIELDS, IDENTITY_FIELDS, InstanceState, Loaded, MachineSize,
    QUARANTINE_PREFIX, RestoreSource, SecretEnvelope, Status, Update,
};
use proptest::prelude::*;

enum Op {
    Create(Box<InstanceState>),
    Apply(Box<InstanceState>, Box<Update>),
    Load,
    RawPut(String, Vec<u8>),
    RawGet(String),
    Reset,
}

#[derive(Debug)]
enum Out {
    Loaded(Loaded),
    Applied(Result<Box<InstanceState>, String>),
    Raw(Option<Vec<u8>>),
    Done,
}

struct StateActor;

impl Message for Op {
    type Reply = Out;
}

impl Actor for StateActor {}

impl Handler<Op> for StateActor {
    async fn handle(&mut self, ctx: &mut Context<Self>, op: Op) -> Result<Out, Abort> {
        let s = ctx.storage();
        let failed = |e: burrow_state::StateError| Abort::new(e.to_string());
        Ok(match op {
            Op::Create(state) => {
                state.create(s).map_err(failed)?;
                Out::Done
            }
            Op::Apply(mut state, update) => Out::Applied(match update.apply(&mut state, s) {
                Ok(()) => Ok(state),
                Err(e) => Err(e.to_string()),
            }),
            Op::Load => Out::Loaded(InstanceState::load(s).map_err(failed)?),
            Op::RawPut(key, bytes) => {
                s.put(&key, &bytes)?;
                Out::Done
            }
            Op::RawGet(key) => Out::Raw(s.get::<Vec<u8>>(&key)?),
            Op::Reset => {
                InstanceState::reset(s).map_err(failed)?;
                Out::Done
            }
        })
    }
}

struct Harness {
    executor: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _runtime: Runtime,
    ns: Namespace<StateActor>,
}

/// One runtime for the whole test binary (real files in a temporary directory).
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runtime =
            executor.block_on(async { Runtime::open(Options::new(dir.path()).shards(2)).unwrap() });
        let ns = runtime.namespace("state", |_| StateActor).unwrap();
        Harness {
            executor,
            _dir: dir,
            _runtime: runtime,
            ns,
        }
    })
}

fn exec(actor: &str, op: Op) -> Out {
    let h = harness();
    h.executor
        .block_on(h.ns.get_by_name(actor).call(op))
        .unwrap()
}

fn load(actor: &str) -> Loaded {
    match exec(actor, Op::Load) {
        Out::Loaded(loaded) => loaded,
        other => panic!("unexpected {other:?}"),
    }
}

fn loaded_state(actor: &str) -> (InstanceState, Vec<burrow_state::FieldFailure>) {
    match load(actor) {
        Loaded::State { state, failures } => (*state, failures),
        other => panic!("expected a state, got {other:?}"),
    }
}

// ---- strategies -------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

/// A machine or volume id, or none.
fn provider_id<T: std::str::FromStr + std::fmt::Debug>() -> impl Strategy<Value = Option<T>>
where
    T::Err: std::fmt::Debug,
{
    proptest::option::of("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,39}".prop_map(|s| s.parse().unwrap()))
}

fn user_id() -> impl Strategy<Value = UserId> {
    "[a-zA-Z0-9_@.|-]{1,30}".prop_map(|s| s.parse().unwrap())
}

fn sandbox_id() -> impl Strategy<Value = SandboxId> {
    prop_oneof![
        any::<u128>().prop_map(|n| InstanceId::from_uuid(uuid::Uuid::from_u128(n)).sandbox_id()),
        user_id().prop_map(|u| u.legacy_sandbox_id()),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(vec![
        Status::Provisioned,
        Status::Starting,
        Status::Running,
        Status::Stopped,
        Status::Restarting,
        Status::Destroying,
        Status::Restoring,
    ])
}

fn error_note() -> impl Strategy<Value = ErrorNote> {
    (text(), any::<i64>()).prop_map(|(message, at)| ErrorNote { message, at })
}

fn state() -> impl Strategy<Value = InstanceState> {
    let identity = (
        proptest::option::of(user_id()),
        proptest::option::of(sandbox_id()),
        proptest::option::of(
            any::<u128>().prop_map(|n| OrgId::from_uuid(uuid::Uuid::from_u128(n))),
        ),
        proptest::option::of(status()),
        proptest::collection::vec(proptest::option::of(any::<i64>()), 7),
    );
    let binding = (
        opt_text(),
        provider_id::<MachineId>(),
        provider_id::<VolumeId>(),
        opt_text(),
        proptest::option::of(
            (any::<u32>(), any::<u32>())
                .prop_map(|(cpus, memory_mb)| MachineSize { cpus, memory_mb }),
        ),
        any::<u32>(),
        provider_id::<MachineId>(),
        provider_id::<VolumeId>(),
        any::<bool>(),
    );
    let errors = (
        proptest::option::of(
            (
                text(),
                proptest::option::of(any::<u16>()),
                text(),
                any::<i64>(),
            )
                .prop_map(|(operation, status_code, message, at)| DestroyError {
                    operation,
                    status_code,
                    message,
                    at,
                }),
        ),
        proptest::option::of(error_note()),
        proptest::option::of(error_note()),
    );
    let config = (
        proptest::collection::btree_map(text(), text(), 0..4),
        proptest::collection::btree_map(
            text(),
            (
                proptest::collection::vec(any::<u8>(), 0..16),
                proptest::collection::vec(any::<u8>(), 0..16),
                text(),
                any::<u32>(),
            )
                .prop_map(|(ciphertext, wrapped_key, algorithm, version)| {
                    SecretEnvelope {
                        ciphertext,
                        wrapped_key,
                        algorithm,
                        version,
                    }
                }),
            0..3,
        ),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        proptest::collection::vec(text(), 0..4),
        proptest::option::of(prop::sample::select(vec![
            RestoreSource::InstanceId,
            RestoreSource::SandboxId,
            RestoreSource::PersonalInstance,
        ])),
        proptest::collection::vec(text(), 0..3),
    );
    (identity, binding, errors, config).prop_map(|(identity, binding, errors, config)| {
        let (user_id, sandbox_id, org_id, status, times) = identity;
        let mut s = InstanceState::fresh();
        // The schema's rule: no user id, no status.
        s.status = if user_id.is_some() { status } else { None };
        (s.user_id, s.sandbox_id, s.org_id) = (user_id, sandbox_id, org_id);
        (
            s.provisioned_at,
            s.starting_at,
            s.restarting_at,
            s.last_started_at,
            s.last_stopped_at,
        ) = (times[0], times[1], times[2], times[3], times[4]);
        (s.last_metadata_recovery_at, s.restored_at) = (times[5], times[6]);
        let (app, machine, volume, region, size, fails, pending_machine, pending_volume, mark) =
            binding;
        (
            s.provider_app_name,
            s.machine_id,
            s.volume_id,
            s.region,
            s.machine_size,
        ) = (app, machine, volume, region, size);
        (
            s.health_check_fail_count,
            s.pending_destroy_machine_id,
            s.pending_destroy_volume_id,
        ) = (fails, pending_machine, pending_volume);
        s.pending_registry_mark_on_finalize = mark;
        (
            s.last_destroy_error,
            s.last_start_error,
            s.last_restart_error,
        ) = errors;
        let (env, secrets, image, features, restored_from, quarantined) = config;
        (s.env_vars, s.encrypted_secrets) = (env, secrets);
        (
            s.image_version,
            s.image_variant,
            s.tracked_image_tag,
            s.tracked_image_digest,
        ) = image;
        (s.instance_features, s.restored_from, s.quarantined_fields) =
            (features, restored_from, quarantined);
        s
    })
}

fn field_subset() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_state_round_trips_through_storage(state in state()) {
        exec("round-trip", Op::Reset);
        exec("round-trip", Op::Create(Box::new(state.clone())));
        let (loaded, failures) = loaded_state("round-trip");
        prop_assert!(failures.is_empty());
        prop_assert_eq!(loaded, state);
    }

    #[test]
    fn a_partial_update_on_disk_equals_the_update_in_memory(
        base in state(),
        other in state(),
        fields in field_subset(),
    ) {
        exec("update", Op::Reset);
        exec("update", Op::Create(Box::new(base.clone())));
        let update = Update::copying(&other, &fields);
        let mut expected = base.clone();
        update.apply_in_memory(&mut expected);
        let applied = match exec("update", Op::Apply(Box::new(base.clone()), Box::new(update))) {
            Out::Applied(applied) => applied,
            other => panic!("unexpected {other:?}"),
        };
        let (stored, failures) = loaded_state("update");
        prop_assert!(failures.is_empty());
        match applied {
            Ok(in_memory) => {
                prop_assert_eq!(&*in_memory, &expected);
                prop_assert_eq!(stored, expected);
            }
            // Refused (status without a user): nothing changed anywhere.
            Err(reason) => {
                prop_assert!(expected.validate().is_err(), "{}", reason);
                prop_assert_eq!(stored, base);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever bytes a field holds, loading never fails or panics and never silently resets:
    /// an identity field that does not decode makes the state lost with nothing rewritten; any
    /// other keeps its raw bytes aside and lists itself as quarantined.
    #[test]
    fn arbitrary_stored_bytes_never_silently_reset_a_state(
        field in proptest::sample::select(FIELDS.to_vec()),
        bytes in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        exec("fuzz", Op::Reset);
        exec("fuzz", Op::RawPut(format!("{QUARANTINE_PREFIX}{field}"), Vec::new()));
        exec("fuzz", Op::Create(Box::new(provisioned())));
        let key = format!("state/{field}");
        exec("fuzz", Op::RawPut(key.clone(), bytes.clone()));
        match load("fuzz") {
            Loaded::Lost { failures } => {
                prop_assert!(IDENTITY_FIELDS.contains(&field), "{} made the state lost", field);
                prop_assert_eq!(failures.iter().map(|f| f.field).collect::<Vec<_>>(), vec![field]);
                match exec("fuzz", Op::RawGet(key)) {
                    Out::Raw(raw) => prop_assert_eq!(raw, Some(bytes)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            Loaded::State { state, failures } if failures.is_empty() => {
                // The bytes happened to decode: the state is whatever they say, never empty.
                prop_assert!(state.user_id.is_some() || field == "user_id");
            }
            Loaded::State { state, failures } => {
                prop_assert!(!IDENTITY_FIELDS.contains(&field));
                prop_assert_eq!(failures.iter().map(|f| f.field).collect::<Vec<_>>(), vec![field]);
                prop_assert!(state.quarantined_fields.iter().any(|f| f == field));
                match exec("fuzz", Op::RawGet(format!("{QUARANTINE_PREFIX}{field}"))) {
                    Out::Raw(raw) => prop_assert_eq!(raw, Some(bytes)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            Loaded::Empty => prop_assert!(false, "a stored state loaded as empty"),
        }
    }
}

fn provisioned() -> InstanceState {
    let mut s = InstanceState::fresh();
    let id = InstanceId::new_random();
    s.user_id = Some("user_1".parse().unwrap());
    s.sandbox_id = Some(id.sandbox_id());
    s.org_id = Some(OrgId::new_random());
    s.status = Some(Status::Running);
    s.region = Some("ams".into());
    s.machine_size = Some(MachineSize {
        cpus: 2,
        memory_mb: 2048,
    });
    s.env_vars = BTreeMap::from([("A".into(), "1".into())]);
    s.instance_features = vec!["beta".into()];
    s
}

/// Overwrites a stored value through plain rusqlite, with the runtime closed, as a damaged disk
/// would.
fn corrupt_on_disk(actor: &str, key: &str, bytes: &[u8]) {
    let h = harness();
    let path = h.ns.path_of(&h.ns.id_from_name(actor));
    // Evict the actor so the file is closed, then edit it.
    h.executor.block_on(async {
        let catalog = h._runtime.catalog();
        let export = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::remove_file(&export).unwrap();
        catalog
            .export("state", h.ns.id_from_name(actor), &export)
            .await
            .unwrap();
    });
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE")
        .unwrap();
    let changed = conn
        .execute(
            "UPDATE _burrow_kv SET value = ?1 WHERE key = CAST(?2 AS BLOB)",
            rusqlite::params![bytes, key],
        )
        .unwrap();
    assert_eq!(changed, 1, "{key} was not stored");
}

#[test]
fn a_corrupt_field_is_set_aside_and_the_rest_survives() {
    let state = provisioned();
    exec("corrupt-region", Op::Create(Box::new(state.clone())));
    let garbage = vec![0xFF; 9];
    corrupt_on_disk("corrupt-region", "state/machine_size", &garbage);

    let (loaded, failures) = loaded_state("corrupt-region");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].field, "machine_size");
    assert_eq!(
        loaded.machine_size, None,
        "the broken field takes its default"
    );
    assert_eq!(loaded.quarantined_fields, ["machine_size"]);
    let mut expected = state.clone();
    expected.machine_size = None;
    expected.quarantined_fields = vec!["machine_size".into()];
    assert_eq!(loaded, expected, "every other field is intact");
    match exec(
        "corrupt-region",
        Op::RawGet(format!("{QUARANTINE_PREFIX}machine_size")),
    ) {
        Out::Raw(raw) => assert_eq!(raw, Some(garbage), "the raw bytes are kept"),
        other => panic!("unexpected {other:?}"),
    }
    // The next load is clean and still remembers the quarantine.
    let (again, failures) = loaded_state("corrupt-region");
    assert!(failures.is_empty());
    assert_eq!(again, expected);
}

#[test]
fn a_corrupt_org_id_makes_the_state_lost_not_personal() {
    let state = provisioned();
    exec("corrupt-org", Op::Create(Box::new(state)));
    let garbage = vec![0x01, 0x03, 0xAB];
    corrupt_on_disk("corrupt-org", "state/org_id", &garbage);
    match load("corrupt-org") {
        Loaded::Lost { failures } => {
            assert_eq!(
                failures.iter().map(|f| f.field).collect::<Vec<_>>(),
                ["org_id"]
            );
        }
        other => panic!("an undecodable org id must make the state lost, got {other:?}"),
    }
    // Nothing was rewritten: the broken bytes are still where they were.
    match exec("corrupt-org", Op::RawGet("state/org_id".into())) {
        Out::Raw(raw) => assert_eq!(raw, Some(garbage)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_state_of_the_older_schema_loads_with_defaults_and_converted_values() {
    // Schema version 1: machine size as text, no image fields, nothing restored.
    fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }
    let user: UserId = "legacy-user".parse().unwrap();
    let fixture: Vec<(&str, Vec<u8>)> = vec![
        ("state.version", enc(&1u32)),
        ("state/user_id", enc(&Some(user.clone()))),
        ("state/sandbox_id", enc(&Some(user.legacy_sandbox_id()))),
        ("state/org_id", enc(&None::<OrgId>)),
        ("state/status", enc(&Some(Status::Stopped))),
        ("state/machine_size", enc(&Some("4x8192".to_owned()))),
        ("state/region", enc(&Some("fra".to_owned()))),
        ("state/health_check_fail_count", enc(&3u32)),
    ];
    for (key, bytes) in fixture {
        exec("legacy", Op::RawPut(key.into(), bytes));
    }
    let (loaded, failures) = loaded_state("legacy");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        loaded.machine_size,
        Some(MachineSize {
            cpus: 4,
            memory_mb: 8192
        })
    );
    assert_eq!(
        loaded.image_variant.as_deref(),
        Some("legacy"),
        "absent: the documented older-state default"
    );
    assert_eq!(
        InstanceState::fresh().image_variant,
        None,
        "which differs from a fresh state's"
    );
    assert_eq!(
        (loaded.user_id, loaded.status, loaded.region.as_deref()),
        (Some(user), Some(Status::Stopped), Some("fra"))
    );
    assert_eq!(loaded.health_check_fail_count, 3);
    assert_eq!(loaded.env_vars, BTreeMap::new());
    assert_eq!(loaded.org_id, None);
}

#[test]
fn nothing_stored_loads_as_empty_and_newer_schemas_are_refused() {
    assert_eq!(load("never-provisioned"), Loaded::Empty);
    let newer = bincode::serde::encode_to_vec(99u32, bincode::config::standard()).unwrap();
    exec("from-the-future", Op::RawPut("state.version".into(), newer));
    let h = harness();
    let err = h
        .executor
        .block_on(h.ns.get_by_name("from-the-future").call(Op::Load))
        .unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn views_show_counts_not_secrets() {
    let mut state = provisioned();
    state.encrypted_secrets.insert(
        "TOKEN".into(),
        SecretEnvelope {
            ciphertext: b"sekrit".to_vec(),
            wrapped_key: b"key".to_vec(),
            algorithm: "aes-256-gcm".into(),
            version: 1,
        },
    );
    state.pending_destroy_machine_id = Some("m-1".parse().unwrap());
    let user = serde_json::to_string(&state.status_view()).unwrap();
    assert!(
        user.contains("\"envVarCount\":1") && user.contains("\"secretCount\":1"),
        "{user}"
    );
    assert!(!user.contains("TOKEN") && !user.contains("m-1"), "{user}");
    let admin = serde_json::to_string(&state.debug_view()).unwrap();
    assert!(
        admin.contains("TOKEN") && admin.contains("m-1") && admin.contains("aes-256-gcm"),
        "{admin}"
    );
    assert!(
        !admin.contains("sekrit") && !admin.contains("[115,101"),
        "no secret bytes: {admin}"
    );
}

#[test]
fn an_update_that_breaks_the_schema_changes_nothing() {
    exec("invalid", Op::Create(Box::new(provisioned())));
    let Out::Applied(applied) = exec(
        "invalid",
        Op::Apply(
            Box::new(provisioned()),
            Box::new(Update::default().user_id(None)),
        ),
    ) else {
        panic!()
    };
    assert!(applied.unwrap_err().contains("without a user id"));
    let (stored, _) = loaded_state("invalid");
    assert!(stored.user_id.is_some());
}

#[test]
fn machine_ids_stored_as_text_load_typed_and_a_broken_one_is_set_aside() {
    fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }
    let state = provisioned();
    exec("typed-ids", Op::Create(Box::new(state.clone())));
    // What states written before the ids were typed hold: plain strings.
    let machine = "m0123456789abcdef0123456789abcdef";
    exec(
        "typed-ids",
        Op::RawPut("state/machine_id".into(), enc(&Some(machine.to_owned()))),
    );
    exec(
        "typed-ids",
        Op::RawPut(
            "state/pending_destroy_volume_id".into(),
            enc(&Some("../../etc".to_owned())),
        ),
    );
    let (loaded, failures) = loaded_state("typed-ids");
    assert_eq!(loaded.machine_id, Some(machine.parse().unwrap()));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].field, "pending_destroy_volume_id");
    assert_eq!(loaded.pending_destroy_volume_id, None);
    assert_eq!(loaded.quarantined_fields, ["pending_destroy_volume_id"]);
}
