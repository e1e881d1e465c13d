//! What every instance actor shares: the registry, the provider, the keys, the timing, and the
//! host's runtime on which their I/O runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use burrow_identity::{MachineId, SandboxId, UserId, VolumeId};
use burrow_restore::{AnyRegistry, RegistryError};

use crate::config::LifecycleConfig;
use crate::provider::{Machine, MachineSpec, ProviderError, SandboxProvider};
use crate::routes::RouteCache;
use crate::secrets::ServerKey;

/// Shared by every instance actor of one [`Instances`](crate::Instances).
pub(crate) struct Services<P> {
    pub(crate) registry: AnyRegistry,
    pub(crate) provider: Arc<P>,
    pub(crate) lifecycle: LifecycleConfig,
    pub(crate) server_key: ServerKey,
    pub(crate) gateway_secret: Vec<u8>,
    /// Registry and provider futures run here, not on the actors' shard threads: their
    /// connections and child processes then belong to the host's runtime, which outlives
    /// any one shard's work.
    pub(crate) host: tokio::runtime::Handle,
    /// Routes for the proxy, dropped by the actors whenever one changes.
    pub(crate) routes: RouteCache,
}

impl<P: SandboxProvider> Services<P> {
    /// The provider, each call limited to the lifecycle's provider timeout.
    pub(crate) fn provider(&self) -> ProviderCalls<P> {
        self.provider_within(self.lifecycle.provider_timeout)
    }

    /// The provider, each call limited to `timeout`.
    pub(crate) fn provider_within(&self, timeout: Duration) -> ProviderCalls<P> {
        ProviderCalls {
            provider: self.provider.clone(),
            host: self.host.clone(),
            timeout,
        }
    }

    /// Runs a registry call on the host runtime (the registry has its own timeouts).
    pub(crate) fn registry<T, F>(
        &self,
        call: impl FnOnce(AnyRegistry) -> F,
    ) -> impl Future<Output = Result<T, RegistryError>> + 'static
    where
        F: Future<Output = Result<T, RegistryError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.host.spawn(call(self.registry.clone()));
        async move {
            task.await.unwrap_or_else(|e| {
                Err(RegistryError::Internal(format!(
                    "registry task failed: {e}"
                )))
            })
        }
    }
}

/// Provider calls as instance actors make them: each on the host runtime (not on a shard
/// thread), each limited to a timeout. The futures own what they need, so background work can
/// hold them.
pub(crate) struct ProviderCalls<P> {
    provider: Arc<P>,
    host: tokio::runtime::Handle,
    timeout: Duration,
}

impl<P: SandboxProvider> ProviderCalls<P> {
    fn run<T, F>(
        &self,
        call: impl FnOnce(Arc<P>) -> F,
    ) -> impl Future<Output = Result<T, ProviderError>> + 'static
    where
        F: Future<Output = Result<T, ProviderError>> + Send + 'static,
        T: Send + 'static,
    {
        let timeout = self.timeout;
        let task = self
            .host
            .spawn(tokio::time::timeout(timeout, call(self.provider.clone())));
        async move {
            match task.await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ProviderError::Failed(format!(
                    "no answer within {timeout:?}"
                ))),
                Err(e) => Err(ProviderError::Failed(format!("provider task failed: {e}"))),
            }
        }
    }

    /// The machine with this id, if it exists.
    pub(crate) fn get(
        &self,
        id: &MachineId,
    ) -> impl Future<Output = Result<Option<Machine>, ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move { p.get(&id).await })
    }

    /// Every machine labelled with this user and sandbox.
    pub(crate) fn list(
        &self,
        user: &UserId,
        sandbox: &SandboxId,
    ) -> impl Future<Output = Result<Vec<Machine>, ProviderError>> + 'static {
        let (user, sandbox) = (user.clone(), sandbox.clone());
        self.run(move |p| async move { p.list(&user, &sandbox).await })
    }

    /// One health probe.
    pub(crate) fn healthy(
        &self,
        id: &MachineId,
    ) -> impl Future<Output = Result<bool, ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move { p.healthy(&id).await })
    }

    /// Stops a machine.
    pub(crate) fn stop(
        &self,
        id: &MachineId,
    ) -> impl Future<Output = Result<(), ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move { p.stop(&id).await })
    }

    /// Starts a machine with `env`; with `restart`, stops it first.
    pub(crate) fn start(
        &self,
        id: &MachineId,
        env: BTreeMap<String, String>,
        restart: bool,
    ) -> impl Future<Output = Result<Machine, ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move {
            if restart {
                p.stop(&id).await?;
            }
            p.start(&id, env).await
        })
    }

    /// Creates a machine (and its volume) and starts it.
    pub(crate) fn create(
        &self,
        spec: MachineSpec,
    ) -> impl Future<Output = Result<Machine, ProviderError>> + 'static {
        self.run(move |p| async move { p.create(spec).await })
    }

    /// Deletes a machine.
    pub(crate) fn delete_machine(
        &self,
        id: &MachineId,
    ) -> impl Future<Output = Result<(), ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move { p.delete_machine(&id).await })
    }

    /// Deletes a volume.
    pub(crate) fn delete_volume(
        &self,
        id: &VolumeId,
    ) -> impl Future<Output = Result<(), ProviderError>> + 'static {
        let id = id.clone();
        self.run(move |p| async move { p.delete_volume(&id).await })
    }
}
