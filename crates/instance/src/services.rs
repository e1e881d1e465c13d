//! What every instance actor shares: the registry, the provider, the keys, the timing, and the
//! host's runtime on which their I/O runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use burrow_restore::{AnyRegistry, RegistryError};

use crate::config::LifecycleConfig;
use crate::provider::{ProviderError, SandboxProvider};
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
}

impl<P: SandboxProvider> Services<P> {
    /// Runs a provider call on the host runtime, limited to `timeout`.
    pub(crate) fn provider<T, F>(
        &self,
        timeout: Duration,
        call: impl FnOnce(Arc<P>) -> F,
    ) -> impl Future<Output = Result<T, ProviderError>> + 'static
    where
        F: Future<Output = Result<T, ProviderError>> + Send + 'static,
        T: Send + 'static,
    {
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
