//! Activation: opening (or creating) an actor's file, moving unusable files aside, telling the
//! actor what was lost, recording it in the catalog, and building it with its factory.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::actor::envelope::ErasedEnvelope;
use crate::actor::{Actor, ActorInfo, Context, ContextParts, LostReason, LostState};
use crate::actor_type::ActorType;
use crate::catalog_db::CatalogWrite;
use crate::error::{CallError, ErrorKind};
use crate::failure::{panic_message, storage_failure};
use crate::id::ActorId;
use crate::layout::create_actor_dir;
use crate::quarantine::quarantine;
use crate::services::ShardServices;
use crate::storage::{Identity, Storage, Unusable};
use crate::turn::Live;

/// Everything an activation needs.
pub(crate) struct Activation<'a, A: Actor> {
    pub(crate) actor_type: &'a ActorType<A>,
    pub(crate) id: ActorId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) services: &'a Rc<ShardServices>,
    /// Why a previous instance was discarded with a damaged file, if it was.
    pub(crate) lost_note: Option<LostState>,
    /// Delivers an envelope to this actor.
    pub(crate) post: Rc<dyn Fn(ErasedEnvelope)>,
    /// The actor's count of background tasks (kept by its slot across activations).
    pub(crate) background: Rc<Cell<usize>>,
}

/// Activates the actor; in replicated mode, first claims it in its log and brings its file to
/// the log's head ([`catch_up`](crate::catch_up)), and afterwards gives the file's storage the
/// position its turns append from.
pub(crate) async fn activate_with_log<A: Actor>(
    a: Activation<'_, A>,
) -> Result<Live<A>, CallError> {
    #[cfg(feature = "replicated")]
    if let Some(log) = a.services.log.clone() {
        use crate::catch_up::{claim_and_catch_up, start_or_resume};
        let key = crate::turn_log::LogKey {
            namespace: a.actor_type.name.clone(),
            id: a.id,
        };
        let path = a.actor_type.path_for(&a.id);
        let name = a.name.clone();
        // Read before the claim: a rejoin in between makes the activation look older than it
        // is (it is then claimed again), never younger.
        let generation = log.generation();
        let synced = claim_and_catch_up(&log, &key, name.as_deref(), &path, a.services).await?;
        let mut a = a;
        if !synced.start_log {
            // Whatever happened to the file before (a quarantine after a damaged turn), the
            // log had every commit, and the file now holds them: nothing was lost.
            a.lost_note = None;
        }
        let max_image = a.services.snapshots.max_image_bytes;
        let services = a.services.clone();
        let mut live = activate(a)?;
        start_or_resume(
            live.storage_mut(),
            &log,
            &key,
            &synced,
            services.append_timeout,
            max_image,
            generation,
        )
        .await?;
        if !synced.start_log {
            adopt_alarms(&services, &key, live.storage_mut());
        }
        return Ok(live);
    }
    activate(a)
}

/// Indexes the alarms an actor with a log holds: it may have run on another node of a cluster,
/// whose catalog indexed them, or on this one before its catalog was lost. Without this the
/// alarms of an actor that moved would fire nowhere.
#[cfg(feature = "replicated")]
fn adopt_alarms(
    services: &ShardServices,
    key: &crate::turn_log::LogKey,
    storage: &mut crate::storage::Storage,
) {
    match storage.alarm_rows() {
        Ok(rows) => {
            for (name, due_ms) in rows {
                services.catalog_write(CatalogWrite::AlarmAdopt {
                    namespace: key.namespace.clone(),
                    id: key.id,
                    name,
                    due_ms,
                });
            }
        }
        // The actor still runs; its alarms fire once it sets them again or this node's
        // catalog is rebuilt from the log.
        Err(e) => {
            tracing::warn!(namespace = %key.namespace, id = %key.id, "reading the actor's alarms to index them: {e}")
        }
    }
}

