//! A provider that runs each sandbox as a container of an image, through the Docker Engine API
//! (Podman's Docker-compatible service is what the tests run; Docker Engine speaks the same).
//!
//! The engine's view is the truth: nothing is recorded beside it. A machine is a container
//! named after its [`MachineId`] (`c` and 32 hex digits) and labelled with its instance's
//! identity; its volume is an engine volume named after the sandbox id (`burrow-<sandbox id>`),
//! mounted at `/data`. Only [`delete_volume`](SandboxProvider::delete_volume) deletes a
//! volume: deleting a machine never does.
//!
//! An engine that does not answer is [`ProviderError::Failed`], never "not found", so an
//! outage cannot make the instance manager start a duplicate.

mod container;
mod events;
mod image;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use burrow_identity::{MachineId, SandboxId, UserId, VolumeId};

pub use events::Exit;
pub use image::build_gateway_image;

use super::{Machine, MachineSpec, ProviderError, SandboxProvider, probe};

/// Where the gateway is in the image.
const GATEWAY_PATH: &str = "/bin/burrow-sandbox";
/// Where a sandbox's volume is mounted in its container.
const DATA_PATH: &str = "/data";
/// The port the gateway listens on inside its container.
const GATEWAY_PORT: u16 = 8080;

/// How the container provider runs sandboxes.
#[derive(Debug, Clone)]
pub struct PodmanProviderConfig {
    /// The engine's API socket.
    pub socket: PathBuf,
    /// The image repository; a machine runs `REPOSITORY:TAG` with the tag from its environment's
    /// `BURROW_IMAGE_TAG` (default `latest`).
    pub image: String,
    /// Where containers' gateway ports are published (default `127.0.0.1`).
    pub host: IpAddr,
    /// The uid (and gid) every container runs as; the engine gives a new volume to it.
    pub uid: u32,
    /// Memory limit per container, in MiB (default 512).
    pub memory_mb: u64,
    /// CPUs per container (default 1.0).
    pub cpus: f64,
    /// Processes per container (default 256).
    pub pids: i64,
    /// How long a stopping container gets before it is killed (default 5 s).
    pub stop_timeout: Duration,
    /// How long one health probe may take (default 2 s).
    pub probe_timeout: Duration,
}

impl PodmanProviderConfig {
    /// Containers on the engine at `socket`, from `localhost/burrow-sandbox`, with the default
    /// limits.
    pub fn new(socket: impl Into<PathBuf>) -> PodmanProviderConfig {
        PodmanProviderConfig {
            socket: socket.into(),
            image: "localhost/burrow-sandbox".to_owned(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uid: 10_000,
            memory_mb: 512,
            cpus: 1.0,
            pids: 256,
            stop_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// Runs each sandbox as a container. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PodmanProvider {
    engine: Docker,
    config: std::sync::Arc<PodmanProviderConfig>,
    http: reqwest::Client,
}

impl PodmanProvider {
    /// A provider on the engine at `config.socket`; fails when the socket is missing or the
    /// engine does not answer, naming the socket.
    pub async fn connect(config: PodmanProviderConfig) -> Result<PodmanProvider, ProviderError> {
        let socket = config.socket.display().to_string();
        let engine = Docker::connect_with_unix(&socket, 30, bollard::API_DEFAULT_VERSION)
            .map_err(|e| ProviderError::failed(&format!("the container engine at {socket}"), e))?
            // Podman 4.3 answers API 1.41; negotiating keeps newer clients working with it.
            .negotiate_version()
            .await
            .map_err(|e| ProviderError::failed(&format!("the container engine at {socket}"), e))?;
        let http = reqwest::Client::builder()
            .timeout(config.probe_timeout)
            .no_proxy()
            .build()
            .map_err(|e| ProviderError::failed("building the HTTP client", e))?;
        Ok(PodmanProvider {
            engine,
            config: std::sync::Arc::new(config),
            http,
        })
    }

    /// The engine client, for what the provider does not wrap (building images, tests).
    pub fn engine(&self) -> &Docker {
        &self.engine
    }

    async fn inspect(&self, id: &MachineId) -> Result<Option<Machine>, ProviderError> {
        container::check_machine_id(id)?;
        match self.engine.inspect_container(id.as_str(), None).await {
            Ok(found) => Ok(container::machine(&found)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(ProviderError::failed(&format!("inspecting {id}"), e)),
        }
    }

    async fn ensure_volume(&self, spec: &MachineSpec) -> Result<VolumeId, ProviderError> {
        let name = container::sandbox_resource(&spec.labels.sandbox_id);
        if let Err(e) = self.engine.inspect_volume(&name).await {
            if !is_status(&e, 404) {
                return Err(ProviderError::failed(
                    &format!("inspecting volume {name}"),
                    e,
                ));
            }
            let request = bollard::models::VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(container::labels(&spec.labels)),
                ..Default::default()
            };
            self.engine
                .create_volume(request)
                .await
                .map_err(|e| ProviderError::failed(&format!("creating volume {name}"), e))?;
        }
        name.parse()
            .map_err(|e| ProviderError::Invalid(format!("volume name {name}: {e}")))
    }

    /// The sandbox's own network, created on first use, with a bridge named by Burrow. Kept
    /// apart from every other network by `isolate` — netavark's option, which Podman's
    /// Docker-compatible API already sets on the networks it creates (Podman 4.3); it is set here
    /// so that nothing depends on that default. (Docker Engine keeps bridge networks apart
    /// anyway; CNI, Podman's older backend, does not, and is not supported.)
    async fn ensure_network(&self, spec: &MachineSpec) -> Result<(), ProviderError> {
        let name = container::sandbox_resource(&spec.labels.sandbox_id);
        match self.engine.inspect_network(&name, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(ProviderError::failed(
                    &format!("inspecting network {name}"),
                    e,
                ));
            }
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            options: Some(HashMap::from([
                ("isolate".to_owned(), "true".to_owned()),
                (
                    "com.docker.network.bridge.name".to_owned(),
                    container::bridge_name(&spec.labels.sandbox_id),
                ),
            ])),
            labels: Some(container::labels(&spec.labels)),
            ..Default::default()
        };
        match self.engine.create_network(request).await {
            Ok(_) => Ok(()),
            // Made meanwhile by a concurrent start of the same sandbox.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(ProviderError::failed(
                &format!("creating network {name}"),
                e,
            )),
        }
    }

