//! One handler per message: each hands its message to the lifecycle operation that serves it.

use burrow_runtime::{Abort, Context, Handler};

use crate::actor::{InstanceActor, Outcome};
use crate::protocol::{
    ConfigPatch, ConfigView, DebugStatus, Destroy, Destroyed, GetConfig, GetDebugStatus, GetRoute,
    GetStatus, Provision, Provisioned, Report, Restart, Restarted, Route, Start, Stop,
};
use crate::provider::SandboxProvider;
use burrow_state::StatusView;

impl<P: SandboxProvider> Handler<Provision> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, p: Provision) -> Outcome<Provisioned> {
        self.provision(ctx, p).await
    }
}

impl<P: SandboxProvider> Handler<Start> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, s: Start) -> Outcome<bool> {
        self.start(ctx, s.skip_cooldown).await
    }
}

impl<P: SandboxProvider> Handler<Stop> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Stop) -> Outcome<()> {
        self.stop(ctx).await
    }
}

impl<P: SandboxProvider> Handler<Restart> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, r: Restart) -> Outcome<Restarted> {
        self.restart(ctx, r.image_tag).await
    }
}

impl<P: SandboxProvider> Handler<Destroy> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, d: Destroy) -> Outcome<Destroyed> {
        self.destroy(ctx, d.mark_registry_on_finalize).await
    }
}

impl<P: SandboxProvider> Handler<GetStatus> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: GetStatus) -> Outcome<StatusView> {
        self.status(ctx).await
    }
}

impl<P: SandboxProvider> Handler<GetDebugStatus> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: GetDebugStatus) -> Outcome<DebugStatus> {
        self.debug_status(ctx).await
    }
}

impl<P: SandboxProvider> Handler<GetConfig> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: GetConfig) -> Outcome<ConfigView> {
        self.config(ctx).await
    }
}

impl<P: SandboxProvider> Handler<ConfigPatch> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, patch: ConfigPatch) -> Outcome<ConfigView> {
        self.patch_config(ctx, patch).await
    }
}

impl<P: SandboxProvider> Handler<GetRoute> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: GetRoute) -> Outcome<Route> {
        self.route(ctx).await
    }
}

impl<P: SandboxProvider> Handler<Report> for InstanceActor<P> {
    async fn handle(&mut self, ctx: &mut Context<Self>, report: Report) -> Result<(), Abort> {
        self.report(ctx, report).await
    }
}
