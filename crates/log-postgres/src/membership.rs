//! Cluster membership: a node's row in `burrow_node`, its incarnation and its lease.
//!
//! A node joins under a new incarnation at every start (the previous incarnation's claims die
//! with it) and renews its lease every third of the lease. PostgreSQL's clock alone says
//! whether a lease has expired; the node's own view is a *local deadline* on its monotonic
//! clock, counted from when a successful renewal was **sent** (the renewal may have waited in
//! the network, so PostgreSQL's expiry is at least that late) and shortened for clock-rate
//! drift. Past its local deadline a node must act as if fenced: acknowledge nothing, drop its
//! activations, join again.

use std::time::{Duration, Instant};

use burrow_runtime::turn_log::LogError;

use crate::{PgTurnLog, read, sent};

/// How fast the node's monotonic clock may run slow against PostgreSQL's, as a fraction.
pub const CLOCK_DRIFT: f64 = 0.05;

/// The most kept back from the local deadline for scheduling delays.
pub const MAX_MARGIN: Duration = Duration::from_millis(500);

/// Where a node's trust in its lease ends: `lease · (1 − CLOCK_DRIFT)` after `sent`, less a
/// margin of a twentieth of the lease (at most [`MAX_MARGIN`]).
///
/// ```
/// use std::time::{Duration, Instant};
/// use burrow_log_postgres::membership::local_deadline;
/// let sent = Instant::now();
/// // A 10 s lease is trusted for 9 s after its renewal was sent.
/// assert_eq!(local_deadline(sent, Duration::from_secs(10)), sent + Duration::from_secs(9));
/// ```
pub fn local_deadline(sent: Instant, lease: Duration) -> Instant {
    let margin = (lease / 20).min(MAX_MARGIN);
    sent + lease.mul_f64(1.0 - CLOCK_DRIFT).saturating_sub(margin)
}

/// Who a node is, as it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Stable across restarts (`--node-id`).
    pub node_id: String,
    /// Where other nodes reach its internal endpoint.
    pub advertise_url: String,
    /// How long a renewal keeps it a member.
    pub lease: Duration,
}

/// A node's status in `burrow_node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Serving, and claiming actors.
    Alive,
    /// Finishing its turns and handing its actors over; claims nothing new.
    Draining,
    /// Gone; its actors may be claimed at once.
    Left,
}

impl NodeStatus {
    fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Alive => "alive",
            NodeStatus::Draining => "draining",
            NodeStatus::Left => "left",
        }
    }

    fn parse(s: &str) -> Result<NodeStatus, LogError> {
        match s {
            "alive" => Ok(NodeStatus::Alive),
            "draining" => Ok(NodeStatus::Draining),
            "left" => Ok(NodeStatus::Left),
            other => Err(LogError::Corrupt(format!("a node status {other:?}"))),
        }
    }
}

/// Why a renewal did not extend the lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    /// PostgreSQL says the lease is over (expired, or a newer incarnation joined, or the node
    /// left): the node is fenced and must join again.
    #[error("the lease of node {node_id} incarnation {incarnation} is over")]
    Lost {
        /// The node.
        node_id: String,
        /// The incarnation whose lease is over.
        incarnation: u64,
    },
    /// No answer (PostgreSQL unreachable, a timeout): retry until the local deadline.
    #[error("renewing the lease: {0}")]
    Unanswered(LogError),
}

/// A member of the cluster: one incarnation of one node, holding a lease.
#[derive(Debug)]
pub struct Member {
    log: PgTurnLog,
    config: NodeConfig,
    incarnation: u64,
    deadline: Instant,
}

/// One node as `burrow_node` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node's stable id.
    pub node_id: String,
    /// Its current incarnation.
    pub incarnation: u64,
    /// Its internal endpoint.
    pub advertise_url: String,
    /// Its status.
    pub status: NodeStatus,
    /// Whether its lease is still running, by PostgreSQL's clock.
    pub lease_running: bool,
    /// When its lease ends, by PostgreSQL's clock (ms since the Unix epoch).
    pub lease_expires_at_ms: i64,
    /// How many actors its current incarnation holds.
    pub actors_owned: u64,
}

