//! The instance manager's actor: each instance (or legacy user) is one durable actor holding
//! its persisted state, driving a sandbox through a [`SandboxProvider`].
//!
//! - [`Instances`] registers the actor with a [`Runtime`](burrow_runtime::Runtime);
//!   [`InstanceRef`] calls one instance: provision, start, stop, restart, destroy, status,
//!   configuration.
//! - Lost state is restored from the registry by the actor's own name before any call is
//!   served; a sandbox that outlived its state is found again by its labels.
//! - A reconcile alarm, scheduled by status, converges the instance with its sandbox
//!   ([`LifecycleConfig`] holds every interval and threshold).
//! - Secrets are sealed with AES-256-GCM ([`secrets`]) and only ever decrypted into a
//!   sandbox's environment ([`env`](mod@env)).
//! - [`LocalProvider`] runs each sandbox as a local process of the `burrow-sandbox` gateway.

mod actor;
mod config;
pub mod env;
mod forwarding;
mod handlers;
mod instances;
mod lifecycle;
#[cfg(feature = "faults")]
pub mod lists;
mod protocol;
pub mod provider;
pub mod remote;
mod routes;
pub mod secrets;
mod services;

pub use actor::InstanceActor;
pub use config::LifecycleConfig;
pub use instances::{InstanceRef, Instances, NAMESPACE, Settings};
pub use protocol::{
    Answer, ConfigPatch, ConfigView, DebugStatus, Destroy, Destroyed, GetConfig, GetDebugStatus,
    GetRoute, GetStatus, InstanceError, Provision, Provisioned, Restart, Restarted, Route, Start,
    Stop,
};
pub use provider::{LocalProvider, LocalProviderConfig, SandboxProvider};
