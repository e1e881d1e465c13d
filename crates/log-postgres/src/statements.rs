//! The log's SQL, one function per [`TurnLog`](burrow_runtime::turn_log::TurnLog) operation.

use burrow_runtime::turn_log::{
    AlarmUpdate, Claim, Entry, EntryHash, LogError, LogKey, LoggedActor, Payload, Position,
};
use tokio_postgres::Row;

use crate::{PgTurnLog, read, sent};

pub(crate) fn seq_in(seq: u64) -> Result<i64, LogError> {
    i64::try_from(seq)
        .map_err(|_| LogError::Corrupt(format!("sequence number {seq} is out of range")))
}

fn seq_out(seq: i64) -> Result<u64, LogError> {
    u64::try_from(seq).map_err(|_| LogError::Corrupt(format!("negative sequence number {seq}")))
}

fn hash_out(bytes: &[u8]) -> Result<EntryHash, LogError> {
    bytes
        .try_into()
        .map_err(|_| LogError::Corrupt(format!("an entry hash of {} bytes", bytes.len())))
}

fn position(seq: i64, hash: &[u8]) -> Result<Position, LogError> {
    Ok(Position {
        seq: seq_out(seq)?,
        hash: hash_out(hash)?,
    })
}

pub(crate) async fn claim(
    log: &PgTurnLog,
    key: &LogKey,
    name: Option<&str>,
) -> Result<Claim, LogError> {
    let client = log.client().await?;
    let claim = client
        .prepare_cached(
            "INSERT INTO burrow_log_actor (namespace, actor_id, epoch, head_seq, head_hash, name)
             VALUES ($1, $2, 1, 0, $3, $4)
             ON CONFLICT (namespace, actor_id) DO UPDATE
                SET epoch = burrow_log_actor.epoch + 1, updated_at = clock_timestamp(),
                    name = coalesce(burrow_log_actor.name, excluded.name)
             RETURNING epoch, head_seq, head_hash, image_seq",
        )
        .await
        .map_err(sent)?;
    let row = client
        .query_one(
            &claim,
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &&Position::GENESIS.hash[..],
                &name,
            ],
        )
        .await
        .map_err(sent)?;
    claim_out(&row, 0)
}

/// The claim in `row`'s columns `at..at + 4`: epoch, head sequence, head hash, image sequence.
pub(crate) fn claim_out(row: &Row, at: usize) -> Result<Claim, LogError> {
    Ok(Claim {
        epoch: seq_out(row.get(at))?,
        head: position(row.get(at + 1), row.get(at + 2))?,
        snapshot: row.get::<_, Option<i64>>(at + 3).map(seq_out).transpose()?,
    })
}

pub(crate) async fn append(
    log: &PgTurnLog,
    key: &LogKey,
    epoch: u64,
    expected: Position,
    entries: &[Entry],
    alarms: &AlarmUpdate,
) -> Result<Position, LogError> {
    if entries.is_empty() {
        return Ok(expected);
    }
    check_chain(expected, entries)?;
    let client = log.client().await?;
    // With alarm changes, a transaction holds the fenced append and them; without (most
    // turns), the append alone is one statement, one round trip.
    let in_tx = *alarms != AlarmUpdate::Unchanged;
    if in_tx {
        client.batch_execute("BEGIN").await.map_err(sent)?;
    }
    let outcome = fenced_append(&client, key, epoch, expected, entries, alarms, in_tx).await;
    if in_tx {
        let end = if matches!(outcome, Ok(Some(_))) {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        client.batch_execute(end).await.map_err(sent)?;
    }
    match outcome? {
        Some(head) => Ok(head),
        None => {
            // On the same connection: a second one from the pool could wait on appenders
            // that each hold one and wait for a second.
            let (current, head) = head_on(&client, key)
                .await?
                .unwrap_or((0, Position::GENESIS));
            metrics::counter!("burrow_cluster_fenced_appends_total").increment(1);
            Err(LogError::Fenced {
                epoch,
                expected,
                current,
                head,
            })
        }
    }
}

/// The append: one statement, so one atomic step — the head moves only where the epoch and
/// the head are still the writer's, and the entries are inserted only for a head that moved.
const FENCED_APPEND: &str = "WITH fence AS (
        UPDATE burrow_log_actor
           SET head_seq = $6, head_hash = $7, image_seq = coalesce($8, image_seq),
               updated_at = clock_timestamp()
         WHERE namespace = $1 AND actor_id = $2 AND epoch = $3
           AND head_seq = $4 AND head_hash = $5
        RETURNING 1
     )
     INSERT INTO burrow_log_entry (namespace, actor_id, seq, epoch, hash, kind, body)
     SELECT $1, $2, e.seq, $3, e.hash, e.kind, e.body
       FROM fence, unnest($9::int8[], $10::bytea[], $11::text[], $12::bytea[])
            AS e(seq, hash, kind, body)";

