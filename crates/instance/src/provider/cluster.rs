//! Sandboxes across a cluster: [`ClusterProvider`] runs new machines on this node (through the
//! [`LocalProvider`]) and reaches the machines other nodes host through a [`MachineBook`] —
//! their records in PostgreSQL and the hosting node's internal machines API.
//!
//! A machine whose node holds no lease is not trusted, whatever its address still answers: it
//! is never healthy, `get` reports it gone and `list` leaves it out, so that a start creates a
//! new machine here; what is asked of it meanwhile (stop, delete) is recorded and carried out
//! when its node rejoins, and a new machine for the same labels marks it for deletion.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use burrow_identity::{MachineId, SandboxId, UserId, VolumeId};

use super::{LocalProvider, Machine, MachineSpec, MachineState, ProviderError, SandboxProvider};

/// A future a [`MachineBook`] returns.
pub type BookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// A machine another node hosts, as the book knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosted {
    /// The machine as last recorded by its node.
    pub machine: Machine,
    /// The hosting node.
    pub node_id: String,
    /// Where that node takes internal calls.
    pub node_url: Option<String>,
    /// Whether that node holds a running lease now.
    pub host_alive: bool,
}

/// What a node is asked to do with a machine it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineOp {
    /// Start it with this environment.
    Start(BTreeMap<String, String>),
    /// Stop it.
    Stop,
    /// Delete it and its volume.
    Delete,
}

/// Where a cluster's machines are recorded, and how another node's machine is acted on. The
/// server implements it over PostgreSQL and the internal machines API.
pub trait MachineBook: Send + Sync + 'static {
    /// Records a machine this node hosts (after every change of it); `started`: it was just
    /// created or started, which ends whatever was wanted of it before.
    fn record<'a>(&'a self, machine: &'a Machine, started: bool) -> BookFuture<'a, ()>;
    /// Forgets a machine this node deleted.
    fn forget<'a>(&'a self, id: &'a MachineId) -> BookFuture<'a, ()>;
    /// A machine any node hosts.
    fn find<'a>(&'a self, id: &'a MachineId) -> BookFuture<'a, Option<Hosted>>;
    /// The machines with these labels, on every node.
    fn labelled<'a>(
        &'a self,
        user: &'a UserId,
        sandbox: &'a SandboxId,
    ) -> BookFuture<'a, Vec<Hosted>>;
    /// Asks the (live) hosting node to do `op`; answers the machine as it is after.
    fn ask<'a>(&'a self, hosted: &'a Hosted, op: MachineOp) -> BookFuture<'a, Option<Machine>>;
    /// Records `op` (stop or delete) for the hosting node to carry out when it rejoins.
    fn defer<'a>(&'a self, id: &'a MachineId, op: MachineOp) -> BookFuture<'a, ()>;
}

/// The provider of a node: its own machines are local, the others are reached through the
/// book. Without a book it is the [`LocalProvider`].
#[derive(Clone)]
pub struct ClusterProvider {
    local: LocalProvider,
    book: Option<Arc<dyn MachineBook>>,
}

impl std::fmt::Debug for ClusterProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterProvider")
            .field("local", &self.local)
            .field("clustered", &self.book.is_some())
            .finish()
    }
}

impl ClusterProvider {
    /// `local` alone (one machine), or with the cluster's `book`.
    pub fn new(local: LocalProvider, book: Option<Arc<dyn MachineBook>>) -> ClusterProvider {
        ClusterProvider { local, book }
    }

    /// This node's own machines.
    pub fn local(&self) -> &LocalProvider {
        &self.local
    }

    /// Whether this node hosts the machine.
    fn here(&self, id: &MachineId) -> bool {
        self.local.hosts(id)
    }

    /// Another node's machine, if the book knows it.
    async fn elsewhere(
        &self,
        id: &MachineId,
    ) -> Result<Option<(&dyn MachineBook, Hosted)>, ProviderError> {
        let Some(book) = self.book.as_deref() else {
            return Ok(None);
        };
        Ok(book.find(id).await?.map(|h| (book, h)))
    }

    async fn recorded(&self, machine: Machine, started: bool) -> Result<Machine, ProviderError> {
        if let Some(book) = &self.book {
            book.record(&machine, started).await?;
        }
        Ok(machine)
    }

    /// Deletes a machine this node hosts, with its volume, and forgets its record.
    pub async fn delete_here(&self, id: &MachineId) -> Result<(), ProviderError> {
        if let Some(m) = self.local.get(id).await? {
            self.local.delete_machine(id).await?;
            self.local.delete_volume(&m.volume_id).await?;
        }
        if let Some(book) = &self.book {
            book.forget(id).await?;
        }
        Ok(())
    }

