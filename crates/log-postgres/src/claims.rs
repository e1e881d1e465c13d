//! Claims grouped into one statement: each actor's epoch is raised (or its row created) in one
//! upsert for the whole group, with the claim of each actor in the answer.

use std::collections::{HashMap, HashSet};

use burrow_runtime::turn_log::{Claim, LogError, LogKey, Position};

use crate::batch::ClaimReply;
use crate::statements::{self, claim_out};
use crate::{PgTurnLog, sent};

/// One actor's claim, waiting for its group.
pub(crate) struct Request {
    pub(crate) key: LogKey,
    pub(crate) name: Option<String>,
    pub(crate) reply: ClaimReply,
}

/// Claims one group and answers each of its claims.
pub(crate) async fn run(log: &PgTurnLog, group: Vec<Request>) {
    metrics::histogram!("burrow_log_claim_batch_size").record(group.len() as f64);
    log.batches[2].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    log.batches[3].fetch_add(group.len() as u64, std::sync::atomic::Ordering::Relaxed);
    // An upsert may touch a row once: a second claim of the same actor (two runtimes sharing
    // the log) goes in a later round, after the first, and gets the next epoch.
    let mut rest = group;
    while !rest.is_empty() {
        let mut seen = HashSet::new();
        let (round, later): (Vec<Request>, Vec<Request>) = rest
            .into_iter()
            .partition(|r| seen.insert((r.key.namespace.clone(), r.key.id)));
        rest = later;
        match together(log, &round).await {
            Ok(mut claims) => {
                for r in round {
                    let claim = claims
                        .remove(&(r.key.namespace.to_string(), r.key.id.to_string()))
                        .unwrap_or_else(|| {
                            Err(LogError::Corrupt(format!(
                                "the grouped claim returned no row for {}/{}",
                                r.key.namespace, r.key.id
                            )))
                        });
                    let _ = r.reply.send(claim);
                }
            }
            // A statement error (a row locked by another host past the group's short lock
            // timeout, a deadlock with another host's group) fails it for everyone: each claim
            // then goes alone and at once, so that one actor's wait or error is its own.
            Err(LogError::Unavailable(_)) => {
                let alone = round.into_iter().map(|r| async move {
                    let claim = statements::claim(log, &r.key, r.name.as_deref()).await;
                    let _ = r.reply.send(claim);
                });
                futures_util::future::join_all(alone).await;
            }
            Err(e) => {
                for r in round {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The group's upsert, rows taken in key order so that two hosts' groups lock shared rows in
/// the same order. Per actor: its claim.
async fn together(
    log: &PgTurnLog,
    round: &[Request],
) -> Result<HashMap<(String, String), Result<Claim, LogError>>, LogError> {
    let namespaces: Vec<&str> = round.iter().map(|r| &*r.key.namespace).collect();
    let ids: Vec<String> = round.iter().map(|r| r.key.id.to_string()).collect();
    let names: Vec<Option<&str>> = round.iter().map(|r| r.name.as_deref()).collect();
    let mut client = log.client().await?;
    let upsert = client
        .prepare_cached(
            "INSERT INTO burrow_log_actor (namespace, actor_id, epoch, head_seq, head_hash, name)
             SELECT ns, id, 1, 0, $4, name
               FROM unnest($1::text[], $2::text[], $3::text[]) AS i(ns, id, name)
              ORDER BY ns, id
             ON CONFLICT (namespace, actor_id) DO UPDATE
                SET epoch = burrow_log_actor.epoch + 1, updated_at = clock_timestamp(),
                    name = coalesce(burrow_log_actor.name, excluded.name)
             RETURNING namespace, actor_id, epoch, head_seq, head_hash, image_seq",
        )
        .await
        .map_err(sent)?;
    // A row another host holds locked must not hold up the whole group for the full lock
    // timeout (the claim's own bound): the group gives up early and its claims go alone.
    let tx = client.transaction().await.map_err(sent)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        (log.timeout / 4).as_millis().max(1)
    ))
    .await
    .map_err(sent)?;
    let rows = tx
        .query(
            &upsert,
            &[&namespaces, &ids, &names, &&Position::GENESIS.hash[..]],
        )
        .await
        .map_err(sent)?;
    tx.commit().await.map_err(sent)?;
    Ok(rows
        .iter()
        .map(|row| ((row.get(0), row.get(1)), claim_out(row, 2)))
        .collect())
}
