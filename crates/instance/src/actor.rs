//! The instance actor: one per instance (or per legacy user), holding its persisted state.
//!
//! Activation loads the state from the actor's storage; when the runtime reports the actor's
//! file lost, or the identity in it does not decode, the first turn that needs the state
//! restores it from the registry by the actor's own name. The lifecycle operations live in
//! `lifecycle/`, the message handlers in `handlers.rs`; this file holds the loading and the
//! restore.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use burrow_identity::ActorName;
use burrow_restore::RegistryError;
use burrow_runtime::alarm::Alarm;
use burrow_runtime::{Abort, Actor, Context};
use burrow_state::{
    FIELDS, InstanceState, KEY_PREFIX, Loaded, QUARANTINE_PREFIX, StateError, Status, Update,
    now_ms,
};

use crate::protocol::InstanceError;
use crate::provider::{MachineState, SandboxProvider, best_machine};
use crate::services::Services;

/// Set when a turn found the actor's state lost but could not restore it yet (registry
/// down): the next turn retries the restore even though the runtime no longer reports the
/// loss.
pub(crate) const RESTORE_PENDING_KEY: &str = "instance.restore_pending";
/// The reconcile alarm's name.
pub(crate) const RECONCILE_ALARM: &str = "reconcile";

/// What one call answers.
pub(crate) type Outcome<T> = Result<Result<T, InstanceError>, Abort>;

/// What the actor knows of its state, decided at activation and kept up to date by every
/// turn that writes it.
#[derive(Debug)]
pub(crate) enum Known {
    /// Not provisioned (nothing stored, and nothing to restore).
    NotProvisioned,
    /// Provisioned: the state as last loaded or written.
    Provisioned(Box<InstanceState>),
    /// Not usable yet: the state must first be restored from the registry. `reported_loss`:
    /// the loss is certain (the runtime reported it, the identity did not decode, or a restore
    /// is pending); otherwise the actor was simply never seen here and only asks.
    NeedsRestore { reported_loss: bool },
}

/// The fields a [`Route`](crate::Route) is made of: changing one drops the cached route.
const ROUTE_FIELDS: [&str; 5] = ["user_id", "sandbox_id", "org_id", "status", "machine_id"];

/// The actor. Created by [`Instances`](crate::Instances); not used directly.
pub struct InstanceActor<P> {
    pub(crate) services: Arc<Services<P>>,
    pub(crate) name: ActorName,
    pub(crate) known: Known,
    /// The current start or restart; reports from older ones are stale.
    pub(crate) attempt: u64,
    /// The attempt whose background work is still running, if any. A status of starting
    /// with nothing in flight is left over from a crash, and does not block a new start.
    pub(crate) in_flight: Option<u64>,
}

impl<P: SandboxProvider> InstanceActor<P> {
    pub(crate) fn new(services: Arc<Services<P>>, name: ActorName) -> InstanceActor<P> {
        InstanceActor {
            services,
            name,
            // Until `on_activate` has looked, nothing is served.
            known: Known::NeedsRestore {
                reported_loss: false,
            },
            attempt: 0,
            in_flight: None,
        }
    }

