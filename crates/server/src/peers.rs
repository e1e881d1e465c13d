//! The cluster as the instance manager sees it ([`burrow_instance::remote::Cluster`]): where
//! an actor probably is (a cache of where calls were served, emptied of actors PostgreSQL
//! reports moved, else rendezvous hashing over the live nodes), whether this node holds its lease, and forwarding over HTTP with the cluster
//! secret. Nothing here decides ownership — the claim in the log does; a wrong guess costs a
//! hop.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use burrow_instance::remote::{Cluster, ClusterFuture, ForwardReply, Forwarded, PROTOCOL_VERSION};
use burrow_log_postgres::membership::{Node, live_nodes};
use burrow_log_postgres::notify::PlacementEvent;
use burrow_runtime::{CallError, ErrorKind};
use sha2::{Digest, Sha256};

/// The header that carries the cluster secret on internal requests.
pub const SECRET_HEADER: &str = "x-burrow-cluster-secret";
/// The header that carries the sender's protocol version.
pub const PROTOCOL_HEADER: &str = "x-burrow-protocol";

/// How long a remembered place is trusted as a first guess.
const PLACE_TTL: Duration = Duration::from_secs(30);

/// This node's view of the cluster.
pub struct Peers {
    node: Arc<Node>,
    node_id: String,
    advertise_url: String,
    secret: String,
    lease: Duration,
    http: reqwest::Client,
    /// Where calls for an actor were last served (`None`: here).
    places: moka::sync::Cache<String, Option<String>>,
    /// The live nodes (id, URL), refreshed in the background.
    live: RwLock<Vec<(String, String)>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// The view of `node`, which forwards with `secret`, giving up on a peer after `timeout`.
    pub fn new(
        node: Arc<Node>,
        config: &crate::cluster::ClusterConfig,
        timeout: Duration,
    ) -> Result<Arc<Peers>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()?;
        Ok(Arc::new(Peers {
            node,
            node_id: config.node_id.clone(),
            advertise_url: config.advertise_url.clone(),
            secret: config.secret.clone(),
            lease: config.lease,
            http,
            places: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(PLACE_TTL)
                .build(),
            live: RwLock::new(Vec::new()),
        }))
    }

    /// Keeps the list of live nodes fresh (every `every`) for as long as `self` lives.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let peers = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(p) = peers.upgrade() else { return };
                match live_nodes(p.node.log()).await {
                    Ok(nodes) => *p.live.write().unwrap_or_else(|e| e.into_inner()) = nodes,
                    Err(e) => tracing::debug!("refreshing the live nodes: {e}"),
                }
                drop(p);
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Forgets remembered places as PostgreSQL reports them moved (LISTEN/NOTIFY on a
    /// connection of its own), and everything whenever that connection is (re)established —
    /// notifications sent while it was down are lost. For as long as `self` lives.
    pub fn spawn_listener(self: &Arc<Self>, retry: Duration) -> tokio::task::JoinHandle<()> {
        let peers = Arc::downgrade(self);
        let log = self.node.log().clone();
        tokio::spawn(async move {
            burrow_log_postgres::notify::watch(&log, retry, |event| {
                let Some(p) = peers.upgrade() else {
                    return false;
                };
                match event {
                    PlacementEvent::Moved(actor) => p.places.invalidate(&actor),
                    PlacementEvent::Connected => p.places.invalidate_all(),
                }
                true
            })
            .await;
        })
    }

    /// The live node that `actor` hashes to highest (rendezvous hashing): each actor's first
    /// claim goes to one node that every node agrees on while they see the same live set, and
    /// a node joining or leaving moves only its share.
    fn rendezvous(&self, actor: &str) -> Option<(String, String)> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.iter().max_by_key(|(id, _)| score(id, actor)).cloned()
    }
}

/// A node's score for an actor: the first 8 bytes of SHA-256(node id, 0, actor), the same on
/// every node and every build.
fn score(node_id: &str, actor: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(node_id.as_bytes())
        .chain_update([0])
        .chain_update(actor.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("32 bytes"))
}

impl Cluster for Peers {
    fn advertise_url(&self) -> &str {
        &self.advertise_url
    }