/// The mutant the fault run and the model must catch (`faults` builds, switched on by
/// `BURROW_FAULT_UNFENCED_APPEND=1`): the append without its epoch and head conditions, last
/// writer wins — what a log without fencing does.
#[cfg_attr(not(feature = "faults"), allow(dead_code))]
const UNFENCED_APPEND: &str = "WITH fence AS (
        UPDATE burrow_log_actor
           SET head_seq = $6, head_hash = $7, image_seq = coalesce($8, image_seq),
               updated_at = clock_timestamp()
         WHERE namespace = $1 AND actor_id = $2
           AND $3::int8 IS NOT NULL AND $4::int8 IS NOT NULL AND $5::bytea IS NOT NULL
        RETURNING 1
     )
     INSERT INTO burrow_log_entry (namespace, actor_id, seq, epoch, hash, kind, body)
     SELECT $1, $2, e.seq, $3, e.hash, e.kind, e.body
       FROM fence, unnest($9::int8[], $10::bytea[], $11::text[], $12::bytea[])
            AS e(seq, hash, kind, body)
     ON CONFLICT (namespace, actor_id, seq) DO UPDATE
        SET epoch = EXCLUDED.epoch, hash = EXCLUDED.hash, kind = EXCLUDED.kind,
            body = EXCLUDED.body";

/// The append's statements: `Some(new head)`, or `None` when the fence refused it.
async fn fenced_append(
    db: &deadpool_postgres::ClientWrapper,
    key: &LogKey,
    epoch: u64,
    expected: Position,
    entries: &[Entry],
    alarms: &AlarmUpdate,
    in_tx: bool,
) -> Result<Option<Position>, LogError> {
    let last = entries.last().expect("checked by the caller");
    let image = entries
        .iter()
        .rev()
        .find(|e| e.payload.is_image())
        .map(|e| e.seq);
    let seqs: Vec<i64> = entries
        .iter()
        .map(|e| seq_in(e.seq))
        .collect::<Result<_, _>>()?;
    let hashes: Vec<&[u8]> = entries.iter().map(|e| &e.hash[..]).collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| {
            if e.payload.is_image() {
                "image"
            } else {
                "patchset"
            }
        })
        .collect();
    let bodies: Vec<&[u8]> = entries.iter().map(|e| e.payload.bytes()).collect();
    let statement = if crate::faults::unfenced_append() {
        UNFENCED_APPEND
    } else {
        FENCED_APPEND
    };
    let append = db.prepare_cached(statement).await.map_err(sent)?;
    let inserted = db
        .execute(
            &append,
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &seq_in(epoch)?,
                &seq_in(expected.seq)?,
                &&expected.hash[..],
                &seq_in(last.seq)?,
                &&last.hash[..],
                &image.map(seq_in).transpose()?,
                &seqs,
                &hashes,
                &kinds,
                &bodies,
            ],
        )
        .await
        .map_err(sent)?;
    if inserted == entries.len() as u64 {
        if in_tx {
            write_alarms(db, key, alarms).await?;
        }
        return Ok(Some(last.position()));
    }
    debug_assert_eq!(inserted, 0, "an append lands whole or not at all");
    Ok(None)
}

/// Applies an append's alarm changes inside its transaction.
async fn write_alarms(
    tx: &tokio_postgres::Client,
    key: &LogKey,
    alarms: &AlarmUpdate,
) -> Result<(), LogError> {
    let (ns, id) = (&*key.namespace, key.id.to_string());
    let (set, deleted): (Vec<(&str, i64)>, Vec<&str>) = match alarms {
        AlarmUpdate::Unchanged => return Ok(()),
        AlarmUpdate::Replace(all) => {
            tx.execute(
                "DELETE FROM burrow_log_alarm WHERE namespace = $1 AND actor_id = $2",
                &[&ns, &id],
            )
            .await
            .map_err(sent)?;
            (
                all.iter().map(|(n, d)| (n.as_str(), *d)).collect(),
                Vec::new(),
            )
        }
        AlarmUpdate::Changes(changes) => {
            // The last change of a name wins, as it did in the actor's file.
            let mut last = std::collections::BTreeMap::new();
            for (name, due) in changes {
                last.insert(name.as_str(), *due);
            }
            let set = last
                .iter()
                .filter_map(|(n, d)| d.map(|d| (*n, d)))
                .collect();
            let deleted = last
                .iter()
                .filter(|(_, d)| d.is_none())
                .map(|(n, _)| *n)
                .collect();
            (set, deleted)
        }
    };
    if !deleted.is_empty() {
        tx.execute(
            "DELETE FROM burrow_log_alarm
              WHERE namespace = $1 AND actor_id = $2 AND name = ANY($3)",
            &[&ns, &id, &deleted],
        )
        .await
        .map_err(sent)?;
    }
    if !set.is_empty() {
        let (names, dues): (Vec<&str>, Vec<i64>) = set.into_iter().unzip();
        tx.execute(
            "INSERT INTO burrow_log_alarm (namespace, actor_id, name, due_ms)
             SELECT $1, $2, a.name, a.due FROM unnest($3::text[], $4::int8[]) AS a(name, due)
             ON CONFLICT (namespace, actor_id, name) DO UPDATE SET due_ms = excluded.due_ms",
            &[&ns, &id, &names, &dues],
        )
        .await
        .map_err(sent)?;
    }
    Ok(())
}

