//! Start, stop and restart, and the reports of the background work a start leaves behind.

use super::*;

/// What the background part of a start must do.
pub(super) struct StartPlan {
    attempt: u64,
    machine_id: Option<MachineId>,
    labels: Labels,
    env: BTreeMap<String, String>,
    /// Look for an existing sandbox by its labels before creating one.
    recover: bool,
    /// Stop the machine first (a restart).
    restart: bool,
}

impl<P: SandboxProvider> InstanceActor<P> {
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
                    let healthy = self.services.provider().healthy(&id).await;
                    if healthy == Ok(true) {
                        return Ok(Ok(false));
                    }
                }
            }
            _ => {}
        }
        self.begin_start(ctx, skip_cooldown, StartKind::Start).await
    }

    /// Records a start (or a restart) and hands the slow part to background work. Answers
    /// whether it began.
    pub(crate) async fn begin_start(
        &mut self,
        ctx: &mut Context<Self>,
        skip_cooldown: bool,
        kind: StartKind,
    ) -> Outcome<bool> {
        let state = self
            .current()
            .cloned()
            .expect("a start needs a loaded state");
        let image_tag = match &kind {
            StartKind::Restart {
                image_tag: Some(tag),
            } => Some(tag.clone()),
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
        let status = match &kind {
            StartKind::Restart { image_tag } => {
                update = update
                    .status(Some(Status::Restarting))
                    .restarting_at(Some(now))
                    .last_restart_error(None);
                if let Some(tag) = image_tag {
                    update = update.tracked_image_tag(Some(tag.clone()));
                }
                Status::Restarting
            }
            StartKind::Start => {
                update = update
                    .status(Some(Status::Starting))
                    .starting_at(Some(now))
                    .last_start_error(None);
                Status::Starting
            }
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
            restart: matches!(kind, StartKind::Restart { .. }),
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
            Report::Bound {
                attempt: plan.attempt,
                result,
            }
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
            let stopped = self.services.provider().stop(&id).await;
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
    ) -> Outcome<Restarted> {
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
            return Ok(Ok(Restarted::Refused(refusal.to_owned())));
        }
        match self
            .begin_start(ctx, false, StartKind::Restart { image_tag })
            .await?
        {
            Ok(_) => Ok(Ok(Restarted::Began)),
            Err(e) => Ok(Ok(Restarted::Refused(e.to_string()))),
        }
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
                    Err(unhealthy) => {
                        self.start_failed(ctx, restarting, unhealthy.to_string())?;
                        if let Some(id) = state.machine_id {
                            self.clean_up(ctx, Cleanup::Stop(id));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    pub(crate) async fn bound(
        &mut self,
        ctx: &mut Context<Self>,
        state: Option<InstanceState>,
        attempt: u64,
        result: Result<Machine, ProviderError>,
    ) -> Result<(), Abort> {
        let status = state.as_ref().and_then(|s| s.status);
        let current = attempt == self.attempt
            && matches!(status, Some(Status::Starting | Status::Restarting));
        let machine = match result {
            Ok(m) => m,
            Err(e) => {
                if current {
                    self.in_flight = None;
                    self.start_failed(ctx, status == Some(Status::Restarting), e.to_string())?;
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
                Report::Healthy { attempt, result }
            });
            return Ok(());
        }
        // A stale report: a stop, destroy or newer start came first.
        match status {
            Some(Status::Destroying)
                if state.pending_destroy_machine_id.as_ref() == Some(&machine.id) => {}
            Some(Status::Destroying) => self.clean_up(ctx, Cleanup::Delete(machine)),
            _ if state.machine_id.is_none() || state.machine_id.as_ref() == Some(&machine.id) => {
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

    pub(crate) fn start_failed(
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

    pub(crate) fn clean_up(&self, ctx: &mut Context<Self>, cleanup: Cleanup) {
        let provider = self.services.provider();
        tracing::info!(actor = %self.name, ?cleanup, "cleaning up a machine nobody wants");
        ctx.spawn_background(async move {
            let result = match cleanup {
                Cleanup::Stop(id) => provider.stop(&id).await,
                Cleanup::Delete(m) => match provider.delete_machine(&m.id).await {
                    Ok(()) => provider.delete_volume(&m.volume_id).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "cleaning up a machine failed");
            }
            Report::Cleaned
        });
    }
}

/// What [`begin_start`](InstanceActor::begin_start) begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartKind {
    /// A start of a stopped (or never started) sandbox.
    Start,
    /// A restart, recording `image_tag` as the image to run if given.
    Restart { image_tag: Option<String> },
}

/// A machine to stop or delete in the background.
#[derive(Debug)]
pub(crate) enum Cleanup {
    Stop(MachineId),
    Delete(Machine),
}

/// Finds the instance's machine — bound, recovered by its labels, or new — and starts it.
pub(super) async fn find_or_create<P: SandboxProvider>(
    services: &crate::services::Services<P>,
    machine_id: Option<MachineId>,
    labels: Labels,
    env: BTreeMap<String, String>,
    recover: bool,
    restart: bool,
) -> Result<Machine, ProviderError> {
    let provider = services.provider_within(services.lifecycle.health_wait);
    if let Some(id) = machine_id {
        match provider.get(&id).await? {
            Some(m) if m.state != MachineState::Destroying => {
                return provider.start(&id, env, restart).await;
            }
            _ => tracing::warn!(machine = %id, "the bound machine is gone"),
        }
    }
    if recover {
        let machines = provider.list(&labels.user_id, &labels.sandbox_id).await?;
        if let Some(m) = best_machine(&machines) {
            tracing::info!(machine = %m.id, state = ?m.state, "metadata recovery re-binds a machine");
            return provider.start(&m.id, env, restart).await;
        }
    }
    provider.create(MachineSpec { labels, env }).await
}

/// Probes the machine's health until it answers or the wait runs out.
pub(super) async fn wait_healthy<P: SandboxProvider>(
    services: &crate::services::Services<P>,
    id: MachineId,
) -> Result<(), Unhealthy> {
    let lifecycle = &services.lifecycle;
    let deadline = Instant::now() + lifecycle.health_wait;
    loop {
        let probe = services.provider().healthy(&id).await;
        if probe == Ok(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Unhealthy {
                waited: lifecycle.health_wait,
            });
        }
        tokio::time::sleep(lifecycle.health_poll.min(Duration::from_secs(5))).await;
    }
}