/// Opens (or creates) the actor's file and builds the actor with the namespace's factory.
fn activate<A: Actor>(a: Activation<'_, A>) -> Result<Live<A>, CallError> {
    let actor_type = a.actor_type;
    let id = a.id;
    let _span = tracing::debug_span!("activate", namespace = %actor_type.name, %id).entered();
    let path = actor_type.path_for(&id);
    let durability = a.services.durability;
    let clock = &a.services.clock;
    let identity = Identity {
        namespace: actor_type.name.clone(),
        id,
        name: a.name.clone(),
    };
    let create = |lost: Option<LostState>| -> Result<(Storage, Option<LostState>), CallError> {
        create_actor_dir(&path, durability)
            .map_err(|e| CallError::new(ErrorKind::TransientIo, e.to_string()))?;
        Storage::create(&path, durability, &identity, clock.now_ms())
            .map(|s| (s, lost))
            .map_err(|e| storage_failure("creating the actor's database", &e))
    };
    let (storage, lost, cold) = if path.exists() {
        match Storage::open_existing(&path, durability, &identity) {
            Ok(Ok(storage)) => (storage, a.lost_note, false),
            Ok(Err(unusable)) => {
                let (reason, label) = match unusable {
                    Unusable::Empty => (LostReason::Empty, "empty"),
                    Unusable::NoIdentity => (LostReason::NoIdentity, "no_identity"),
                    Unusable::WrongIdentity(s) => (LostReason::WrongIdentity(s), "wrong_identity"),
                    Unusable::Corrupt(e) => (LostReason::Corrupt(e.to_string()), "corrupt"),
                };
                let moved_to = quarantine(&path, label, clock)?;
                a.services
                    .quarantined(actor_type.name.clone(), id, label, &moved_to);
                let quarantined_to = Some(moved_to);
                let (storage, lost) = create(Some(LostState {
                    reason,
                    quarantined_to,
                }))?;
                (storage, lost, true)
            }
            Err(e) => return Err(storage_failure("opening the actor's database", &e)),
        }
    } else {
        let known = a
            .services
            .catalog_knows(&actor_type.name, &id)
            .map_err(|e| {
                CallError::new(ErrorKind::TransientIo, format!("reading the catalog: {e}"))
            })?;
        let lost = match a.lost_note {
            Some(note) => Some(note),
            None if known => {
                metrics::counter!("burrow_quarantines_total", "reason" => "missing").increment(1);
                tracing::warn!(namespace = %actor_type.name, %id, "the catalog lists this actor but its file is gone");
                Some(LostState {
                    reason: LostReason::Missing,
                    quarantined_to: None,
                })
            }
            None => None,
        };
        let (storage, lost) = create(lost)?;
        (storage, lost, true)
    };
    metrics::counter!("burrow_activations_total", "kind" => if cold { "cold" } else { "warm" })
        .increment(1);
    // A new file must be in the catalog before its first reply. A known one is already there,
    // and its last-active time is recorded when it is closed: re-activation writes nothing to
    // the catalog (it cost a channel send, a wake-up of the writer thread and part of a
    // catalog commit per activation).
    let name = a.name.or_else(|| storage.recorded_name());
    let catalog_ack = cold.then(|| {
        let (ack, acked) = oneshot::channel();
        a.services.catalog_write(CatalogWrite::Upsert {
            namespace: actor_type.name.clone(),
            id,
            name: name.clone(),
            created_at_ms: storage.created_at_ms(),
            last_active_ms: clock.now_ms(),
            ack: Some(ack),
        });
        acked
    });
    let info = ActorInfo {
        namespace: actor_type.name.clone(),
        id,
        name,
        lost,
    };
    let actor = std::panic::catch_unwind(AssertUnwindSafe(|| (actor_type.factory)(&info)))
        .map_err(|panic| {
            CallError::new(
                ErrorKind::ActorFailed,
                format!("the actor's factory panicked: {}", panic_message(&*panic)),
            )
        })?;
    let ctx = Context::new(ContextParts {
        info,
        storage,
        services: a.services.clone(),
        post: a.post,
        background: a.background,
    });
    Ok(Live::new(actor, ctx, catalog_ack))
}