/// Every actor with a non-empty log, with its alarms.
pub(crate) async fn inventory(log: &PgTurnLog) -> Result<Vec<LoggedActor>, LogError> {
    let client = log.client().await?;
    let rows = client
        .query(
            "SELECT a.namespace, a.actor_id, a.name,
                    floor(extract(epoch from a.created_at) * 1000)::int8,
                    coalesce(array_agg(l.name ORDER BY l.name) FILTER (WHERE l.name IS NOT NULL), '{}'),
                    coalesce(array_agg(l.due_ms ORDER BY l.name) FILTER (WHERE l.name IS NOT NULL), '{}')
               FROM burrow_log_actor a
               LEFT JOIN burrow_log_alarm l
                 ON l.namespace = a.namespace AND l.actor_id = a.actor_id
              WHERE a.head_seq > 0
              GROUP BY a.namespace, a.actor_id, a.name, a.created_at
              ORDER BY a.namespace, a.actor_id",
            &[],
        )
        .await
        .map_err(read)?;
    rows.iter()
        .map(|row| {
            let namespace: String = row.get(0);
            let id: String = row.get(1);
            let names: Vec<String> = row.get(4);
            let dues: Vec<i64> = row.get(5);
            Ok(LoggedActor {
                key: LogKey {
                    namespace: namespace.into(),
                    id: id
                        .parse()
                        .map_err(|_| LogError::Corrupt(format!("an actor id {id:?} in the log")))?,
                },
                name: row.get(2),
                created_at_ms: row.get(3),
                alarms: names.into_iter().zip(dues).collect(),
            })
        })
        .collect()
}

/// Refuses entries that do not continue `expected` (before anything is sent).
pub(crate) fn check_chain(expected: Position, entries: &[Entry]) -> Result<(), LogError> {
    let mut previous = expected;
    for entry in entries {
        if !entry.follows(previous) {
            return Err(LogError::Corrupt(format!(
                "entry {} does not follow {previous:?} (its hash or number is wrong)",
                entry.seq
            )));
        }
        previous = entry.position();
    }
    Ok(())
}

fn entry(row: &Row) -> Result<Entry, LogError> {
    let body: Vec<u8> = row.get(4);
    let kind: &str = row.get(3);
    Ok(Entry {
        seq: seq_out(row.get(0))?,
        epoch: seq_out(row.get(1))?,
        hash: hash_out(row.get(2))?,
        payload: match kind {
            "image" => Payload::Image(body),
            _ => Payload::Patchset(body),
        },
    })
}

pub(crate) async fn read_range(
    log: &PgTurnLog,
    key: &LogKey,
    from: u64,
    to: u64,
) -> Result<Vec<Entry>, LogError> {
    let client = log.client().await?;
    let rows = client
        .query(
            "SELECT seq, epoch, hash, kind, body FROM burrow_log_entry
              WHERE namespace = $1 AND actor_id = $2 AND seq BETWEEN $3 AND $4
              ORDER BY seq",
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &seq_in(from)?,
                &seq_in(to)?,
            ],
        )
        .await
        .map_err(read)?;
    let entries: Vec<Entry> = rows.iter().map(entry).collect::<Result<_, _>>()?;
    for (i, e) in entries.iter().enumerate() {
        if e.seq != from + i as u64 {
            return Err(LogError::Corrupt(format!(
                "entry {} is missing from the log of {}/{}",
                from + i as u64,
                key.namespace,
                key.id
            )));
        }
    }
    Ok(entries)
}

pub(crate) async fn image_at(
    log: &PgTurnLog,
    key: &LogKey,
    seq: u64,
) -> Result<Option<Entry>, LogError> {
    let client = log.client().await?;
    let row = client
        .query_opt(
            "SELECT seq, epoch, hash, kind, body FROM burrow_log_entry
              WHERE namespace = $1 AND actor_id = $2 AND kind = 'image' AND seq <= $3
              ORDER BY seq DESC LIMIT 1",
            &[&&*key.namespace, &key.id.to_string(), &seq_in(seq)?],
        )
        .await
        .map_err(read)?;
    row.as_ref().map(entry).transpose()
}

