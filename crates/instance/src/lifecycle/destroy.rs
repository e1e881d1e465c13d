//! Two-phase destroy: record what must go, delete it, finalise only when all of it is gone.

use super::*;

impl<P: SandboxProvider> InstanceActor<P> {
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
    pub(crate) async fn destroy_step(&mut self, ctx: &mut Context<Self>) -> Result<bool, Abort> {
        // Each round deletes what is recorded, then looks for machines labelled with this
        // instance that were never recorded (a start interrupted before it could report its
        // machine) and records the next one. Bounded, in case the provider keeps making more.
        for _ in 0..16 {
            let state = self
                .current()
                .cloned()
                .expect("destroying a loaded instance");
            if let Some(id) = state.pending_destroy_machine_id.clone() {
                let deleted = self.services.provider().delete_machine(&id).await;
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
                let deleted = self.services.provider().delete_volume(&id).await;
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
            let left = self.services.provider().list(&user, &sandbox).await;
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
        for (key, _) in storage.list::<burrow_runtime::rusqlite::types::Value>("")? {
            storage.delete(&key)?;
        }
        for (alarm, _) in ctx.alarms()? {
            ctx.delete_alarm(&alarm)?;
        }
        // And then the actor itself, once this turn commits: its file, catalog record and, in
        // replicated mode, its log, so that nothing of it can come back. (The state is
        // emptied above as well, in case the deletion fails after the commit.)
        ctx.delete_after_commit();
        self.set_known(Known::NotProvisioned);
        tracing::info!(actor = %self.name, "instance destroyed");
        Ok(true)
    }

    pub(crate) fn destroy_failed(
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
}
