//! How a machine maps onto a container: its name, labels, limits and mount going in; its
//! state, labels and published port coming back from inspect.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig, Mount,
    MountType, PortBinding,
};
use burrow_identity::{MachineId, SandboxId, VolumeId};
use burrow_state::now_ms;
use sha2::{Digest, Sha256};

use super::{DATA_PATH, GATEWAY_PORT, PodmanProviderConfig};
use crate::env::IMAGE_TAG_ENV;
use crate::provider::{
    Labels, Machine, MachineSpec, MachineState, ProviderError, is_hex_id, new_hex_id,
};

pub(super) const USER_LABEL: &str = "burrow.user-id";
pub(super) const SANDBOX_LABEL: &str = "burrow.sandbox-id";
const ORG_LABEL: &str = "burrow.org-id";
const INSTANCE_LABEL: &str = "burrow.instance-id";
const CREATED_LABEL: &str = "burrow.created-at-ms";
/// A digest of the environment the container was created with: the engine's own copy of the
/// environment also holds the image's variables, so it cannot be compared directly.
const ENV_LABEL: &str = "burrow.env-sha256";

const VOLUME_PREFIX: &str = "burrow-";

/// A new machine id: `c` and 32 hex digits (the local provider's start with `m`).
pub(super) fn new_machine_id() -> MachineId {
    new_hex_id('c')
        .parse()
        .expect("c and 32 hex digits is a machine id")
}

/// Machine ids are `c` and 32 lower-case hex digits; anything else is not this provider's.
pub(super) fn check_machine_id(id: &MachineId) -> Result<(), ProviderError> {
    if is_hex_id(id.as_str(), 'c') {
        Ok(())
    } else {
        Err(ProviderError::Invalid(format!(
            "{id:?} is not a container machine id (c and 32 hex digits)"
        )))
    }
}

/// Volume ids are `burrow-` and a sandbox id.
pub(super) fn check_volume_id(id: &VolumeId) -> Result<(), ProviderError> {
    match id.as_str().strip_prefix(VOLUME_PREFIX) {
        Some(sandbox) if sandbox.parse::<SandboxId>().is_ok() => Ok(()),
        _ => Err(ProviderError::Invalid(format!(
            "{id:?} is not a container volume id (burrow- and a sandbox id)"
        ))),
    }
}

/// The name of a sandbox's volume and of its network: `burrow-` and the sandbox id. Its
/// network is its own, isolated from every other, so no container reaches another's gateway.
pub(super) fn sandbox_resource(sandbox_id: &SandboxId) -> String {
    format!("{VOLUME_PREFIX}{sandbox_id}")
}

