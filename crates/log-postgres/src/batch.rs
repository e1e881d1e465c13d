//! Group commit across actors: appends from every shard of the process that are waiting at the
//! same moment share one statement — one PostgreSQL round trip and one commit — with a fence
//! result per actor. Appends that carry alarm changes take the single-actor path. Claims that
//! wait at the same moment share a statement too (see `claims.rs`): a host taking over
//! thousands of actors at once pays a commit per group, not per actor.

use std::sync::Arc;

use burrow_runtime::turn_log::{Claim, Entry, LogError, LogKey, Position};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::statements::{self, head_on, seq_in};
use crate::{PgTurnLog, claims, sent};

/// The most appends (or claims) one statement carries.
const MAX_BATCH: usize = 256;

/// Statements in flight at once (each holds a pooled connection; the pool has 16). Fewer
/// statements carry more appends each, and PostgreSQL's cost is mostly per statement: with
/// 64 callers on 1,000 actors, 8 in flight gave 6,100 turns/s, 2 gave 7,400 and 4 gave 8,100
/// (benches/throughput, 2026-12-02).
const IN_FLIGHT: usize = 4;

/// An operation waiting for its group.
pub(crate) enum Pending {
    Append(Append),
    Claim(claims::Request),
}

/// One actor's append, waiting for its batch.
pub(crate) struct Append {
    pub(crate) key: LogKey,
    pub(crate) epoch: u64,
    pub(crate) expected: Position,
    pub(crate) entries: Vec<Entry>,
    pub(crate) reply: oneshot::Sender<Result<Position, LogError>>,
}

/// What a claim waits for.
pub(crate) type ClaimReply = oneshot::Sender<Result<Claim, LogError>>;

/// Starts the batcher on the current runtime; appends and claims are sent to the returned
/// channel.
pub(crate) fn start(log: PgTurnLog) -> mpsc::UnboundedSender<Pending> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Wait for a free statement slot first: operations that arrive meanwhile join.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (mut appends, mut claimed) = (Vec::new(), Vec::new());
            let mut next = Some(first);
            while let Some(pending) = next.take() {
                match pending {
                    Pending::Append(a) => appends.push(a),
                    Pending::Claim(c) => claimed.push(c),
                }
                if appends.len() < MAX_BATCH && claimed.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            let log = log.clone();
            tokio::spawn(async move {
                // Both statements at once, on two connections: a claim never waits for a
                // batch of appends, nor the other way round.
                let appended = async {
                    if !appends.is_empty() {
                        run(&log, appends).await;
                    }
                };
                let claiming = async {
                    if !claimed.is_empty() {
                        claims::run(&log, claimed).await;
                    }
                };
                tokio::join!(appended, claiming);
                drop(permit);
            });
        }
    });
    tx
}

