//! The lifecycle: provision, start, stop, restart, destroy, reconcile — and the reports of the
//! background work a start leaves behind.
//!
//! Two rules hold throughout. Side effects follow persisted intent: a turn records the status
//! (and, for a destroy, what must be deleted) and flushes before it touches the provider, and a
//! machine's id is persisted as soon as it exists. And background work never decides: it
//! reports, and the turn that handles the report re-reads the status — so a stop or destroy
//! that arrived meanwhile wins, and a report from an older start is recognised as stale.

mod config;
mod destroy;
mod reads;
mod reconcile;
mod start;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burrow_identity::{ActorName, MachineId, SandboxId};
use burrow_restore::{NewInstance, Registry as _};
use burrow_runtime::{Abort, Context};
use burrow_state::{
    DestroyError, ErrorNote, InstanceState, SecretEnvelope, Status, StatusView, Update, epoch_ms,
    now_ms,
};

use crate::actor::{
    InstanceActor, Known, Outcome, RECONCILE_ALARM, RESTORE_PENDING_KEY, registry_error,
};
use crate::env::{
    MAX_CONFIG_BYTES, MAX_ENTRIES, check_name, check_value, environment_bytes, sandbox_environment,
};
use crate::protocol::{
    ConfigPatch, ConfigView, DebugStatus, Destroyed, InstanceError, Provision, Provisioned, Report,
    Restarted, Route, Unhealthy,
};
use crate::provider::{
    Labels, Machine, MachineSpec, MachineState, ProviderError, SandboxProvider, best_machine,
};
use crate::secrets::DataKey;

use self::config::config_view;
use self::start::{Cleanup, StartKind};

impl<P: SandboxProvider> InstanceActor<P> {
    /// The state, or "not provisioned".
    pub(crate) async fn provisioned(&mut self, ctx: &mut Context<Self>) -> Outcome<InstanceState> {
        Ok(match self.state(ctx).await? {
            Ok(Some(state)) if state.status.is_some() => Ok(state),
            Ok(_) => Err(InstanceError::NotProvisioned),
            Err(e) => Err(e),
        })
    }
}

pub(super) fn being_destroyed() -> InstanceError {
    InstanceError::Conflict("the instance is being destroyed".to_owned())
}

pub(super) fn identity(state: &InstanceState) -> (burrow_identity::UserId, SandboxId) {
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

pub(super) fn labels(state: &InstanceState) -> Labels {
    let (user_id, sandbox_id) = identity(state);
    Labels {
        user_id,
        sandbox_id,
        org_id: state.org_id,
    }
}
