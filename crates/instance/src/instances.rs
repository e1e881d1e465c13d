//! The entry point: [`Instances`] registers the instance actor with a runtime, and
//! [`InstanceRef`] calls one instance with typed methods.

use std::sync::Arc;

use burrow_identity::{ActorName, SandboxId};
use burrow_restore::AnyRegistry;
use burrow_runtime::retry::{RetryPolicy, with_retry};
use burrow_runtime::{Handler, Namespace, Runtime, RuntimeError};
use burrow_state::StatusView;

use crate::actor::InstanceActor;
use crate::config::LifecycleConfig;
use crate::env::gateway_token;
use crate::protocol::{
    ConfigPatch, ConfigView, DebugStatus, Destroy, Destroyed, GetConfig, GetDebugStatus, GetRoute,
    GetStatus, InstanceError, Provision, Provisioned, Restart, Restarted, Route, Start, Stop,
};
use crate::provider::SandboxProvider;
use crate::remote::{Cluster, Remote};
use crate::routes::RouteCache;
use crate::secrets::ServerKey;
use crate::services::Services;

/// The runtime namespace instance actors live in.
pub const NAMESPACE: &str = "instance";

/// What [`Instances::open`] needs. Its `Debug` leaves the keys out.
pub struct Settings<P> {
    /// The registry (restore source and record of every instance).
    pub registry: AnyRegistry,
    /// Where sandboxes come from.
    pub provider: P,
    /// Lifecycle timing.
    pub lifecycle: LifecycleConfig,
    /// Wraps every instance's data key.
    pub server_key: ServerKey,
    /// Derives each sandbox's gateway token.
    pub gateway_secret: Vec<u8>,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Settings<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("registry", &self.registry)
            .field("provider", &self.provider)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

/// The instance actors of one runtime.
pub struct Instances<P: SandboxProvider> {
    pub(crate) namespace: Namespace<InstanceActor<P>>,
    services: Arc<Services<P>>,
    pub(crate) cluster: Option<Arc<dyn Cluster>>,
}

impl<P: SandboxProvider> Clone for Instances<P> {
    fn clone(&self) -> Self {
        Instances {
            namespace: self.namespace.clone(),
            services: self.services.clone(),
            cluster: self.cluster.clone(),
        }
    }
}

impl<P: SandboxProvider> Instances<P> {
    /// Registers the instance actor with `runtime`. Must be called within the host's tokio
    /// runtime: registry and provider calls run there.
    pub fn open(runtime: &Runtime, settings: Settings<P>) -> Result<Instances<P>, RuntimeError> {
        let services = Arc::new(Services {
            registry: settings.registry,
            provider: Arc::new(settings.provider),
            lifecycle: settings.lifecycle,
            server_key: settings.server_key,
            gateway_secret: settings.gateway_secret,
            host: tokio::runtime::Handle::current(),
            routes: RouteCache::new(),
        });
        let shared = services.clone();
        let namespace = runtime.namespace(NAMESPACE, move |info| {
            // Actors are only ever addressed by `ActorName`; anything else is a bug upstream
            // and gets a name that restores nothing.
            let name = info
                .name()
                .and_then(|n| n.parse::<ActorName>().ok())
                .unwrap_or_else(|| ActorName::Legacy("unnamed".parse().expect("a valid user id")));
            InstanceActor::new(shared.clone(), name)
        })?;
        Ok(Instances {
            namespace,
            services,
            cluster: None,
        })
    }

    /// Runs the instances as part of a cluster: a call for an actor held by another node is
    /// forwarded there ([`remote`](crate::remote)), and [`serve_forwarded`](Self::serve_forwarded)
    /// answers other nodes' calls.
    pub fn with_cluster(mut self, cluster: Arc<dyn Cluster>) -> Instances<P> {
        self.cluster = Some(cluster);
        self
    }

