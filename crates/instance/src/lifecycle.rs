//! The lifecycle: provision, start, stop, restart, destroy, reconcile — and the reports of the
//! background work a start leaves behind.
//!
//! Two rules hold throughout. Side effects follow persisted intent: a turn records the status
//! (and, for a destroy, what must be deleted) and flushes before it touches the provider, and a
//! machine's id is persisted as soon as it exists. And background work never decides: it
//! reports, and the turn that handles the report re-reads the status — so a stop or destroy
//! that arrived meanwhile wins, and a report from an older start is recognised as stale.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burrow_identity::{ActorName, SandboxId};
use burrow_restore::{NewInstance, Registry as _};
use burrow_runtime::{Abort, Context};
use burrow_state::{
    DestroyError, ErrorNote, InstanceState, SecretEnvelope, Status, StatusView, Update,
};

use crate::actor::{
    InstanceActor, Outcome, RECONCILE_ALARM, RESTORE_PENDING_KEY, now_ms, registry_error,
};
use crate::env::{MAX_ENTRIES, check_name, check_value, sandbox_environment};
use crate::protocol::{
    ConfigPatch, ConfigView, DebugStatus, Destroyed, InstanceError, Internal, Provision,
    Provisioned, Report, Request, Route,
};
use crate::provider::{Labels, Machine, MachineSpec, MachineState, SandboxProvider, best_machine};
use crate::secrets::DataKey;

/// What the background part of a start must do.
struct StartPlan {
    attempt: u64,
    machine_id: Option<String>,
    labels: Labels,
    env: BTreeMap<String, String>,
    /// Look for an existing sandbox by its labels before creating one.
    recover: bool,
    /// Stop the machine first (a restart).
    restart: bool,
}

impl<P: SandboxProvider> InstanceActor<P> {
    pub(crate) async fn provision(
        &mut self,
        ctx: &mut Context<Self>,
        p: Provision,
    ) -> Outcome<Provisioned> {
        let patch = ConfigPatch {
            env_vars: p.env_vars.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            secrets: p.secrets.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        };
        if let Err(e) = check_patch(&patch) {
            return Ok(Err(e));
        }
        let (instance_id, sandbox_id) = match &self.name {
            ActorName::Instance(id) => (Some(*id), id.sandbox_id()),
            ActorName::Legacy(user) => {
                if *user != p.user_id {
                    return Ok(Err(InstanceError::Invalid(format!(
                        "the legacy instance of user {:?} cannot be provisioned for user {:?}",
                        user.as_str(),
                        p.user_id.as_str()
                    ))));
                }
                if p.org_id.is_some() {
                    return Ok(Err(InstanceError::Invalid(
                        "organisation instances need an instance id; legacy instances are personal"
                            .to_owned(),
                    )));
                }
                (None, user.legacy_sandbox_id())
            }
        };
        let existing = match self.state(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(state) = existing {
            if state.user_id.as_ref() != Some(&p.user_id) {
                return Ok(Err(InstanceError::WrongUser));
            }
            if state.org_id != p.org_id && p.org_id.is_some() {
                return Ok(Err(InstanceError::Conflict(format!(
                    "the instance belongs to organisation {:?}, not {:?}",
                    state.org_id.map(|o| o.to_string()),
                    p.org_id.map(|o| o.to_string())
                ))));
            }
            if state.status == Some(Status::Destroying) {
                return Ok(Err(being_destroyed()));
            }
            if let Err(e) = self.apply_patch(ctx, &patch)? {
                return Ok(Err(e));
            }
            return Ok(Ok(Provisioned {
                sandbox_id,
                instance_id,
                created: false,
            }));
        }
        // New: the registry row first, so that a lost actor can always be restored.
        let user = p.user_id.clone();
        let (org, name) = (p.org_id, self.name.clone());
        let row = self
            .services
            .registry(move |r| async move {
                match name {
                    ActorName::Instance(id) => {
                        r.create_instance(&NewInstance::instance_keyed(id, user, org))
                            .await
                    }
                    ActorName::Legacy(_) => {
                        let sandbox = user.legacy_sandbox_id();
                        match r.get_by_sandbox(&sandbox).await? {
                            Some(row) if row.is_active() && row.user_id == user => Ok(row),
                            _ => {
                                r.create_instance(&NewInstance {
                                    id: burrow_identity::InstanceId::new_random(),
                                    user_id: user,
                                    sandbox_id: sandbox,
                                    org_id: None,
                                    name: None,
                                })
                                .await
                            }
                        }
                    }
                }
            })
            .await;
        let row = match row {
            Ok(row) => row,
            Err(e) => return Ok(Err(registry_error(e))),
        };
        if !row.is_active() {
            return Ok(Err(InstanceError::Conflict(format!(
                "instance {} was destroyed; instance ids are not reused",
                row.id
            ))));
        }
        let mut state = InstanceState::fresh();
        state.user_id = Some(p.user_id);
        state.sandbox_id = Some(sandbox_id.clone());
        state.org_id = p.org_id;
        state.status = Some(Status::Provisioned);
        state.provisioned_at = Some(now_ms());
        state
            .create(ctx.storage())
            .map_err(crate::actor::state_abort)?;
        ctx.storage().delete(RESTORE_PENDING_KEY)?;
        self.cached = Some(Some(state));
        if let Err(e) = self.apply_patch(ctx, &patch)? {
            return Ok(Err(e));
        }
        self.schedule(ctx, Status::Provisioned)?;
        if let Err(e) = self.begin_start(ctx, false, None).await? {
            // The instance exists; its start failed and is recorded. Provisioning succeeded.
            tracing::warn!(actor = %self.name, error = %e, "the first start did not begin");
        }
        Ok(Ok(Provisioned {
            sandbox_id,
            instance_id,
            created: true,
        }))
    }

    pub(crate) async fn start(
        &mut self,
        ctx: &mut Context<Self>,
        skip_cooldown: bool,
    ) -> Outcome<bool> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        match state.status {
            Some(Status::Destroying) => return Ok(Err(being_destroyed())),
            Some(Status::Restoring) => {
                return Ok(Err(InstanceError::Conflict(
                    "the instance is being restored".into(),
                )));
            }
            Some(Status::Starting | Status::Restarting) if self.in_flight.is_some() => {
                return Ok(Ok(false));
            }
            Some(Status::Running) => {
                if let Some(id) = state.machine_id.clone() {
                    let healthy = self
                        .services
                        .provider(
                            self.services.lifecycle.provider_timeout,
                            move |p| async move { p.healthy(&id).await },
                        )
                        .await;
                    if healthy == Ok(true) {
                        return Ok(Ok(false));
                    }
                }
            }
            _ => {}
        }
        self.begin_start(ctx, skip_cooldown, None).await
    }

