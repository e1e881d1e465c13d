//! What callers may read: status, debug status, configuration, and where to proxy.

use super::*;

impl<P: SandboxProvider> InstanceActor<P> {
    pub(crate) async fn status(&mut self, ctx: &mut Context<Self>) -> Outcome<StatusView> {
        Ok(self.provisioned(ctx).await?.map(|s| s.status_view()))
    }

    pub(crate) async fn debug_status(&mut self, ctx: &mut Context<Self>) -> Outcome<DebugStatus> {
        let state = match self.provisioned(ctx).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let next_alarm_ms = ctx.alarms()?.iter().map(|(_, due)| epoch_ms(*due)).min();
        let withheld = state
            .env_vars
            .keys()
            .chain(state.encrypted_secrets.keys())
            .filter_map(|name| crate::env::refused(name).map(|why| (name.clone(), why)))
            .collect();
        Ok(Ok(DebugStatus {
            view: state.debug_view(),
            next_alarm_ms,
            withheld,
        }))
    }

    pub(crate) async fn config(&mut self, ctx: &mut Context<Self>) -> Outcome<ConfigView> {
        Ok(self.provisioned(ctx).await?.map(|s| config_view(&s)))
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
            let machine = self.services.provider().get(&id).await;
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
}