pub(crate) async fn head(
    log: &PgTurnLog,
    key: &LogKey,
) -> Result<Option<(u64, Position)>, LogError> {
    let client = log.client().await?;
    head_on(&client, key).await
}

pub(crate) async fn head_on(
    client: &tokio_postgres::Client,
    key: &LogKey,
) -> Result<Option<(u64, Position)>, LogError> {
    let row = client
        .query_opt(
            "SELECT epoch, head_seq, head_hash FROM burrow_log_actor
              WHERE namespace = $1 AND actor_id = $2",
            &[&&*key.namespace, &key.id.to_string()],
        )
        .await
        .map_err(read)?;
    row.map(|row| Ok((seq_out(row.get(0))?, position(row.get(1), row.get(2))?)))
        .transpose()
}

pub(crate) async fn delete(log: &PgTurnLog, key: &LogKey) -> Result<(), LogError> {
    let mut client = log.client().await?;
    let tx = client.transaction().await.map_err(sent)?;
    tx.execute(
        "INSERT INTO burrow_log_actor (namespace, actor_id, epoch, head_seq, head_hash)
         VALUES ($1, $2, 1, 0, $3)
         ON CONFLICT (namespace, actor_id) DO UPDATE
            SET epoch = burrow_log_actor.epoch + 1, head_seq = 0, head_hash = $3,
                image_seq = NULL, updated_at = clock_timestamp()",
        &[
            &&*key.namespace,
            &key.id.to_string(),
            &&Position::GENESIS.hash[..],
        ],
    )
    .await
    .map_err(sent)?;
    for table in ["burrow_log_entry", "burrow_log_alarm"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE namespace = $1 AND actor_id = $2"),
            &[&&*key.namespace, &key.id.to_string()],
        )
        .await
        .map_err(sent)?;
    }
    tx.commit().await.map_err(sent)
}

/// Deletes every actor's entries older than its latest image taken at or before
/// `now - retention`: that image stays, so every point inside the window still has an image at
/// or before it, and everything after it stays too. Returns how many entries went. Only one
/// compaction runs at a time across all hosts (a transaction-level advisory lock; a second one
/// finds it taken and does nothing).
pub(crate) async fn compact(
    log: &PgTurnLog,
    retention: std::time::Duration,
) -> Result<u64, LogError> {
    let mut client = log.client().await?;
    let tx = client.transaction().await.map_err(sent)?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('burrow_log_compactor'))",
            &[],
        )
        .await
        .map_err(sent)?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let seconds = retention.as_secs_f64();
    let deleted = tx
        .execute(
            "WITH keep AS (
                SELECT namespace, actor_id, max(seq) AS from_seq
                  FROM burrow_log_entry
                 WHERE kind = 'image'
                   AND created_at <= clock_timestamp() - make_interval(secs => $1)
                 GROUP BY namespace, actor_id
             )
             DELETE FROM burrow_log_entry e
              USING keep k
              WHERE e.namespace = k.namespace AND e.actor_id = k.actor_id AND e.seq < k.from_seq",
            &[&seconds],
        )
        .await
        .map_err(sent)?;
    tx.commit().await.map_err(sent)?;
    Ok(deleted)
}

/// What the log holds, per actor namespace: (namespace, entries, bytes, images), and the age
/// in seconds of its oldest entry.
pub(crate) async fn usage(
    log: &PgTurnLog,
) -> Result<(Vec<(String, i64, i64, i64)>, f64), LogError> {
    let client = log.client().await?;
    let rows = client
        .query(
            "SELECT namespace, count(*), coalesce(sum(length(body)), 0)::int8,
                    count(*) FILTER (WHERE kind = 'image')
               FROM burrow_log_entry GROUP BY namespace ORDER BY namespace",
            &[],
        )
        .await
        .map_err(read)?;
    let oldest: f64 = client
        .query_one(
            "SELECT coalesce(extract(epoch from clock_timestamp() - min(created_at)), 0)::float8
               FROM burrow_log_entry",
            &[],
        )
        .await
        .map_err(read)?
        .get(0);
    Ok((
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
        oldest,
    ))
}

/// The last entry committed at or before `at_ms`.
pub(crate) async fn seq_at(
    log: &PgTurnLog,
    key: &LogKey,
    at_ms: i64,
) -> Result<Option<u64>, LogError> {
    let client = log.client().await?;
    let seq: Option<i64> = client
        .query_one(
            "SELECT max(seq) FROM burrow_log_entry
              WHERE namespace = $1 AND actor_id = $2
                AND created_at <= to_timestamp($3::float8 / 1000)",
            &[&&*key.namespace, &key.id.to_string(), &(at_ms as f64)],
        )
        .await
        .map_err(read)?
        .get(0);
    seq.map(seq_out).transpose()
}