    /// Decides, from the actor's own storage, what it knows of its state (see [`Known`]).
    fn load(&self, ctx: &Context<Self>) -> Result<Known, Abort> {
        let storage = ctx.storage();
        let lost = match InstanceState::load(storage).map_err(state_abort)? {
            // A provisioned state without its identity cannot be served: restore it.
            Loaded::State { state, .. }
                if state.status.is_some()
                    && (state.user_id.is_none() || state.sandbox_id.is_none()) =>
            {
                tracing::warn!(actor = %self.name, "state without identity; restoring");
                true
            }
            Loaded::State { state, failures } => {
                for f in failures {
                    tracing::warn!(actor = %self.name, field = f.field, reason = %f.reason,
                        "a state field did not decode; its bytes were set aside");
                }
                return Ok(Known::Provisioned(state));
            }
            Loaded::Empty
                if ctx.info().lost_state().is_some()
                    || storage.get::<Vec<u8>>(RESTORE_PENDING_KEY)?.is_some() =>
            {
                true
            }
            // Never seen here, but the registry may know it (a rebuilt data directory): an
            // instance-keyed actor looks itself up by its own id. Nothing is written unless a
            // row is found. (A legacy actor does not: its fallback to the user's personal
            // instance could make two actors drive one sandbox.)
            Loaded::Empty if matches!(self.name, ActorName::Instance(_)) => {
                return Ok(Known::NeedsRestore {
                    reported_loss: false,
                });
            }
            Loaded::Empty => return Ok(Known::NotProvisioned),
            Loaded::Lost { failures } => {
                tracing::warn!(actor = %self.name, ?failures, "identity does not decode; restoring");
                true
            }
        };
        debug_assert!(lost);
        // Remember the loss in the file itself: if the restore cannot finish now, a later
        // turn must still try, whatever happens to this activation.
        storage.put(RESTORE_PENDING_KEY, b"1")?;
        Ok(Known::NeedsRestore {
            reported_loss: true,
        })
    }