    /// Records a start (or, with `image_tag`… a restart) and hands the slow part to
    /// background work. Answers whether it began.
    async fn begin_start(
        &mut self,
        ctx: &mut Context<Self>,
        skip_cooldown: bool,
        restart: Option<Option<String>>,
    ) -> Outcome<bool> {
        let state = self
            .current()
            .cloned()
            .expect("a start needs a loaded state");
        let image_tag = match &restart {
            Some(Some(tag)) => Some(tag.clone()),
            _ => state.tracked_image_tag.clone(),
        };
        let env = match self.environment(&state, image_tag.as_deref()) {
            Ok(env) => env,
            Err(e) => return Ok(Err(e)),
        };
        let now = now_ms();
        let cooldown = self.services.lifecycle.recovery_cooldown.as_millis() as i64;
        // Decided once per start, so the cooldown is charged at most once per start.
        let recover = state.machine_id.is_none()
            && (skip_cooldown
                || state
                    .last_metadata_recovery_at
                    .is_none_or(|at| now - at >= cooldown));
        self.attempt += 1;
        let attempt = self.attempt;
        let mut update = Update::default().health_check_fail_count(0);
        if recover {
            update = update.last_metadata_recovery_at(Some(now));
        }
        let status = if let Some(tag) = &restart {
            update = update
                .status(Some(Status::Restarting))
                .restarting_at(Some(now))
                .last_restart_error(None);
            if let Some(tag) = tag {
                update = update.tracked_image_tag(Some(tag.clone()));
            }
            Status::Restarting
        } else {
            update = update
                .status(Some(Status::Starting))
                .starting_at(Some(now))
                .last_start_error(None);
            Status::Starting
        };
        self.update(ctx, update)?;
        self.schedule(ctx, status)?;
        // The status is durable before anything outside changes.
        ctx.flush().await?;
        let plan = StartPlan {
            attempt,
            machine_id: state.machine_id.clone(),
            labels: labels(&state),
            env,
            recover,
            restart: restart.is_some(),
        };
        self.in_flight = Some(attempt);
        let services = self.services.clone();
        ctx.spawn_background(async move {
            let result = find_or_create(
                &services,
                plan.machine_id,
                plan.labels,
                plan.env,
                plan.recover,
                plan.restart,
            )
            .await;
            Request::Internal(Internal(Report::Bound {
                attempt: plan.attempt,
                result,
            }))
        });
        Ok(Ok(true))
    }