impl Member {
    /// Joins the cluster under a new incarnation of `config.node_id` (1 for a node never seen),
    /// with a lease of `config.lease` from now by PostgreSQL's clock.
    pub async fn join(log: &PgTurnLog, config: NodeConfig) -> Result<Member, LogError> {
        if config.node_id.is_empty() {
            return Err(LogError::Unavailable("a node id must not be empty".into()));
        }
        let db = log.clone();
        let (node_id, url, lease) = (
            config.node_id.clone(),
            config.advertise_url.clone(),
            config.lease,
        );
        let sent_at = Instant::now();
        let incarnation: i64 = log
            .at_home(async move {
                let client = db.client().await?;
                let row = client
                    .query_one(
                        "INSERT INTO burrow_node
                             (node_id, incarnation, advertise_url, status, lease_expires_at)
                         VALUES ($1, 1, $2, 'alive', clock_timestamp() + make_interval(secs => $3))
                         ON CONFLICT (node_id) DO UPDATE
                            SET incarnation = burrow_node.incarnation + 1,
                                advertise_url = excluded.advertise_url, status = 'alive',
                                lease_expires_at = excluded.lease_expires_at,
                                started_at = clock_timestamp()
                         RETURNING incarnation",
                        &[&node_id, &url, &lease.as_secs_f64()],
                    )
                    .await
                    .map_err(sent)?;
                Ok(row.get(0))
            })
            .await?;
        Ok(Member {
            log: log.clone(),
            incarnation: incarnation as u64,
            deadline: local_deadline(sent_at, config.lease),
            config,
        })
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// This member's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Until when (monotonic clock) the node may act on its lease.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the node may still act on its lease now.
    pub fn holds_lease(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Extends the lease by `config.lease` from now (PostgreSQL's clock), only while this
    /// incarnation is alive and its lease has not run out; on success moves the local
    /// deadline.
    pub async fn renew(&mut self) -> Result<Instant, RenewError> {
        let sent_at = Instant::now();
        let changed = update_node(
            &self.log,
            "UPDATE burrow_node
                SET lease_expires_at = clock_timestamp() + make_interval(secs => $3::text::float8)
              WHERE node_id = $1 AND incarnation = $2 AND status = 'alive'
                AND lease_expires_at > clock_timestamp()",
            &self.config.node_id,
            self.incarnation,
            self.config.lease.as_secs_f64().to_string(),
        )
        .await
        .map_err(RenewError::Unanswered)?;
        if changed == 0 {
            return Err(RenewError::Lost {
                node_id: self.config.node_id.clone(),
                incarnation: self.incarnation,
            });
        }
        self.deadline = local_deadline(sent_at, self.config.lease);
        Ok(self.deadline)
    }

    /// Marks the node `status` (draining while it hands its actors over; left once it is
    /// gone, which ends its lease at once so others may take over without waiting).
    pub async fn set_status(&mut self, status: NodeStatus) -> Result<(), LogError> {
        set_status(&self.log, &self.config.node_id, self.incarnation, status).await?;
        if status == NodeStatus::Left {
            self.deadline = Instant::now();
        }
        Ok(())
    }
}

/// Runs `sql`, an `UPDATE` of one incarnation's row (`$1` node id, `$2` incarnation, `$3`
/// the statement's own value, as text), and says how many rows it changed.
async fn update_node(
    log: &PgTurnLog,
    sql: &'static str,
    node_id: &str,
    incarnation: u64,
    value: String,
) -> Result<u64, LogError> {
    let (db, node_id, incarnation) = (log.clone(), node_id.to_owned(), incarnation as i64);
    log.at_home(async move {
        let client = db.client().await?;
        client
            .execute(sql, &[&node_id, &incarnation, &value])
            .await
            .map_err(sent)
    })
    .await
}

/// Sets an incarnation's status; `Left` also ends its lease at once.
async fn set_status(
    log: &PgTurnLog,
    node_id: &str,
    incarnation: u64,
    status: NodeStatus,
) -> Result<(), LogError> {
    update_node(
        log,
        "UPDATE burrow_node
            SET status = $3,
                lease_expires_at = CASE WHEN $3 = 'left' THEN clock_timestamp()
                                        ELSE lease_expires_at END
          WHERE node_id = $1 AND incarnation = $2",
        node_id,
        incarnation,
        status.as_str().to_owned(),
    )
    .await
    .map(drop)
}

/// The nodes whose leases run now by PostgreSQL's clock and which take new actors (`alive`):
/// id and advertised URL, in id order. For spreading first claims; a hint, since a lease may
/// end the moment after.
pub async fn live_nodes(log: &PgTurnLog) -> Result<Vec<(String, String)>, LogError> {
    let db = log.clone();
    log.at_home(async move {
        let client = db.client().await?;
        let rows = client
            .query(
                "SELECT node_id, advertise_url FROM burrow_node
                  WHERE status = 'alive' AND lease_expires_at > clock_timestamp()
                  ORDER BY node_id",
                &[],
            )
            .await
            .map_err(read)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    })
    .await
}

/// Whether a node advertising `advertise_url` holds a running lease now, by PostgreSQL's
/// clock (alive or draining).
pub async fn lease_running_at(log: &PgTurnLog, advertise_url: &str) -> Result<bool, LogError> {
    let (db, url) = (log.clone(), advertise_url.to_owned());
    log.at_home(async move {
        let client = db.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM burrow_node
                                 WHERE advertise_url = $1 AND status <> 'left'
                                   AND lease_expires_at > clock_timestamp())",
                &[&url],
            )
            .await
            .map_err(read)?;
        Ok(row.get(0))
    })
    .await
}

/// Every node `burrow_node` knows, in id order.
pub async fn nodes(log: &PgTurnLog) -> Result<Vec<NodeRow>, LogError> {
    let db = log.clone();
    let rows = log
        .at_home(async move {
            let client = db.client().await?;
            client
                .query(
                    "SELECT n.node_id, n.incarnation, n.advertise_url, n.status,
                            n.lease_expires_at > clock_timestamp(),
                            floor(extract(epoch from n.lease_expires_at) * 1000)::int8,
                            (SELECT count(*) FROM burrow_log_actor a
                              WHERE a.node_id = n.node_id
                                AND a.node_incarnation = n.incarnation)
                       FROM burrow_node n ORDER BY n.node_id",
                    &[],
                )
                .await
                .map_err(read)
        })
        .await?;
    rows.iter()
        .map(|r| {
            Ok(NodeRow {
                node_id: r.get(0),
                incarnation: r.get::<_, i64>(1) as u64,
                advertise_url: r.get(2),
                status: NodeStatus::parse(r.get(3))?,
                lease_running: r.get(4),
                lease_expires_at_ms: r.get(5),
                actors_owned: r.get::<_, i64>(6) as u64,
            })
        })
        .collect()
}

/// What a [`Keeper`] says about its member's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The node may act on its lease until this instant (monotonic clock).
    Held(Instant),
    /// The lease is over — PostgreSQL refused a renewal, or the local deadline passed with no
    /// renewal answered. The node must acknowledge nothing more and join again.
    Lost,
}

