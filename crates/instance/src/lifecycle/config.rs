//! Provisioning and configuration: the identity and registry row of a new instance, env vars
//! and secrets (sealed on the way in, decrypted only into a sandbox's environment).

use super::*;

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
        self.set_known(Known::Provisioned(Box::new(state)));
        if let Err(e) = self.apply_patch(ctx, &patch)? {
            return Ok(Err(e));
        }
        self.schedule(ctx, Status::Provisioned)?;
        if let Err(e) = self.begin_start(ctx, false, StartKind::Start).await? {
            // The instance exists; its start failed and is recorded. Provisioning succeeded.
            tracing::warn!(actor = %self.name, error = %e, "the first start did not begin");
        }
        Ok(Ok(Provisioned {
            sandbox_id,
            instance_id,
            created: true,
        }))
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

    /// Applies a checked configuration patch. Secrets are sealed under the instance's data key.
    pub(crate) fn apply_patch(
        &mut self,
        ctx: &mut Context<Self>,
        patch: &ConfigPatch,
    ) -> Outcome<()> {
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
        // One name cannot be both, even when set by two separate requests: the sandbox's
        // environment could hold only one of them.
        if let Some(name) = names_set(&patch.env_vars).find(|n| secrets.contains_key(*n)) {
            return Ok(Err(InstanceError::Invalid(format!(
                "{name:?} is already a secret; one name cannot be both an env var and a secret (remove the secret first)"
            ))));
        }
        if let Some(name) = names_set(&patch.secrets).find(|n| env_vars.contains_key(*n)) {
            return Ok(Err(InstanceError::Invalid(format!(
                "{name:?} is already an env var; one name cannot be both an env var and a secret (remove the env var first)"
            ))));
        }
        let (before, after) = (
            config_bytes(&state.env_vars, &state.encrypted_secrets),
            config_bytes(&env_vars, &secrets),
        );
        if after > MAX_CONFIG_BYTES && after > before {
            return Ok(Err(InstanceError::Invalid(format!(
                "the configuration would take {after} bytes of the sandbox's environment (each name and value plus two bytes); the limit is {MAX_CONFIG_BYTES}"
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
    pub(crate) fn data_key(
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
    pub(crate) fn environment(
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

pub(super) fn check_patch(patch: &ConfigPatch) -> Result<(), InstanceError> {
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

/// The names a patch sets (rather than removes).
fn names_set(patch: &BTreeMap<String, Option<String>>) -> impl Iterator<Item = &String> {
    patch
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(name, _)| name)
}

/// The bytes env vars and secrets take in a sandbox's environment.
fn config_bytes(
    env_vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, SecretEnvelope>,
) -> usize {
    let vars: usize = env_vars
        .iter()
        .map(|(n, v)| environment_bytes(n, v.len()))
        .sum();
    let sealed: usize = secrets
        .iter()
        .map(|(n, e)| environment_bytes(n, crate::secrets::sealed_len(e)))
        .sum();
    vars + sealed
}

pub(super) fn config_view(state: &InstanceState) -> ConfigView {
    ConfigView {
        env_vars: state.env_vars.clone(),
        secret_names: state.encrypted_secrets.keys().cloned().collect(),
    }
}