    /// Carries out what was wanted of this node's machines while it could not be asked, and
    /// records the others again (their state and address after a restart). Returns how many
    /// were stopped or deleted.
    pub async fn settle(&self, wanted: &[(MachineId, MachineOp)]) -> Result<usize, ProviderError> {
        let mut done = 0;
        for (id, op) in wanted {
            match op {
                MachineOp::Delete => self.delete_here(id).await?,
                MachineOp::Stop => {
                    self.local.stop(id).await?;
                    if let Some(m) = self.local.get(id).await? {
                        self.recorded(m, true).await?;
                    }
                }
                MachineOp::Start(_) => continue,
            }
            done += 1;
        }
        for machine in self.local.machines()? {
            if !wanted.iter().any(|(id, _)| *id == machine.id) {
                self.recorded(machine, false).await?;
            }
        }
        Ok(done)
    }
}

impl SandboxProvider for ClusterProvider {
    async fn create(&self, spec: MachineSpec) -> Result<Machine, ProviderError> {
        let labels = spec.labels.clone();
        let machine = self.recorded(self.local.create(spec).await?, true).await?;
        // The machines of these labels on nodes that are gone are replaced by this one.
        if let Some(book) = &self.book {
            for old in book.labelled(&labels.user_id, &labels.sandbox_id).await? {
                if !old.host_alive && old.machine.id != machine.id {
                    book.defer(&old.machine.id, MachineOp::Delete).await?;
                }
            }
        }
        Ok(machine)
    }

    async fn start(
        &self,
        machine_id: &MachineId,
        env: BTreeMap<String, String>,
    ) -> Result<Machine, ProviderError> {
        if self.here(machine_id) {
            let machine = self.local.start(machine_id, env).await?;
            return self.recorded(machine, true).await;
        }
        match self.elsewhere(machine_id).await? {
            Some((book, hosted)) if hosted.host_alive => book
                .ask(&hosted, MachineOp::Start(env))
                .await?
                .ok_or_else(|| ProviderError::NotFound(machine_id.to_string())),
            Some((_, hosted)) => Err(ProviderError::Failed(format!(
                "machine {machine_id} is on node {}, which holds no lease",
                hosted.node_id
            ))),
            None => self.local.start(machine_id, env).await,
        }
    }

    async fn stop(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        if self.here(machine_id) {
            self.local.stop(machine_id).await?;
            if let Some(m) = self.local.get(machine_id).await? {
                self.recorded(m, false).await?;
            }
            return Ok(());
        }
        match self.elsewhere(machine_id).await? {
            Some((book, hosted)) if hosted.host_alive => {
                book.ask(&hosted, MachineOp::Stop).await.map(drop)
            }
            Some((book, _)) => book.defer(machine_id, MachineOp::Stop).await,
            None => self.local.stop(machine_id).await,
        }
    }

    async fn get(&self, machine_id: &MachineId) -> Result<Option<Machine>, ProviderError> {
        if self.here(machine_id) {
            return self.local.get(machine_id).await;
        }
        match self.elsewhere(machine_id).await? {
            // A machine on a node without a lease is not trusted: gone, for the instance.
            Some((_, hosted)) if hosted.host_alive => Ok(Some(hosted.machine)),
            Some(_) => Ok(None),
            None => self.local.get(machine_id).await,
        }
    }

    async fn list(
        &self,
        user_id: &UserId,
        sandbox_id: &SandboxId,
    ) -> Result<Vec<Machine>, ProviderError> {
        let mut machines = self.local.list(user_id, sandbox_id).await?;
        if let Some(book) = &self.book {
            for hosted in book.labelled(user_id, sandbox_id).await? {
                if hosted.host_alive && !machines.iter().any(|m| m.id == hosted.machine.id) {
                    machines.push(hosted.machine);
                }
            }
        }
        Ok(machines)
    }

    async fn healthy(&self, machine_id: &MachineId) -> Result<bool, ProviderError> {
        if self.here(machine_id) {
            return self.local.healthy(machine_id).await;
        }
        match self.elsewhere(machine_id).await? {
            Some((_, hosted))
                if hosted.host_alive && hosted.machine.state == MachineState::Running =>
            {
                match hosted.machine.address {
                    Some(address) => Ok(self
                        .local
                        .probe(address, &hosted.machine.labels.sandbox_id)
                        .await),
                    None => Ok(false),
                }
            }
            Some(_) => Ok(false),
            None => self.local.healthy(machine_id).await,
        }
    }

    async fn delete_machine(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        if self.here(machine_id) {
            self.local.delete_machine(machine_id).await?;
            if let Some(book) = &self.book {
                book.forget(machine_id).await?;
            }
            return Ok(());
        }
        match self.elsewhere(machine_id).await? {
            Some((book, hosted)) if hosted.host_alive => {
                book.ask(&hosted, MachineOp::Delete).await.map(drop)
            }
            Some((book, _)) => book.defer(machine_id, MachineOp::Delete).await,
            None => self.local.delete_machine(machine_id).await,
        }
    }

    async fn delete_volume(&self, volume_id: &VolumeId) -> Result<(), ProviderError> {
        // Another node's volume goes with its machine (`MachineOp::Delete`); here, only ours.
        self.local.delete_volume(volume_id).await
    }
}
