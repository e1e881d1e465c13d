//! Cluster mode (`burrow serve --cluster`): what a node is started with. The admin view of the
//! nodes is in `admin.rs`. See `docs/CLUSTER.md`.

use std::time::Duration;

/// The shortest cluster secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a node of a cluster is started with.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The node's stable id.
    pub node_id: String,
    /// Where other nodes reach this one.
    pub advertise_url: String,
    /// How long a renewal of its lease keeps it a member.
    pub lease: Duration,
    /// What nodes authenticate to each other with (`BURROW_CLUSTER_SECRET`, ≥ 32 bytes).
    pub secret: String,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The node id derived from an advertised URL when none is given: its host and port, which
/// are what make the node reachable and so unique within the cluster.
///
/// ```
/// use burrow_server::cluster::node_id_from_url;
/// assert_eq!(node_id_from_url("http://10.0.0.7:8787/").unwrap(), "10.0.0.7-8787");
/// assert!(node_id_from_url("not a url").is_err());
/// ```
pub fn node_id_from_url(url: &str) -> Result<String, String> {
    let parsed =
        url::Url::parse(url).map_err(|e| format!("--advertise-url {url:?} is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("--advertise-url {url:?} has no host"))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("--advertise-url {url:?} has no port"))?;
    Ok(format!("{host}-{port}"))
}