/// Renews a member's lease in the background: every third of the lease, and on a failure again
/// every tenth (a renewal that goes unanswered may still land; the next one tells).
#[derive(Debug)]
pub struct Keeper {
    state: tokio::sync::watch::Receiver<LeaseState>,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts renewing `member`'s lease on the current runtime.
    pub fn spawn(mut member: Member) -> Keeper {
        let (tx, state) = tokio::sync::watch::channel(LeaseState::Held(member.deadline()));
        let lease = member.config.lease;
        let task = tokio::spawn(async move {
            let mut wait = lease / 3;
            loop {
                let deadline = member.deadline();
                // Wake no later than the deadline, to report the loss on time.
                let wake = (Instant::now() + wait).min(deadline);
                tokio::time::sleep_until(wake.into()).await;
                if Instant::now() >= member.deadline() {
                    let _ = tx.send(LeaseState::Lost);
                    return;
                }
                let renewal =
                    tokio::time::timeout_at(member.deadline().into(), member.renew()).await;
                match renewal {
                    Ok(Ok(deadline)) => {
                        wait = lease / 3;
                        let _ = tx.send(LeaseState::Held(deadline));
                    }
                    Ok(Err(RenewError::Lost { .. })) => {
                        tracing::warn!(node = %member.config.node_id, incarnation = member.incarnation, "the node's lease is over");
                        let _ = tx.send(LeaseState::Lost);
                        return;
                    }
                    Ok(Err(RenewError::Unanswered(e))) => {
                        tracing::warn!(node = %member.config.node_id, "renewing the node's lease failed, retrying: {e}");
                        wait = lease / 10;
                    }
                    Err(_) => {} // the deadline passed mid-renewal: reported at the loop's top
                }
            }
        });
        Keeper { state, task }
    }

