//! The log's SQL, one function per [`TurnLog`](burrow_runtime::turn_log::TurnLog) operation.

use burrow_runtime::turn_log::{Claim, Entry, EntryHash, LogError, LogKey, Payload, Position};
use tokio_postgres::Row;

use crate::{PgTurnLog, read, sent};

fn seq_in(seq: u64) -> Result<i64, LogError> {
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

pub(crate) async fn claim(log: &PgTurnLog, key: &LogKey) -> Result<Claim, LogError> {
    let client = log.client().await?;
    let row = client
        .query_one(
            "INSERT INTO burrow_log_actor (namespace, actor_id, epoch, head_seq, head_hash)
             VALUES ($1, $2, 1, 0, $3)
             ON CONFLICT (namespace, actor_id) DO UPDATE
                SET epoch = burrow_log_actor.epoch + 1, updated_at = clock_timestamp()
             RETURNING epoch, head_seq, head_hash, image_seq",
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &&Position::GENESIS.hash[..],
            ],
        )
        .await
        .map_err(sent)?;
    Ok(Claim {
        epoch: seq_out(row.get(0))?,
        head: position(row.get(1), row.get(2))?,
        snapshot: row.get::<_, Option<i64>>(3).map(seq_out).transpose()?,
    })
}

pub(crate) async fn append(
    log: &PgTurnLog,
    key: &LogKey,
    epoch: u64,
    expected: Position,
    entries: &[Entry],
) -> Result<Position, LogError> {
    let Some(last) = entries.last() else {
        return Ok(expected);
    };
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
    let client = log.client().await?;
    // One statement, so one atomic step: the head moves only where the epoch and the head are
    // still the writer's, and the entries are inserted only for a head that moved.
    let inserted = client
        .execute(
            "WITH fence AS (
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
                    AS e(seq, hash, kind, body)",
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
        return Ok(last.position());
    }
    debug_assert_eq!(inserted, 0, "an append lands whole or not at all");
    // On the same connection: a second one from the pool could wait on appenders that each
    // hold one and wait for a second.
    let (current, head) = head_on(&client, key)
        .await?
        .unwrap_or((0, Position::GENESIS));
    Err(LogError::Fenced {
        epoch,
        expected,
        current,
        head,
    })
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

async fn head_on(
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
    tx.execute(
        "DELETE FROM burrow_log_entry WHERE namespace = $1 AND actor_id = $2",
        &[&&*key.namespace, &key.id.to_string()],
    )
    .await
    .map_err(sent)?;
    tx.commit().await.map_err(sent)
}
