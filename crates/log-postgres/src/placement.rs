//! Placement in a cluster: which node holds each actor's activation. A node's claim is the
//! log's claim made conditional — on the actor being free, or its holder's incarnation being
//! gone, or its holder's lease having run out by PostgreSQL's clock, and on the claimer's own
//! lease running — so the epoch it raises fences a deposed holder's appends exactly as the
//! replicated log fences any stale activation.

use burrow_runtime::turn_log::{Claim, LogError, LogKey, OrphanedAlarm, Position};

use crate::statements::{claim_out, seq_in};
use crate::{PgTurnLog, read, sent};

/// The node a [`PgTurnLog`] claims for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeRef {
    pub(crate) node_id: String,
    pub(crate) incarnation: i64,
}

/// Claims the actor for `node`, or says who holds it.
pub(crate) async fn claim(
    log: &PgTurnLog,
    node: &NodeRef,
    key: &LogKey,
    name: Option<&str>,
) -> Result<Claim, LogError> {
    let client = log.client().await?;
    let upsert = client
        .prepare_cached(
            "WITH claimed AS (INSERT INTO burrow_log_actor
                 (namespace, actor_id, epoch, head_seq, head_hash, name, node_id, node_incarnation)
             SELECT $1, $2, 1, 0, $3, $4, $5, $6
              WHERE EXISTS (SELECT 1 FROM burrow_node me
                             WHERE me.node_id = $5 AND me.incarnation = $6
                               AND me.status = 'alive' AND me.lease_expires_at > clock_timestamp())
             ON CONFLICT (namespace, actor_id) DO UPDATE
                SET epoch = burrow_log_actor.epoch + 1, updated_at = clock_timestamp(),
                    name = coalesce(burrow_log_actor.name, excluded.name),
                    node_id = excluded.node_id, node_incarnation = excluded.node_incarnation,
                    previous_node_id = CASE
                        WHEN (burrow_log_actor.node_id, burrow_log_actor.node_incarnation)
                             IS DISTINCT FROM (excluded.node_id, excluded.node_incarnation)
                        THEN burrow_log_actor.node_id END
              WHERE burrow_log_actor.node_id IS NULL
                 OR (burrow_log_actor.node_id = excluded.node_id
                     AND burrow_log_actor.node_incarnation = excluded.node_incarnation)
                 OR NOT EXISTS (SELECT 1 FROM burrow_node holder
                                 WHERE holder.node_id = burrow_log_actor.node_id
                                   AND holder.incarnation = burrow_log_actor.node_incarnation
                                   AND holder.status <> 'left'
                                   AND holder.lease_expires_at > clock_timestamp())
             RETURNING epoch, head_seq, head_hash, image_seq, previous_node_id, name, actor_id)
             -- A takeover moves the actor: nodes that remembered where it was forget it.
             SELECT epoch, head_seq, head_hash, image_seq, previous_node_id,
                    CASE WHEN previous_node_id IS NOT NULL
                         THEN pg_notify('burrow_placement', coalesce(name, actor_id)) END
               FROM claimed",
        )
        .await
        .map_err(sent)?;
    let row = client
        .query_opt(
            &upsert,
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &&Position::GENESIS.hash[..],
                &name,
                &node.node_id,
                &node.incarnation,
            ],
        )
        .await
        .map_err(sent)?;
    if let Some(row) = row {
        metrics::counter!("burrow_cluster_claims_total").increment(1);
        if let Some(from) = row.get::<_, Option<String>>(4) {
            metrics::counter!("burrow_cluster_takeovers_total").increment(1);
            tracing::info!(namespace = %key.namespace, id = %key.id, from = %from, "took the actor over");
        }
        return claim_out(&row, 0);
    }
    // Refused: either this node's own lease is over, or someone else holds the actor.
    let why = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM burrow_node
                             WHERE node_id = $1 AND incarnation = $2 AND status = 'alive'
                               AND lease_expires_at > clock_timestamp()),
                    a.node_id, n.advertise_url
               FROM (SELECT 1) one
               LEFT JOIN burrow_log_actor a ON a.namespace = $3 AND a.actor_id = $4
               LEFT JOIN burrow_node n ON n.node_id = a.node_id",
            &[
                &node.node_id,
                &node.incarnation,
                &&*key.namespace,
                &key.id.to_string(),
            ],
        )
        .await
        .map_err(read)?;
    if !why.get::<_, bool>(0) {
        return Err(LogError::Unavailable(format!(
            "node {} incarnation {} holds no lease: it must join the cluster again",
            node.node_id, node.incarnation
        )));
    }
    match (
        why.get::<_, Option<String>>(1),
        why.get::<_, Option<String>>(2),
    ) {
        (Some(node_id), Some(advertise_url)) => Err(LogError::Owned {
            node_id,
            advertise_url,
        }),
        // The holder let go between the two statements: the caller may simply try again.
        _ => Err(LogError::Unavailable(format!(
            "actor {}/{} changed hands while being claimed; try again",
            key.namespace, key.id
        ))),
    }
}

/// Frees the actor if `node` still holds it at `epoch`.
pub(crate) async fn release(
    log: &PgTurnLog,
    node: &NodeRef,
    key: &LogKey,
    epoch: u64,
) -> Result<(), LogError> {
    let client = log.client().await?;
    client
        .execute(
            "WITH released AS (
                 UPDATE burrow_log_actor SET node_id = NULL, node_incarnation = NULL
                  WHERE namespace = $1 AND actor_id = $2 AND epoch = $3
                    AND node_id = $4 AND node_incarnation = $5
              RETURNING coalesce(name, actor_id) AS actor)
             SELECT pg_notify('burrow_placement', actor) FROM released",
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &seq_in(epoch)?,
                &node.node_id,
                &node.incarnation,
            ],
        )
        .await
        .map_err(sent)?;
    Ok(())
}

/// Due alarms (by `due_by_ms`) of actors that no live node holds: free, or held by an
/// incarnation that has left or whose lease is over.
pub(crate) async fn orphaned_alarms(
    log: &PgTurnLog,
    due_by_ms: i64,
    limit: usize,
) -> Result<Vec<OrphanedAlarm>, LogError> {
    let client = log.client().await?;
    let rows = client
        .query(
            "SELECT a.namespace, a.actor_id, a.name, a.due_ms
               FROM burrow_log_alarm a
               JOIN burrow_log_actor la USING (namespace, actor_id)
              WHERE a.due_ms <= $1
                AND NOT EXISTS (SELECT 1 FROM burrow_node holder
                                 WHERE holder.node_id = la.node_id
                                   AND holder.incarnation = la.node_incarnation
                                   AND holder.status <> 'left'
                                   AND holder.lease_expires_at > clock_timestamp())
              ORDER BY a.due_ms
              LIMIT $2",
            &[&due_by_ms, &(limit as i64)],
        )
        .await
        .map_err(read)?;
    rows.iter()
        .map(|r| {
            let (namespace, id): (String, String) = (r.get(0), r.get(1));
            let id = id
                .parse()
                .map_err(|e| LogError::Corrupt(format!("actor id {id:?} in the log: {e}")))?;
            Ok(OrphanedAlarm {
                key: LogKey {
                    namespace: namespace.into(),
                    id,
                },
                name: r.get(2),
                due_ms: r.get(3),
            })
        })
        .collect()
}