    /// The lease as last known.
    pub fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    /// Waits until the lease is lost.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|s| *s == LeaseState::Lost).await;
    }

    /// Waits for the next report (a renewal, or the loss) and returns it.
    pub async fn next(&mut self) -> LeaseState {
        match self.state.changed().await {
            Ok(()) => *self.state.borrow_and_update(),
            Err(_) => LeaseState::Lost, // the keeper ended, which it does only on a loss
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A node of the cluster kept a member for as long as it runs: it joins, keeps its lease, and
/// when the lease is lost joins again under a new incarnation, moving the claims of
/// [`Node::log`] (and its clones) to it. Whatever it held under the lost incarnation is free for
/// other nodes from then on, and their claims fence it.
#[derive(Debug)]
pub struct Node {
    log: PgTurnLog,
    incarnation: tokio::sync::watch::Receiver<u64>,
    lease: tokio::sync::watch::Receiver<LeaseState>,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Joins as `config` and starts keeping the membership on the current runtime.
    pub async fn start(log: &PgTurnLog, config: NodeConfig) -> Result<Node, LogError> {
        let member = Member::join(log, config.clone()).await?;
        let bound = log.for_member(&member);
        let (tx, incarnation) = tokio::sync::watch::channel(member.incarnation());
        let (lease_tx, lease) = tokio::sync::watch::channel(LeaseState::Held(member.deadline()));
        let (base, rebind) = (log.clone(), bound.clone());
        let task = tokio::spawn(async move {
            let mut member = member;
            loop {
                let lost = member.incarnation();
                let _ = lease_tx.send(LeaseState::Held(member.deadline()));
                let mut keeper = Keeper::spawn(member);
                loop {
                    let state = keeper.next().await;
                    let _ = lease_tx.send(state);
                    if state == LeaseState::Lost {
                        break;
                    }
                }
                metrics::counter!("burrow_cluster_leases_lost_total").increment(1);
                // Join again, as often as it takes: until then every claim is refused.
                member = loop {
                    match Member::join(&base, config.clone()).await {
                        Ok(m) => break m,
                        Err(e) => {
                            tracing::warn!(node = %config.node_id, "joining the cluster again failed: {e}");
                            tokio::time::sleep(config.lease / 10).await;
                        }
                    }
                };
                tracing::warn!(node = %config.node_id, lost, incarnation = member.incarnation(), "the node lost its lease and joined again");
                rebind.rebind(&member);
                let _ = tx.send(member.incarnation());
            }
        });
        Ok(Node {
            log: bound,
            incarnation,
            lease,
            task,
        })
    }

    /// The log to give the node's runtime: its claims are this node's.
    pub fn log(&self) -> &PgTurnLog {
        &self.log
    }

    /// Whether the node may act on its lease now: it holds one and its local deadline has not
    /// passed. A node that may not must acknowledge nothing and serve nothing.
    pub fn holds_lease(&self) -> bool {
        match *self.lease.borrow() {
            LeaseState::Held(deadline) => Instant::now() < deadline,
            LeaseState::Lost => false,
        }
    }

    /// Marks the node draining: it keeps its lease (no longer renewed: a draining node is on
    /// its way out) and its actors for the turns in flight, but claims nothing new (its claims
    /// are refused) until it [leaves](Node::leave).
    pub async fn drain(&self) -> Result<(), LogError> {
        self.step_down(NodeStatus::Draining).await
    }

    /// The incarnation the node is a member under now.
    pub fn incarnation(&self) -> u64 {
        *self.incarnation.borrow()
    }

    /// Leaves the cluster: stops keeping the lease and marks the current incarnation `left`,
    /// which ends its lease at once, so that other nodes claim its actors without waiting.
    pub async fn leave(&self) -> Result<(), LogError> {
        self.step_down(NodeStatus::Left).await
    }

    /// Stops keeping the lease and sets the current incarnation's status.
    async fn step_down(&self, status: NodeStatus) -> Result<(), LogError> {
        self.task.abort();
        let Some(node) = self.log.current_node() else {
            return Ok(());
        };
        set_status(&self.log, &node.node_id, node.incarnation as u64, status).await
    }

    /// The node's lease as its keeper reports it.
    pub fn leases(&self) -> tokio::sync::watch::Receiver<LeaseState> {
        self.lease.clone()
    }

    /// The node's incarnation as it changes (each change: the lease was lost and the node
    /// joined again).
    pub fn incarnations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.incarnation.clone()
    }

    /// Waits until the node is a member under an incarnation newer than `than`.
    pub async fn rejoined(&mut self, than: u64) -> u64 {
        let _ = self.incarnation.wait_for(|i| *i > than).await;
        self.incarnation()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}