/// The bridge interface of a sandbox's network: `bur` and 12 hex digits of a digest of the
/// sandbox id (an interface name has at most 15 bytes). Named here, not numbered by the engine,
/// so that engines sharing a kernel never pick the same name for different networks.
pub(super) fn bridge_name(sandbox_id: &SandboxId) -> String {
    let digest = Sha256::digest(sandbox_id.to_string().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("bur{hex}")
}

/// The identity labels of a container or volume.
pub(super) fn labels(labels: &Labels) -> HashMap<String, String> {
    let mut out = HashMap::from([
        (USER_LABEL.to_owned(), labels.user_id.to_string()),
        (SANDBOX_LABEL.to_owned(), labels.sandbox_id.to_string()),
    ]);
    if let Some(org) = &labels.org_id {
        out.insert(ORG_LABEL.to_owned(), org.to_string());
    }
    if let Some(instance) = labels.sandbox_id.instance_id() {
        out.insert(INSTANCE_LABEL.to_owned(), instance.to_string());
    }
    out
}

/// The image a machine runs: the repository with the tag its environment names.
pub(super) fn image_reference(config: &PodmanProviderConfig, spec: &MachineSpec) -> String {
    let tag = spec
        .env
        .get(IMAGE_TAG_ENV)
        .map(String::as_str)
        .unwrap_or("latest");
    format!("{}:{tag}", config.image)
}

fn env_digest(spec: &MachineSpec) -> String {
    let mut hash = Sha256::new();
    for (name, value) in &spec.env {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the engine is asked to create for `spec`.
pub(super) fn create_body(
    config: &PodmanProviderConfig,
    volume: &VolumeId,
    spec: &MachineSpec,
) -> ContainerCreateBody {
    let mut labels = labels(&spec.labels);
    labels.insert(CREATED_LABEL.to_owned(), now_ms().to_string());
    labels.insert(ENV_LABEL.to_owned(), env_digest(spec));
    let port = format!("{GATEWAY_PORT}/tcp");
    let binding = PortBinding {
        host_ip: Some(config.host.to_string()),
        // Empty: the engine picks a free port, read back from inspect.
        host_port: Some(String::new()),
    };
    ContainerCreateBody {
        image: Some(image_reference(config, spec)),
        cmd: Some(vec![
            "--listen".to_owned(),
            format!("0.0.0.0:{GATEWAY_PORT}"),
            "--data-dir".to_owned(),
            DATA_PATH.to_owned(),
        ]),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        user: Some(format!("{0}:{0}", config.uid)),
        exposed_ports: Some(vec![port.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(port, Some(vec![binding]))])),
            mounts: Some(vec![Mount {
                target: Some(DATA_PATH.to_owned()),
                source: Some(volume.to_string()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            memory: Some((config.memory_mb * 1024 * 1024) as i64),
            nano_cpus: Some((config.cpus * 1e9) as i64),
            pids_limit: Some(config.pids),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,nosuid,nodev,size=64m".to_owned(),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            init: Some(true),
            network_mode: Some(sandbox_resource(&spec.labels.sandbox_id)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether the container was created with another image or environment than `spec` asks for.
pub(super) fn differs(
    found: &ContainerInspectResponse,
    config: &PodmanProviderConfig,
    spec: &MachineSpec,
) -> bool {
    let Some(created) = &found.config else {
        return true;
    };
    let label = created.labels.as_ref().and_then(|l| l.get(ENV_LABEL));
    label != Some(&env_digest(spec))
        || created.image.as_deref() != Some(image_reference(config, spec).as_str())
}

/// The machine a container is, or `None` when it does not carry Burrow's labels (a container
/// that is not Burrow's is never touched).
pub(super) fn machine(found: &ContainerInspectResponse) -> Option<Machine> {
    let name = found.name.as_deref()?.trim_start_matches('/');
    let id: MachineId = name.parse().ok()?;
    check_machine_id(&id).ok()?;
    let labels = found.config.as_ref()?.labels.as_ref()?;
    let sandbox_id: SandboxId = labels.get(SANDBOX_LABEL)?.parse().ok()?;
    let identity = Labels {
        user_id: labels.get(USER_LABEL)?.parse().ok()?,
        org_id: labels.get(ORG_LABEL).and_then(|o| o.parse().ok()),
        sandbox_id: sandbox_id.clone(),
    };
    let address = published(found);
    let status = found.state.as_ref().and_then(|s| s.status);
    let state = match status {
        Some(ContainerStateStatusEnum::REMOVING) => MachineState::Destroying,
        Some(ContainerStateStatusEnum::RUNNING) if address.is_some() => MachineState::Running,
        Some(ContainerStateStatusEnum::RUNNING) => MachineState::Starting,
        _ => MachineState::Stopped,
    };
    Some(Machine {
        id,
        volume_id: sandbox_resource(&sandbox_id).parse().ok()?,
        labels: identity,
        state,
        created_at_ms: labels
            .get(CREATED_LABEL)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        address: address.filter(|_| state == MachineState::Running),
    })
}

/// Where the gateway's port is published, while the container runs.
fn published(found: &ContainerInspectResponse) -> Option<SocketAddr> {
    let ports = found.network_settings.as_ref()?.ports.as_ref()?;
    let binding = ports
        .get(&format!("{GATEWAY_PORT}/tcp"))?
        .as_ref()?
        .first()?;
    let port: u16 = binding.host_port.as_deref()?.parse().ok()?;
    let ip = binding
        .host_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .filter(|ip: &IpAddr| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Some(SocketAddr::new(ip, port))
}