    /// Creates and starts container `id` on `volume`.
    async fn run(
        &self,
        id: &MachineId,
        volume: &VolumeId,
        spec: &MachineSpec,
    ) -> Result<Machine, ProviderError> {
        self.ensure_network(spec).await?;
        let body = container::create_body(&self.config, volume, spec);
        let options = CreateContainerOptionsBuilder::default()
            .name(id.as_str())
            .build();
        self.engine
            .create_container(Some(options), body)
            .await
            .map_err(|e| ProviderError::failed(&format!("creating container {id}"), e))?;
        self.engine
            .start_container(id.as_str(), None)
            .await
            .map_err(|e| ProviderError::failed(&format!("starting container {id}"), e))?;
        self.inspect(id)
            .await?
            .ok_or_else(|| ProviderError::Failed(format!("container {id} vanished as it started")))
    }

    /// Refuses a start into an image the engine does not have, before anything is changed.
    async fn check_image(&self, reference: &str) -> Result<(), ProviderError> {
        match self.engine.inspect_image(reference).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(ProviderError::Invalid(format!(
                "image {reference} does not exist on the container engine (build it with `burrow image build --tag TAG`)"
            ))),
            Err(e) => Err(ProviderError::failed(
                &format!("inspecting image {reference}"),
                e,
            )),
        }
    }

    async fn remove(&self, id: &MachineId) -> Result<(), ProviderError> {
        // The volume stays: `v` removes anonymous volumes only, and ours is named.
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self
            .engine
            .remove_container(id.as_str(), Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ProviderError::failed(
                &format!("removing container {id}"),
                e,
            )),
        }
    }
}

