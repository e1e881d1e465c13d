//! The reconcile alarm: compare with the provider and converge, then reschedule.

use super::*;

impl<P: SandboxProvider> InstanceActor<P> {
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
        match status {
            Status::Running => {
                let healthy = match state.machine_id.clone() {
                    Some(id) => self.services.provider().healthy(&id).await,
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
                    Some(id) => self.services.provider().get(&id).await.ok().flatten(),
                    // A start interrupted before it recorded its machine may have left one
                    // running: adopt it (and stop it) rather than leave it orphaned.
                    None => {
                        let (user, sandbox) = identity(&state);
                        let listed = self.services.provider().list(&user, &sandbox).await;
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
                .all(|(name, due)| name != RECONCILE_ALARM || epoch_ms(*due) <= now)
        {
            self.schedule(ctx, status)?;
        }
        Ok(())
    }
}