    pub(crate) async fn stop(&mut self, ctx: &mut Context<Self>) -> Outcome<()> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if matches!(state.status, Some(Status::Destroying | Status::Restoring)) {
            return Ok(Err(being_destroyed()));
        }
        // Whatever start is under way is now stale.
        self.attempt += 1;
        self.in_flight = None;
        let mut update = Update::default()
            .status(Some(Status::Stopped))
            .last_stopped_at(Some(now_ms()))
            .starting_at(None)
            .restarting_at(None);
        if let Some(id) = state.machine_id.clone() {
            let stopped = self
                .services
                .provider(
                    self.services.lifecycle.provider_timeout,
                    move |p| async move { p.stop(&id).await },
                )
                .await;
            match stopped {
                Ok(()) => {}
                // Gone: the next start recovers or creates a machine.
                Err(crate::provider::ProviderError::NotFound(_)) => {
                    update = update.machine_id(None);
                }
                Err(e) => return Ok(Err(InstanceError::Provider(e.to_string()))),
            }
        }
        self.update(ctx, update)?;
        self.schedule(ctx, Status::Stopped)?;
        Ok(Ok(()))
    }

    pub(crate) async fn restart(
        &mut self,
        ctx: &mut Context<Self>,
        image_tag: Option<String>,
    ) -> Outcome<Result<(), String>> {
        if let Some(tag) = &image_tag
            && (tag.is_empty()
                || tag.len() > 128
                || tag.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Ok(Err(InstanceError::Invalid(format!(
                "image tag {tag:?} must be 1 to 128 characters without spaces or control characters"
            ))));
        }
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let refusal = match state.status {
            Some(Status::Destroying) => Some("the instance is being destroyed"),
            Some(Status::Restoring) => Some("the instance is being restored"),
            Some(Status::Starting | Status::Restarting) if self.in_flight.is_some() => {
                Some("a start or restart is already in progress")
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            return Ok(Ok(Err(refusal.to_owned())));
        }
        match self.begin_start(ctx, false, Some(image_tag)).await? {
            Ok(_) => Ok(Ok(Ok(()))),
            Err(e) => Ok(Ok(Err(e.to_string()))),
        }
    }

    pub(crate) async fn destroy(
        &mut self,
        ctx: &mut Context<Self>,
        mark_registry: bool,
    ) -> Outcome<Destroyed> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let (user_id, sandbox_id) = identity(&state);
        self.attempt += 1;
        self.in_flight = None;
        if state.status != Some(Status::Destroying) {
            // Phase one: record what must go, durably, before deleting anything.
            self.update(
                ctx,
                Update::default()
                    .status(Some(Status::Destroying))
                    .pending_destroy_machine_id(state.machine_id.clone())
                    .pending_destroy_volume_id(state.volume_id.clone())
                    .pending_registry_mark_on_finalize(
                        state.pending_registry_mark_on_finalize || mark_registry,
                    ),
            )?;
            self.schedule(ctx, Status::Destroying)?;
            ctx.flush().await?;
        } else if mark_registry && !state.pending_registry_mark_on_finalize {
            self.update(
                ctx,
                Update::default().pending_registry_mark_on_finalize(true),
            )?;
        }
        let finalized = self.destroy_step(ctx).await?;
        Ok(Ok(Destroyed {
            finalized,
            user_id,
            sandbox_id,
        }))
    }

    /// Phase two: delete what is recorded; finalise when all of it is gone. Returns whether
    /// the instance is finalised. Failures are recorded and retried by the reconcile alarm.
    async fn destroy_step(&mut self, ctx: &mut Context<Self>) -> Result<bool, Abort> {
        let timeout = self.services.lifecycle.provider_timeout;
        // Each round deletes what is recorded, then looks for machines labelled with this
        // instance that were never recorded (a start interrupted before it could report its
        // machine) and records the next one. Bounded, in case the provider keeps making more.
        for _ in 0..16 {
            let state = self
                .current()
                .cloned()
                .expect("destroying a loaded instance");
            if let Some(id) = state.pending_destroy_machine_id.clone() {
                let deleted = self
                    .services
                    .provider(timeout, move |p| async move { p.delete_machine(&id).await })
                    .await;
                match deleted {
                    Ok(()) => self.update(
                        ctx,
                        Update::default()
                            .pending_destroy_machine_id(None)
                            .machine_id(None),
                    )?,
                    Err(e) => return self.destroy_failed(ctx, "delete machine", e.to_string()),
                }
            }
            if let Some(id) = state.pending_destroy_volume_id.clone() {
                let deleted = self
                    .services
                    .provider(timeout, move |p| async move { p.delete_volume(&id).await })
                    .await;
                match deleted {
                    Ok(()) => self.update(
                        ctx,
                        Update::default()
                            .pending_destroy_volume_id(None)
                            .volume_id(None),
                    )?,
                    Err(e) => return self.destroy_failed(ctx, "delete volume", e.to_string()),
                }
            }
            let (user, sandbox) = identity(&state);
            let left = self
                .services
                .provider(
                    timeout,
                    move |p| async move { p.list(&user, &sandbox).await },
                )
                .await;
            match left {
                Ok(machines) => match machines.into_iter().next() {
                    Some(m) => self.update(
                        ctx,
                        Update::default()
                            .pending_destroy_machine_id(Some(m.id))
                            .pending_destroy_volume_id(Some(m.volume_id)),
                    )?,
                    None => break,
                },
                Err(e) => return self.destroy_failed(ctx, "list machines", e.to_string()),
            }
        }
        let state = self
            .current()
            .cloned()
            .expect("destroying a loaded instance");
        if state.pending_destroy_machine_id.is_some() {
            return self.destroy_failed(
                ctx,
                "delete machines",
                "machines labelled with this instance keep appearing".to_owned(),
            );
        }
        if state.pending_registry_mark_on_finalize {
            let (name, (user, sandbox)) = (self.name.clone(), identity(&state));
            let marked = self
                .services
                .registry(move |r| async move {
                    let id = match name {
                        ActorName::Instance(id) => Some(id),
                        ActorName::Legacy(_) => r
                            .get_by_sandbox(&sandbox)
                            .await?
                            .filter(|row| row.is_active() && row.user_id == user)
                            .map(|row| row.id),
                    };
                    match id {
                        Some(id) => r.mark_destroyed(id).await.map(drop),
                        None => Ok(()),
                    }
                })
                .await;
            if let Err(e) = marked {
                return self.destroy_failed(ctx, "mark registry row destroyed", e.to_string());
            }
        }
        // Finalise: the actor's data and alarms go; the instance is no longer provisioned.
        let storage = ctx.storage();
        for (key, _) in storage.list("")? {
            storage.delete(&key)?;
        }
        for (alarm, _) in ctx.alarms()? {
            ctx.delete_alarm(&alarm)?;
        }
        self.cached = Some(None);
        tracing::info!(actor = %self.name, "instance destroyed");
        Ok(true)
    }

    fn destroy_failed(
        &mut self,
        ctx: &mut Context<Self>,
        operation: &str,
        message: String,
    ) -> Result<bool, Abort> {
        tracing::warn!(actor = %self.name, operation, %message, "destroy step failed; retrying by alarm");
        self.update(
            ctx,
            Update::default().last_destroy_error(Some(DestroyError {
                operation: operation.to_owned(),
                status_code: None,
                message,
                at: now_ms(),
            })),
        )?;
        Ok(false)
    }

    pub(crate) async fn status(&mut self, ctx: &mut Context<Self>) -> Outcome<StatusView> {
        Ok(self.provisioned(ctx).await?.map(|s| s.status_view()))
    }

    pub(crate) async fn debug_status(&mut self, ctx: &mut Context<Self>) -> Outcome<DebugStatus> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let next_alarm_ms = ctx.alarms()?.iter().map(|(_, due)| *due).min();
        Ok(Ok(DebugStatus {
            view: state.debug_view(),
            next_alarm_ms,
        }))
    }

    pub(crate) async fn config(&mut self, ctx: &mut Context<Self>) -> Outcome<ConfigView> {
        Ok(self.provisioned(ctx).await?.map(|s| config_view(&s)))
    }

    pub(crate) async fn patch_config(
        &mut self,
        ctx: &mut Context<Self>,
        patch: ConfigPatch,
    ) -> Outcome<ConfigView> {
        if let Err(e) = check_patch(&patch) {
            return Ok(Err(e));
        }
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if state.status == Some(Status::Destroying) {
            return Ok(Err(being_destroyed()));
        }
        if let Err(e) = self.apply_patch(ctx, &patch)? {
            return Ok(Err(e));
        }
        Ok(Ok(config_view(self.current().expect("just updated"))))
    }

    pub(crate) async fn route(&mut self, ctx: &mut Context<Self>) -> Outcome<Route> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let (user_id, sandbox_id) = identity(&state);
        let status = state.status.unwrap_or(Status::Provisioned);
        let mut address = None;
        if status == Status::Running
            && let Some(id) = state.machine_id.clone()
        {
            let machine = self
                .services
                .provider(
                    self.services.lifecycle.provider_timeout,
                    move |p| async move { p.get(&id).await },
                )
                .await;
            match machine {
                Ok(Some(m)) => address = m.address,
                Ok(None) => {}
                Err(e) => return Ok(Err(InstanceError::Provider(e.to_string()))),
            }
        }
        Ok(Ok(Route {
            user_id,
            org_id: state.org_id,
            sandbox_id,
            status,
            address,
        }))
    }

    /// Handles a report of background work.
    pub(crate) async fn report(
        &mut self,
        ctx: &mut Context<Self>,
        report: Report,
    ) -> Result<(), Abort> {
        let state = match self.state(ctx).await? {
            Ok(state) => state,
            Err(e) => {
                // Not knowing the state, act on nothing (a machine is never deleted on doubt);
                // reconcile converges later.
                tracing::warn!(actor = %self.name, error = %e, "dropping a report: the state is unavailable");
                return Ok(());
            }
        };
        match report {
            Report::Cleaned => Ok(()),
            Report::Bound { attempt, result } => self.bound(ctx, state, attempt, result).await,
            Report::Healthy { attempt, result } => {
                let current = attempt == self.attempt
                    && matches!(
                        state.as_ref().and_then(|s| s.status),
                        Some(Status::Starting | Status::Restarting)
                    );
                if !current {
                    return Ok(());
                }
                self.in_flight = None;
                let state = state.expect("checked above");
                let restarting = state.status == Some(Status::Restarting);
                match result {
                    Ok(()) => {
                        self.update(
                            ctx,
                            Update::default()
                                .status(Some(Status::Running))
                                .last_started_at(Some(now_ms()))
                                .starting_at(None)
                                .restarting_at(None)
                                .health_check_fail_count(0),
                        )?;
                        self.schedule(ctx, Status::Running)?;
                    }
                    Err(message) => {
                        self.start_failed(ctx, restarting, message)?;
                        if let Some(id) = state.machine_id {
                            self.clean_up(ctx, Cleanup::Stop(id));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn bound(
        &mut self,
        ctx: &mut Context<Self>,
        state: Option<InstanceState>,
        attempt: u64,
        result: Result<Machine, String>,
    ) -> Result<(), Abort> {
        let status = state.as_ref().and_then(|s| s.status);
        let current = attempt == self.attempt
            && matches!(status, Some(Status::Starting | Status::Restarting));
        let machine = match result {
            Ok(m) => m,
            Err(message) => {
                if current {
                    self.in_flight = None;
                    self.start_failed(ctx, status == Some(Status::Restarting), message)?;
                }
                return Ok(());
            }
        };
        let Some(state) = state else {
            // Finalised meanwhile: nobody wants this machine.
            self.clean_up(ctx, Cleanup::Delete(machine));
            return Ok(());
        };
        if current {
            self.update(
                ctx,
                Update::default()
                    .machine_id(Some(machine.id.clone()))
                    .volume_id(Some(machine.volume_id.clone()))
                    .provider_app_name(Some("local".to_owned())),
            )?;
            // The machine id is durable before the wait.
            ctx.flush().await?;
            let (services, id) = (self.services.clone(), machine.id.clone());
            ctx.spawn_background(async move {
                let result = wait_healthy(&services, id).await;
                Request::Internal(Internal(Report::Healthy { attempt, result }))
            });
            return Ok(());
        }
        // A stale report: a stop, destroy or newer start came first.
        match status {
            Some(Status::Destroying)
                if state.pending_destroy_machine_id.as_deref() == Some(&machine.id) => {}
            Some(Status::Destroying) => self.clean_up(ctx, Cleanup::Delete(machine)),
            _ if state.machine_id.is_none() || state.machine_id.as_deref() == Some(&machine.id) => {
                // Keep it bound (never orphan a machine); stop it unless a start wants it.
                self.update(
                    ctx,
                    Update::default()
                        .machine_id(Some(machine.id.clone()))
                        .volume_id(Some(machine.volume_id.clone())),
                )?;
                if !matches!(
                    status,
                    Some(Status::Starting | Status::Restarting | Status::Running)
                ) {
                    self.clean_up(ctx, Cleanup::Stop(machine.id));
                }
            }
            // Another machine is bound: this one is a duplicate.
            _ => self.clean_up(ctx, Cleanup::Delete(machine)),
        }
        Ok(())
    }

    fn start_failed(
        &mut self,
        ctx: &mut Context<Self>,
        restarting: bool,
        message: String,
    ) -> Result<(), Abort> {
        tracing::warn!(actor = %self.name, %message, restarting, "start failed");
        let note = Some(ErrorNote {
            message,
            at: now_ms(),
        });
        let mut update = Update::default()
            .status(Some(Status::Stopped))
            .last_stopped_at(Some(now_ms()))
            .starting_at(None)
            .restarting_at(None);
        update = if restarting {
            update.last_restart_error(note)
        } else {
            update.last_start_error(note)
        };
        self.update(ctx, update)?;
        self.schedule(ctx, Status::Stopped)
    }

    fn clean_up(&self, ctx: &mut Context<Self>, cleanup: Cleanup) {
        let services = self.services.clone();
        let timeout = services.lifecycle.provider_timeout;
        tracing::info!(actor = %self.name, ?cleanup, "cleaning up a machine nobody wants");
        ctx.spawn_background(async move {
            let result = match cleanup {
                Cleanup::Stop(id) => {
                    services
                        .provider(timeout, move |p| async move { p.stop(&id).await })
                        .await
                }
                Cleanup::Delete(m) => {
                    let (id, volume) = (m.id, m.volume_id);
                    services
                        .provider(timeout, move |p| async move {
                            p.delete_machine(&id).await?;
                            p.delete_volume(&volume).await
                        })
                        .await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "cleaning up a machine failed");
            }
            Request::Internal(Internal(Report::Cleaned))
        });
    }

    /// The reconcile alarm: compare with the provider and converge, then reschedule.
    pub(crate) async fn reconcile(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        let state = match self.state(ctx).await? {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            // The registry is down: let the alarm retry with backoff.
            Err(e) => {
                return Err(Abort::new(format!(
                    "reconcile could not load the instance: {e}"
                )));
            }
        };
        let Some(status) = state.status else {
            return Ok(());
        };
        let lifecycle = self.services.lifecycle.clone();
        let now = now_ms();
        let timeout = lifecycle.provider_timeout;
        match status {
            Status::Running => {
                let healthy = match state.machine_id.clone() {
                    Some(id) => {
                        self.services
                            .provider(timeout, move |p| async move { p.healthy(&id).await })
                            .await
                    }
                    None => Ok(false),
                };
                // A provider that cannot answer says nothing about the sandbox.
                if let Ok(healthy) = healthy {
                    let fails = if healthy {
                        0
                    } else {
                        state.health_check_fail_count + 1
                    };
                    if fails >= lifecycle.unhealthy_checks {
                        tracing::warn!(actor = %self.name, fails, "sandbox gone or dead; marking stopped");
                        self.update(
                            ctx,
                            Update::default()
                                .status(Some(Status::Stopped))
                                .last_stopped_at(Some(now))
                                .health_check_fail_count(fails),
                        )?;
                        if let Some(id) = state.machine_id.clone() {
                            self.clean_up(ctx, Cleanup::Stop(id));
                        }
                    } else if fails != state.health_check_fail_count {
                        self.update(ctx, Update::default().health_check_fail_count(fails))?;
                    }
                }
            }
            Status::Starting | Status::Restarting => {
                let since = if status == Status::Starting {
                    state.starting_at
                } else {
                    state.restarting_at
                };
                let overdue = since
                    .is_none_or(|at| now - at >= lifecycle.transient_timeout.as_millis() as i64);
                if overdue {
                    self.attempt += 1;
                    self.in_flight = None;
                    self.start_failed(
                        ctx,
                        status == Status::Restarting,
                        format!(
                            "did not become healthy within {:?}",
                            lifecycle.transient_timeout
                        ),
                    )?;
                    if let Some(id) = state.machine_id.clone() {
                        self.clean_up(ctx, Cleanup::Stop(id));
                    }
                }
            }
            Status::Destroying => {
                if self.destroy_step(ctx).await? {
                    return Ok(());
                }
            }
            Status::Provisioned => {
                // A restored instance may have run for months before its file was lost: only
                // an instance provisioned here and abandoned destroys itself.
                let never_started = state.last_started_at.is_none()
                    && state.restored_at.is_none()
                    && self.in_flight.is_none();
                let expired = state
                    .provisioned_at
                    .is_some_and(|at| now - at >= lifecycle.never_started_ttl.as_millis() as i64);
                if never_started && expired {
                    tracing::info!(actor = %self.name, "provisioned and never started: destroying itself");
                    if let Ok(d) = self.destroy(ctx, true).await?
                        && d.finalized
                    {
                        return Ok(());
                    }
                    return Ok(());
                }
            }
            Status::Stopped => {
                let machine = match state.machine_id.clone() {
                    Some(id) => self
                        .services
                        .provider(timeout, move |p| async move { p.get(&id).await })
                        .await
                        .ok()
                        .flatten(),
                    // A start interrupted before it recorded its machine may have left one
                    // running: adopt it (and stop it) rather than leave it orphaned.
                    None => {
                        let (user, sandbox) = identity(&state);
                        let listed = self
                            .services
                            .provider(
                                timeout,
                                move |p| async move { p.list(&user, &sandbox).await },
                            )
                            .await;
                        let found = listed.ok().and_then(|ms| best_machine(&ms).cloned());
                        if let Some(m) = &found {
                            tracing::info!(actor = %self.name, machine = %m.id, "adopting an unrecorded machine");
                            self.update(
                                ctx,
                                Update::default()
                                    .machine_id(Some(m.id.clone()))
                                    .volume_id(Some(m.volume_id.clone())),
                            )?;
                        }
                        found
                    }
                };
                if let Some(m) = machine
                    && matches!(m.state, MachineState::Running | MachineState::Starting)
                {
                    tracing::info!(actor = %self.name, "stopped instance with a running sandbox: stopping it");
                    self.clean_up(ctx, Cleanup::Stop(m.id));
                }
            }
            Status::Restoring => {}
        }
        let status = self.current().and_then(|s| s.status);
        if let Some(status) = status
            && ctx
                .alarms()?
                .iter()
                .all(|(name, due)| name != RECONCILE_ALARM || *due <= now)
        {
            self.schedule(ctx, status)?;
        }
        Ok(())
    }

    /// The state, or "not provisioned".
    async fn provisioned(&mut self, ctx: &mut Context<Self>) -> Outcome<InstanceState> {
        Ok(match self.state(ctx).await? {
            Ok(Some(state)) if state.status.is_some() => Ok(state),
            Ok(_) => Err(InstanceError::NotProvisioned),
            Err(e) => Err(e),
        })
    }

    /// Applies a checked configuration patch. Secrets are sealed under the instance's data key.
    fn apply_patch(&mut self, ctx: &mut Context<Self>, patch: &ConfigPatch) -> Outcome<()> {
        let state = self.current().cloned().expect("patching a loaded instance");
        let sandbox = state
            .sandbox_id
            .clone()
            .expect("provisioned instances have a sandbox id");
        let mut env_vars = state.env_vars.clone();
        for (name, value) in &patch.env_vars {
            match value {
                Some(v) => env_vars.insert(name.clone(), v.clone()),
                None => env_vars.remove(name),
            };
        }
        let mut secrets = state.encrypted_secrets.clone();
        let data_key = self.data_key(&sandbox, &secrets);
        for (name, value) in &patch.secrets {
            match value {
                Some(v) => {
                    let envelope =
                        self.services
                            .server_key
                            .seal(&sandbox, name, v, data_key.as_ref());
                    secrets.insert(name.clone(), envelope)
                }
                None => secrets.remove(name),
            };
        }
        if env_vars.len() + secrets.len() > MAX_ENTRIES {
            return Ok(Err(InstanceError::Invalid(format!(
                "an instance holds at most {MAX_ENTRIES} env vars and secrets together; this would make {}",
                env_vars.len() + secrets.len()
            ))));
        }
        let mut update = Update::default();
        if env_vars != state.env_vars {
            update = update.env_vars(env_vars);
        }
        if secrets != state.encrypted_secrets {
            update = update.encrypted_secrets(secrets);
        }
        if !update.is_empty() {
            self.update(ctx, update)?;
        }
        Ok(Ok(()))
    }

    /// The instance's data key, from any envelope that opens under the server key.
    fn data_key(
        &self,
        sandbox: &SandboxId,
        secrets: &BTreeMap<String, SecretEnvelope>,
    ) -> Option<DataKey> {
        secrets.iter().find_map(|(name, envelope)| {
            self.services
                .server_key
                .data_key(sandbox, name, envelope)
                .ok()
        })
    }

    /// The sandbox's environment, secrets decrypted.
    fn environment(
        &self,
        state: &InstanceState,
        image_tag: Option<&str>,
    ) -> Result<BTreeMap<String, String>, InstanceError> {
        let sandbox = state
            .sandbox_id
            .clone()
            .expect("provisioned instances have a sandbox id");
        let mut secrets = BTreeMap::new();
        for (name, envelope) in &state.encrypted_secrets {
            let value = self
                .services
                .server_key
                .open(&sandbox, name, envelope)
                .map_err(|e| InstanceError::Conflict(format!("cannot start: {e}")))?;
            secrets.insert(name.clone(), value);
        }
        Ok(sandbox_environment(
            &state.env_vars,
            secrets,
            &sandbox,
            state.org_id,
            &self.services.gateway_secret,
            image_tag,
        ))
    }
}

/// A machine to stop or delete in the background.
#[derive(Debug)]
enum Cleanup {
    Stop(String),
    Delete(Machine),
}

/// Finds the instance's machine — bound, recovered by its labels, or new — and starts it.
async fn find_or_create<P: SandboxProvider>(
    services: &crate::services::Services<P>,
    machine_id: Option<String>,
    labels: Labels,
    env: BTreeMap<String, String>,
    recover: bool,
    restart: bool,
) -> Result<Machine, String> {
    let wait = services.lifecycle.health_wait;
    if let Some(id) = machine_id {
        let found = {
            let id = id.clone();
            services
                .provider(wait, move |p| async move { p.get(&id).await })
                .await
        };
        match found.map_err(|e| e.to_string())? {
            Some(m) if m.state != MachineState::Destroying => {
                let env = env.clone();
                return services
                    .provider(wait, move |p| async move {
                        if restart {
                            p.stop(&id).await?;
                        }
                        p.start(&id, env).await
                    })
                    .await
                    .map_err(|e| e.to_string());
            }
            _ => tracing::warn!(machine = %id, "the bound machine is gone"),
        }
    }
    if recover {
        let (user, sandbox) = (labels.user_id.clone(), labels.sandbox_id.clone());
        let machines = services
            .provider(wait, move |p| async move { p.list(&user, &sandbox).await })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(m) = best_machine(&machines) {
            tracing::info!(machine = %m.id, state = ?m.state, "metadata recovery re-binds a machine");
            let (id, env) = (m.id.clone(), env.clone());
            return services
                .provider(wait, move |p| async move {
                    if restart {
                        p.stop(&id).await?;
                    }
                    p.start(&id, env).await
                })
                .await
                .map_err(|e| e.to_string());
        }
    }
    services
        .provider(wait, move |p| async move {
            p.create(MachineSpec { labels, env }).await
        })
        .await
        .map_err(|e| e.to_string())
}

/// Probes the machine's health until it answers or the wait runs out.
async fn wait_healthy<P: SandboxProvider>(
    services: &crate::services::Services<P>,
    id: String,
) -> Result<(), String> {
    let lifecycle = &services.lifecycle;
    let deadline = Instant::now() + lifecycle.health_wait;
    loop {
        let probe = {
            let id = id.clone();
            services
                .provider(lifecycle.provider_timeout, move |p| async move {
                    p.healthy(&id).await
                })
                .await
        };
        if probe == Ok(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the sandbox did not answer its health check within {:?}",
                lifecycle.health_wait
            ));
        }
        tokio::time::sleep(lifecycle.health_poll.min(Duration::from_secs(5))).await;
    }
}

fn check_patch(patch: &ConfigPatch) -> Result<(), InstanceError> {
    for (kind, entries) in [("env var", &patch.env_vars), ("secret", &patch.secrets)] {
        for (name, value) in entries {
            check_name(kind, name).map_err(InstanceError::Invalid)?;
            if let Some(v) = value {
                check_value(kind, name, v).map_err(InstanceError::Invalid)?;
            }
        }
    }
    if let Some(name) = patch
        .env_vars
        .keys()
        .find(|n| patch.secrets.contains_key(*n))
    {
        return Err(InstanceError::Invalid(format!(
            "{name:?} is given both as an env var and as a secret"
        )));
    }
    Ok(())
}

fn being_destroyed() -> InstanceError {
    InstanceError::Conflict("the instance is being destroyed".to_owned())
}

fn identity(state: &InstanceState) -> (burrow_identity::UserId, SandboxId) {
    (
        state
            .user_id
            .clone()
            .expect("provisioned instances have a user"),
        state
            .sandbox_id
            .clone()
            .expect("provisioned instances have a sandbox id"),
    )
}

fn labels(state: &InstanceState) -> Labels {
    let (user_id, sandbox_id) = identity(state);
    Labels {
        user_id,
        sandbox_id,
        org_id: state.org_id,
    }
}

fn config_view(state: &InstanceState) -> ConfigView {
    ConfigView {
        env_vars: state.env_vars.clone(),
        secret_names: state.encrypted_secrets.keys().cloned().collect(),
    }
}