/// Appends one batch and answers each of its appends.
async fn run(log: &PgTurnLog, batch: Vec<Append>) {
    metrics::histogram!("burrow_log_batch_size").record(batch.len() as f64);
    log.batches[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    log.batches[1].fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    match together(log, &batch).await {
        Ok(landed) => {
            for (pending, landed) in batch.into_iter().zip(landed) {
                let _ = pending.reply.send(landed);
            }
        }
        // A statement error fails the statement for everyone, whoever caused it: each append
        // then goes alone, so that one actor's error is its own.
        Err(LogError::Unavailable(_)) => {
            for p in batch {
                let alone = statements::append(
                    log,
                    &p.key,
                    p.epoch,
                    p.expected,
                    &p.entries,
                    &burrow_runtime::turn_log::AlarmUpdate::Unchanged,
                )
                .await;
                let _ = p.reply.send(alone);
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}

/// The batch's statement: each actor's head moves only where its epoch and head are still the
/// writer's, and its entries are inserted only for a head that moved. Per append: the new head,
/// or why it was refused.
async fn together(
    log: &PgTurnLog,
    batch: &[Append],
) -> Result<Vec<Result<Position, LogError>>, LogError> {
    let (mut ns, mut id, mut epoch, mut exp_seq, mut exp_hash) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut new_seq, mut new_hash, mut image) = (vec![], vec![], vec![]);
    let (mut e_ns, mut e_id, mut e_seq, mut e_epoch) = (vec![], vec![], vec![], vec![]);
    let (mut e_hash, mut e_kind, mut e_body) = (vec![], vec![], vec![]);
    for p in batch {
        let last = p.entries.last().expect("an append holds entries");
        let key_id = p.key.id.to_string();
        ns.push(&*p.key.namespace);
        id.push(key_id.clone());
        epoch.push(seq_in(p.epoch)?);
        exp_seq.push(seq_in(p.expected.seq)?);
        exp_hash.push(&p.expected.hash[..]);
        new_seq.push(seq_in(last.seq)?);
        new_hash.push(&last.hash[..]);
        image.push(
            p.entries
                .iter()
                .rev()
                .find(|e| e.payload.is_image())
                .map(|e| seq_in(e.seq))
                .transpose()?,
        );
        for e in &p.entries {
            e_ns.push(&*p.key.namespace);
            e_id.push(key_id.clone());
            e_seq.push(seq_in(e.seq)?);
            e_epoch.push(seq_in(p.epoch)?);
            e_hash.push(&e.hash[..]);
            e_kind.push(if e.payload.is_image() {
                "image"
            } else {
                "patchset"
            });
            e_body.push(e.payload.bytes());
        }
    }
    let client = log.client().await?;
    // Prepared once per connection: parsing and planning the statement anew for every batch
    // cost PostgreSQL more than running it.
    let together = client
        .prepare_cached(
            "WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bytea[],
                                     $6::int8[], $7::bytea[], $8::int8[])
                    AS i(ns, id, epoch, exp_seq, exp_hash, new_seq, new_hash, img)
             ), fence AS (
                UPDATE burrow_log_actor a
                   SET head_seq = i.new_seq, head_hash = i.new_hash,
                       image_seq = coalesce(i.img, a.image_seq), updated_at = clock_timestamp()
                  FROM input i
                 WHERE a.namespace = i.ns AND a.actor_id = i.id AND a.epoch = i.epoch
                   AND a.head_seq = i.exp_seq AND a.head_hash = i.exp_hash
                RETURNING a.namespace, a.actor_id
             ), ins AS (
                INSERT INTO burrow_log_entry (namespace, actor_id, seq, epoch, hash, kind, body)
                SELECT e.ns, e.id, e.seq, e.epoch, e.hash, e.kind, e.body
                  FROM unnest($9::text[], $10::text[], $11::int8[], $12::int8[], $13::bytea[],
                              $14::text[], $15::bytea[]) AS e(ns, id, seq, epoch, hash, kind, body)
                  JOIN fence f ON f.namespace = e.ns AND f.actor_id = e.id
                RETURNING 1
             )
             SELECT namespace, actor_id FROM fence",
        )
        .await
        .map_err(sent)?;
    let rows = client
        .query(
            &together,
            &[
                &ns, &id, &epoch, &exp_seq, &exp_hash, &new_seq, &new_hash, &image, &e_ns, &e_id,
                &e_seq, &e_epoch, &e_hash, &e_kind, &e_body,
            ],
        )
        .await
        .map_err(sent)?;
    let landed: std::collections::HashSet<(String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut results = Vec::with_capacity(batch.len());
    for p in batch {
        let key = (p.key.namespace.to_string(), p.key.id.to_string());
        if landed.contains(&key) {
            results.push(Ok(p.entries.last().expect("checked").position()));
        } else {
            let (current, head) = head_on(&client, &p.key)
                .await?
                .unwrap_or((0, Position::GENESIS));
            metrics::counter!("burrow_cluster_fenced_appends_total").increment(1);
            results.push(Err(LogError::Fenced {
                epoch: p.epoch,
                expected: p.expected,
                current,
                head,
            }));
        }
    }
    Ok(results)
}