    fn place(&self, actor: &str) -> Option<String> {
        if let Some(place) = self.places.get(actor) {
            return place;
        }
        match self.rendezvous(actor) {
            Some((id, url)) if id != self.node_id => Some(url),
            _ => None,
        }
    }

    fn served(&self, actor: &str, at: Option<&str>) {
        self.places.insert(actor.to_owned(), at.map(str::to_owned));
    }

    fn forget(&self, actor: &str) {
        self.places.invalidate(actor);
    }

    fn serving(&self) -> bool {
        self.node.holds_lease()
    }

    fn send<'a>(
        &'a self,
        url: &'a str,
        namespace: &'a str,
        actor: &'a str,
        call: Forwarded,
    ) -> ClusterFuture<'a, Result<ForwardReply, CallError>> {
        Box::pin(async move {
            metrics::counter!("burrow_cluster_forwards_total").increment(1);
            let endpoint = internal_url(url, namespace, actor)?;
            let unreachable = |e: String| {
                CallError::new(ErrorKind::TransientIo, format!("forwarding to {url}: {e}"))
            };
            let request = self
                .http
                .post(endpoint)
                .header(SECRET_HEADER, &self.secret)
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .json(&call)
                .send();
            let response = tokio::select! {
                sent = request => sent.map_err(|e| unreachable(e.to_string()))?,
                () = self.holder_gone(url) => {
                    return Err(unreachable(
                        "no answer, and its lease ran out: it is paused, cut off or dead".into(),
                    ));
                }
            };
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                // A refusal (a version it does not speak, a wrong secret) is loud and final.
                return Err(CallError::new(
                    ErrorKind::ActorFailed,
                    format!("the node at {url} refused a forwarded call ({status}): {body}"),
                ));
            }
            response
                .json::<ForwardReply>()
                .await
                .map_err(|e| unreachable(format!("reading the reply: {e}")))
        })
    }
}

impl Peers {
    /// Resolves once the node at `url` no longer holds a lease, asked of PostgreSQL every
    /// quarter of a lease from half a lease on: a forwarded call that takes that long may be
    /// waiting on a paused node, whose actors can be claimed here once its lease is over
    /// (anything it does on resuming is fenced). Never resolves while the lease runs.
    async fn holder_gone(&self, url: &str) {
        let start = tokio::time::Instant::now() + self.lease / 2;
        let mut every =
            tokio::time::interval_at(start, (self.lease / 4).max(Duration::from_millis(10)));
        loop {
            every.tick().await;
            match burrow_log_postgres::membership::lease_running_at(self.node.log(), url).await {
                Ok(false) => return,
                Ok(true) => {}
                Err(e) => tracing::debug!(%url, "asking whether a peer's lease runs: {e}"),
            }
        }
    }
}

/// `{url}/_burrow/actors/{namespace}/{actor}/call`, with the actor's name escaped.
fn internal_url(base: &str, namespace: &str, actor: &str) -> Result<url::Url, CallError> {
    let mut url = url::Url::parse(base).map_err(|e| {
        CallError::new(
            ErrorKind::ActorFailed,
            format!("a node advertises {base:?}, which is not a URL: {e}"),
        )
    })?;
    url.path_segments_mut()
        .map_err(|()| CallError::new(ErrorKind::ActorFailed, format!("{base} cannot be a base")))?
        .pop_if_empty()
        .extend(["_burrow", "actors", namespace, actor, "call"]);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_scores_are_stable_and_spread() {
        // Fixed across builds and machines: every node must agree.
        assert_eq!(score("n1", "a"), score("n1", "a"));
        assert_ne!(score("n1", "a"), score("n2", "a"));
        let nodes = ["n1", "n2", "n3"];
        let mut won = [0usize; 3];
        for i in 0..3000 {
            let actor = format!("actor-{i}");
            let best = (0..3).max_by_key(|&n| score(nodes[n], &actor)).unwrap();
            won[best] += 1;
        }
        for w in won {
            assert!((700..1300).contains(&w), "uneven spread: {won:?}");
        }
    }

    #[test]
    fn internal_urls_escape_the_actor() {
        let url = internal_url("http://10.0.0.2:7000/", "instance", "a/b c").unwrap();
        assert_eq!(
            url.as_str(),
            "http://10.0.0.2:7000/_burrow/actors/instance/a%2Fb%20c/call"
        );
    }
}