/// Whether the engine answered with this HTTP status.
fn is_status(e: &EngineError, status: u16) -> bool {
    matches!(e, EngineError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

impl SandboxProvider for PodmanProvider {
    async fn create(&self, spec: MachineSpec) -> Result<Machine, ProviderError> {
        self.check_image(&container::image_reference(&self.config, &spec))
            .await?;
        let volume = self.ensure_volume(&spec).await?;
        let id = container::new_machine_id();
        self.run(&id, &volume, &spec).await
    }

    async fn start(
        &self,
        machine_id: &MachineId,
        env: BTreeMap<String, String>,
    ) -> Result<Machine, ProviderError> {
        container::check_machine_id(machine_id)?;
        let found = match self
            .engine
            .inspect_container(machine_id.as_str(), None)
            .await
        {
            Ok(found) => found,
            Err(e) if is_status(&e, 404) => {
                return Err(ProviderError::NotFound(machine_id.to_string()));
            }
            Err(e) => {
                return Err(ProviderError::failed(
                    &format!("inspecting {machine_id}"),
                    e,
                ));
            }
        };
        let machine = container::machine(&found)
            .ok_or_else(|| ProviderError::NotFound(machine_id.to_string()))?;
        let spec = MachineSpec {
            labels: machine.labels.clone(),
            env,
        };
        // A container's environment and image are fixed at creation: a start that asks for
        // others recreates it, under the same name and on the same volume.
        if container::differs(&found, &self.config, &spec) {
            self.check_image(&container::image_reference(&self.config, &spec))
                .await?;
            self.remove(machine_id).await?;
            return self.run(machine_id, &machine.volume_id, &spec).await;
        }
        if found.state.as_ref().and_then(|s| s.running) != Some(true) {
            match self.engine.start_container(machine_id.as_str(), None).await {
                Ok(()) => {}
                Err(e) if is_status(&e, 304) => {}
                Err(e) => {
                    return Err(ProviderError::failed(&format!("starting {machine_id}"), e));
                }
            }
        }
        self.inspect(machine_id)
            .await?
            .ok_or_else(|| ProviderError::NotFound(machine_id.to_string()))
    }

    async fn stop(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        // A container without Burrow's labels is not a machine, whatever its name.
        if self.inspect(machine_id).await?.is_none() {
            return Err(ProviderError::NotFound(machine_id.to_string()));
        }
        let seconds = i32::try_from(self.config.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        match self
            .engine
            .stop_container(machine_id.as_str(), Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(ProviderError::NotFound(machine_id.to_string())),
            Err(e) => Err(ProviderError::failed(&format!("stopping {machine_id}"), e)),
        }
    }

    async fn get(&self, machine_id: &MachineId) -> Result<Option<Machine>, ProviderError> {
        self.inspect(machine_id).await
    }

    async fn list(
        &self,
        user_id: &UserId,
        sandbox_id: &SandboxId,
    ) -> Result<Vec<Machine>, ProviderError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}={user_id}", container::USER_LABEL),
                format!("{}={sandbox_id}", container::SANDBOX_LABEL),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .engine
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                ProviderError::failed(&format!("listing the machines of {sandbox_id}"), e)
            })?;
        let mut machines = Vec::new();
        for summary in found {
            let Some(id) = summary
                .names
                .iter()
                .flatten()
                .find_map(|n| n.trim_start_matches('/').parse::<MachineId>().ok())
            else {
                continue;
            };
            if container::check_machine_id(&id).is_err() {
                continue;
            }
            // Inspected one by one for the same view as `get`; gone meanwhile is skipped.
            if let Some(machine) = self.inspect(&id).await? {
                machines.push(machine);
            }
        }
        Ok(machines)
    }

    async fn healthy(&self, machine_id: &MachineId) -> Result<bool, ProviderError> {
        let Some(machine) = self.inspect(machine_id).await? else {
            return Err(ProviderError::NotFound(machine_id.to_string()));
        };
        Ok(match machine.address {
            Some(address) => {
                probe::answers_as(&self.http, address, &machine.labels.sandbox_id).await
            }
            None => false,
        })
    }

    async fn delete_machine(&self, machine_id: &MachineId) -> Result<(), ProviderError> {
        // Gone, or never Burrow's (no labels): either way there is nothing of ours to delete.
        let Some(machine) = self.inspect(machine_id).await? else {
            return Ok(());
        };
        self.remove(machine_id).await?;
        // The network goes with the sandbox's last machine; while another still uses it the
        // engine refuses (409), and it stays.
        let network = container::sandbox_resource(&machine.labels.sandbox_id);
        match self.engine.remove_network(&network).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(ProviderError::failed(
                &format!("removing network {network}"),
                e,
            )),
        }
    }

    async fn delete_volume(&self, volume_id: &VolumeId) -> Result<(), ProviderError> {
        container::check_volume_id(volume_id)?;
        // Not forced: a volume a container still uses is refused by the engine, not taken away.
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self
            .engine
            .remove_volume(volume_id.as_str(), Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ProviderError::failed(
                &format!("removing volume {volume_id}"),
                e,
            )),
        }
    }
}