    /// The instance named `name` (an instance id, or a user id for legacy instances).
    pub fn get(&self, name: &ActorName) -> InstanceRef<P> {
        InstanceRef {
            stub: self.namespace.get_by_name(&name.to_string()),
            name: name.clone(),
            services: self.services.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// Drops the cached route of `name`, for a proxy that found its address dead: the next
    /// [`InstanceRef::route`] asks the actor.
    pub fn forget_route(&self, name: &ActorName) {
        self.services.routes.invalidate(name);
    }

    /// Whether the actor of `name` has a database file here (one `stat`, no activation). A
    /// lost file reads as `false`; the registry then decides whether the instance exists.
    pub fn has_local_state(&self, name: &ActorName) -> bool {
        let id = self.namespace.id_from_name(&name.to_string());
        self.namespace.path_of(&id).exists()
    }

    /// The registry.
    pub fn registry(&self) -> &AnyRegistry {
        &self.services.registry
    }

    /// The provider.
    pub fn provider(&self) -> &P {
        &self.services.provider
    }

    /// The gateway token of a sandbox.
    pub fn gateway_token(&self, sandbox: &SandboxId) -> String {
        gateway_token(&self.services.gateway_secret, sandbox)
    }

    /// The namespace, for catalog queries.
    pub fn namespace(&self) -> &Namespace<InstanceActor<P>> {
        &self.namespace
    }
}

/// One instance. Every method is idempotent: retrying after an error is safe.
pub struct InstanceRef<P: SandboxProvider> {
    stub: burrow_runtime::Stub<InstanceActor<P>>,
    pub(crate) name: ActorName,
    services: Arc<Services<P>>,
    pub(crate) cluster: Option<Arc<dyn Cluster>>,
}

impl<P: SandboxProvider> InstanceRef<P> {
    /// The actor's name.
    pub fn name(&self) -> &ActorName {
        &self.name
    }

    /// Sends a message (built anew for each attempt), retrying what the runtime reports as
    /// retryable; the actor's own refusal comes back as the `InstanceError` it chose. In a
    /// cluster the call goes to the node that holds the actor.
    pub async fn call<M>(&self, message: impl Fn() -> M) -> Result<M::Out, InstanceError>
    where
        M: Remote,
        InstanceActor<P>: Handler<M>,
    {
        self.call_traced(message).await.map(|(out, _)| out)
    }

    /// [`call`](Self::call), and whether this node served it.
    async fn call_traced<M>(&self, message: impl Fn() -> M) -> Result<(M::Out, bool), InstanceError>
    where
        M: Remote,
        InstanceActor<P>: Handler<M>,
    {
        let (answer, here) = with_retry(
            || &self.stub,
            |stub| self.attempt(stub, &message),
            &RetryPolicy::default(),
        )
        .await?;
        answer.map(|out| (out, here))
    }

    /// Provisions the instance (or updates the configuration of an existing one) and starts it.
    pub async fn provision(&self, p: Provision) -> Result<Provisioned, InstanceError> {
        self.call(|| p.clone()).await
    }

    /// Starts the sandbox; `true` when this call began a start.
    pub async fn start(&self, skip_cooldown: bool) -> Result<bool, InstanceError> {
        self.call(|| Start { skip_cooldown }).await
    }

    /// Stops the sandbox (its process is gone when this returns).
    pub async fn stop(&self) -> Result<(), InstanceError> {
        self.call(|| Stop).await
    }

    /// Restarts the sandbox with the current configuration, recording `image_tag` if given.
    pub async fn restart(&self, image_tag: Option<String>) -> Result<Restarted, InstanceError> {
        self.call(|| Restart {
            image_tag: image_tag.clone(),
        })
        .await
    }

    /// Destroys the instance (two-phase). With `mark_registry_on_finalize` the registry row is
    /// marked destroyed when everything else is gone.
    pub async fn destroy(
        &self,
        mark_registry_on_finalize: bool,
    ) -> Result<Destroyed, InstanceError> {
        self.call(|| Destroy {
            mark_registry_on_finalize,
        })
        .await
    }

    /// What the user may see.
    pub async fn status(&self) -> Result<StatusView, InstanceError> {
        self.call(|| GetStatus).await
    }

    /// Everything an admin may see, and the next alarm.
    pub async fn debug_status(&self) -> Result<DebugStatus, InstanceError> {
        self.call(|| GetDebugStatus).await
    }

    /// The configuration (secret names only).
    pub async fn config(&self) -> Result<ConfigView, InstanceError> {
        self.call(|| GetConfig).await
    }

    /// Sets or removes env vars and secrets; returns the new configuration. Takes effect at
    /// the next start or restart.
    pub async fn patch_config(&self, patch: ConfigPatch) -> Result<ConfigView, InstanceError> {
        self.call(|| patch.clone()).await
    }

    /// Where to proxy to: owner, status and the sandbox's address while it runs.
    ///
    /// Served from a cache the instance's actor keeps true: it drops the entry whenever the
    /// status, the sandbox binding or the identity changes, so only a miss wakes the actor. In
    /// a cluster the actor may move to another node, whose changes this node's cache would not
    /// see: there every route comes from the actor.
    pub async fn route(&self) -> Result<Route, InstanceError> {
        let routes = &self.services.routes;
        if self.cluster.is_none()
            && let Some(route) = routes.get(&self.name)
        {
            return Ok(route);
        }
        let epoch = routes.epoch();
        let (route, here) = self.call_traced(|| GetRoute).await?;
        if here && self.cluster.is_none() {
            routes.insert(&self.name, route.clone(), epoch);
        }
        Ok(route)
    }
}