    /// The state, restoring it first if it must be. `Ok(None)`: not provisioned.
    pub(crate) async fn state(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> Result<Result<Option<InstanceState>, InstanceError>, Abort> {
        match &self.known {
            Known::NotProvisioned => Ok(Ok(None)),
            Known::Provisioned(state) => Ok(Ok(Some((**state).clone()))),
            Known::NeedsRestore { reported_loss } => {
                let reported_loss = *reported_loss;
                // A failed restore leaves `known` as it is: the next turn tries again.
                self.restore(ctx, reported_loss).await
            }
        }
    }

    /// Rebuilds the state from the registry by the actor's own name and re-binds a sandbox
    /// that still runs. Writes nothing if the registry cannot answer.
    async fn restore(
        &mut self,
        ctx: &mut Context<Self>,
        reported_loss: bool,
    ) -> Outcome<Option<InstanceState>> {
        let name = self.name.clone();
        let now = now_ms();
        let found = self
            .services
            .registry(move |r| async move { burrow_restore::restore(&r, &name, now).await })
            .await;
        let restored = match found {
            Ok(Some(restored)) => restored,
            Ok(None) => {
                if reported_loss {
                    tracing::warn!(actor = %self.name, "state lost and nothing to restore");
                    ctx.storage().delete(RESTORE_PENDING_KEY)?;
                }
                self.set_known(Known::NotProvisioned);
                return Ok(Ok(None));
            }
            Err(e) => return Ok(Err(registry_error(e))),
        };
        let mut state = restored.state;
        // The sandbox may have outlived the state: find it by its labels (without charging
        // the recovery cooldown, which belongs to starts).
        let (user, sandbox) = (
            state.user_id.clone().expect("restored states have a user"),
            state
                .sandbox_id
                .clone()
                .expect("restored states have a sandbox"),
        );
        let listed = self.services.provider().list(&user, &sandbox).await;
        match listed {
            Ok(machines) => {
                if let Some(m) = best_machine(&machines) {
                    let healthy = m.state == MachineState::Running
                        && self.services.provider().healthy(&m.id).await == Ok(true);
                    state.machine_id = Some(m.id.clone());
                    state.volume_id = Some(m.volume_id.clone());
                    state.provider_app_name = Some("local".to_owned());
                    // Running only if it answers; otherwise stopped, and reconcile stops a
                    // process that runs without answering.
                    state.status = Some(if healthy {
                        Status::Running
                    } else {
                        Status::Stopped
                    });
                }
            }
            Err(e) => tracing::warn!(actor = %self.name, error = %e,
                "could not list sandboxes while restoring; a start will recover them"),
        }
        let storage = ctx.storage();
        // Identity fields that did not decode stay on disk, set aside, before being rewritten.
        for field in FIELDS {
            let key = format!("{KEY_PREFIX}{field}");
            if let Some(raw) = storage.get::<Vec<u8>>(&key)?
                && storage
                    .get::<Vec<u8>>(&format!("{QUARANTINE_PREFIX}{field}"))?
                    .is_none()
            {
                storage.put(&format!("{QUARANTINE_PREFIX}{field}.before_restore"), &raw)?;
            }
        }
        state.create(storage).map_err(state_abort)?;
        storage.delete(RESTORE_PENDING_KEY)?;
        tracing::info!(actor = %self.name, source = ?restored.source, machine = ?state.machine_id,
            "state restored from the registry");
        let status = state.status;
        self.set_known(Known::Provisioned(Box::new(state.clone())));
        if let Some(status) = status {
            self.schedule(ctx, status)?;
        }
        Ok(Ok(Some(state)))
    }

    /// Applies `update` to the state in memory and in storage.
    pub(crate) fn update(&mut self, ctx: &Context<Self>, update: Update) -> Result<(), Abort> {
        let Known::Provisioned(state) = &mut self.known else {
            return Err(Abort::new("updating an instance that is not loaded"));
        };
        if update.fields().iter().any(|f| ROUTE_FIELDS.contains(f)) {
            // Before the turn commits: a route read after this turn is read from its result.
            self.services.routes.invalidate(&self.name);
        }
        update.apply(state, ctx.storage()).map_err(state_abort)
    }

    /// Replaces what the actor knows of its state; the proxy's cached route goes with it.
    pub(crate) fn set_known(&mut self, known: Known) {
        self.services.routes.invalidate(&self.name);
        self.known = known;
    }

    /// The loaded state (only after [`state`](Self::state) found one).
    pub(crate) fn current(&self) -> Option<&InstanceState> {
        match &self.known {
            Known::Provisioned(state) => Some(state),
            _ => None,
        }
    }

    /// Sets the reconcile alarm for `status`, with jitter.
    pub(crate) fn schedule(&self, ctx: &mut Context<Self>, status: Status) -> Result<(), Abort> {
        let lifecycle = &self.services.lifecycle;
        let interval = lifecycle.reconcile_interval(status).as_millis() as u64;
        let jitter_max = lifecycle.reconcile_jitter.as_millis() as u64;
        let jitter = if jitter_max == 0 {
            0
        } else {
            getrandom::u64().unwrap_or(0) % (jitter_max + 1)
        };
        ctx.set_alarm(
            RECONCILE_ALARM,
            SystemTime::now() + Duration::from_millis(interval + jitter),
        )
    }
}

impl<P: SandboxProvider> Actor for InstanceActor<P> {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        self.set_known(self.load(ctx)?);
        Ok(())
    }

    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        if alarm.name != RECONCILE_ALARM {
            tracing::warn!(actor = %self.name, alarm = %alarm.name, "dropping an unknown alarm");
            return Ok(());
        }
        self.reconcile(ctx).await
    }
}

/// A state error as a failed turn: storage errors keep their kind (so that the caller can
/// tell a transient failure), the rest are internal.
pub(crate) fn state_abort(e: StateError) -> Abort {
    match e {
        StateError::Storage(e) => Abort::from(e),
        other => Abort::new(other.to_string()),
    }
}

/// A registry error as the caller should see it.
pub(crate) fn registry_error(e: RegistryError) -> InstanceError {
    match e {
        e if e.is_retryable() => InstanceError::RegistryUnavailable(e.to_string()),
        RegistryError::UnknownOrganization(org) => InstanceError::UnknownOrganization(org),
        RegistryError::Conflict(m) => InstanceError::Conflict(m),
        RegistryError::InvalidInput(m) => InstanceError::Invalid(m),
        other => InstanceError::Registry(other.to_string()),
    }
}
