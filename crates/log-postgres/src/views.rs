//! What operators list from the log, cluster-wide: the actors (with the node holding each), how
//! many there are, and incidents (dead-lettered alarms, quarantined files) recorded by
//! [`TurnLog::record_incident`](burrow_runtime::turn_log::TurnLog::record_incident).

use burrow_runtime::turn_log::{Incident, LogError, LogKey};

use crate::{PgTurnLog, read, sent};

/// An actor as the log lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRow {
    /// Its id (64 hex digits).
    pub id: String,
    /// Its name, for actors addressed by name.
    pub name: Option<String>,
    /// When its log began (ms since the Unix epoch, PostgreSQL's clock).
    pub created_at_ms: i64,
    /// When it was last claimed, appended to or released (ms since the Unix epoch).
    pub updated_at_ms: i64,
    /// The node holding it now, in a cluster.
    pub node_id: Option<String>,
}

/// An incident as the log lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// Its order of recording (the cursor of the listing).
    pub id: i64,
    /// The actor's namespace.
    pub namespace: String,
    /// The actor's id.
    pub actor_id: String,
    /// What happened.
    pub incident: Incident,
    /// The node it happened on, in a cluster.
    pub node_id: Option<String>,
    /// When it was recorded (ms since the Unix epoch, PostgreSQL's clock).
    pub at_ms: i64,
}

/// The kinds of incident, as listed: `deadAlarm` and `quarantined`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKind {
    /// [`Incident::DeadAlarm`].
    DeadAlarm,
    /// [`Incident::Quarantined`].
    Quarantined,
}

impl IncidentKind {
    fn column(self) -> &'static str {
        match self {
            IncidentKind::DeadAlarm => "dead_alarm",
            IncidentKind::Quarantined => "quarantined",
        }
    }
}

impl PgTurnLog {
    /// Up to `limit` actors of `namespace` with a non-empty log, in id order, after the id
    /// `after`.
    pub async fn actors(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ActorRow>, LogError> {
        let (db, namespace, after) = (self.clone(), namespace.to_owned(), after.map(str::to_owned));
        self.at_home(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT actor_id, name,
                            floor(extract(epoch from created_at) * 1000)::int8,
                            floor(extract(epoch from updated_at) * 1000)::int8, node_id
                       FROM burrow_log_actor
                      WHERE namespace = $1 AND head_seq > 0 AND actor_id > coalesce($2, '')
                      ORDER BY actor_id LIMIT $3",
                    &[&namespace, &after, &(limit as i64)],
                )
                .await
                .map_err(read)?;
            Ok(rows
                .iter()
                .map(|r| ActorRow {
                    id: r.get(0),
                    name: r.get(1),
                    created_at_ms: r.get(2),
                    updated_at_ms: r.get(3),
                    node_id: r.get(4),
                })
                .collect())
        })
        .await
    }

    /// How many actors of `namespace` have a non-empty log.
    pub async fn actor_count(&self, namespace: &str) -> Result<u64, LogError> {
        let (db, namespace) = (self.clone(), namespace.to_owned());
        self.at_home(async move {
            let client = db.client().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM burrow_log_actor WHERE namespace = $1 AND head_seq > 0",
                    &[&namespace],
                )
                .await
                .map_err(read)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    /// Up to `limit` incidents of `kind`, oldest first, after the incident `after`.
    pub async fn incidents(
        &self,
        kind: IncidentKind,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, LogError> {
        let db = self.clone();
        self.at_home(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT id, namespace, actor_id, alarm_name, due_ms, attempts, detail,
                            moved_to, node_id, floor(extract(epoch from at) * 1000)::int8
                       FROM burrow_log_incident
                      WHERE kind = $1 AND id > coalesce($2::int8, 0)
                      ORDER BY id LIMIT $3",
                    &[&kind.column(), &after, &(limit as i64)],
                )
                .await
                .map_err(read)?;
            Ok(rows
                .iter()
                .map(|r| IncidentRow {
                    id: r.get(0),
                    namespace: r.get(1),
                    actor_id: r.get(2),
                    incident: match kind {
                        IncidentKind::DeadAlarm => Incident::DeadAlarm {
                            name: r.get::<_, Option<String>>(3).unwrap_or_default(),
                            due_ms: r.get::<_, Option<i64>>(4).unwrap_or_default(),
                            attempts: r.get::<_, Option<i32>>(5).unwrap_or_default() as u32,
                            error: r.get(6),
                        },
                        IncidentKind::Quarantined => Incident::Quarantined {
                            reason: r.get(6),
                            moved_to: r.get::<_, Option<String>>(7).unwrap_or_default(),
                        },
                    },
                    node_id: r.get(8),
                    at_ms: r.get(9),
                })
                .collect())
        })
        .await
    }
}

/// Records an incident (with the node it happened on, in a cluster).
pub(crate) async fn record(
    log: &PgTurnLog,
    node_id: Option<String>,
    key: &LogKey,
    incident: &Incident,
) -> Result<(), LogError> {
    let client = log.client().await?;
    // Columns that do not apply to a kind stay NULL.
    let none: (Option<&str>, Option<i64>, Option<i32>) = (None, None, None);
    let (kind, (alarm, due, attempts), detail, moved_to) = match incident {
        Incident::DeadAlarm {
            name,
            due_ms,
            attempts,
            error,
        } => (
            "dead_alarm",
            (
                Some(name.as_str()),
                Some(*due_ms),
                Some(i32::try_from(*attempts).unwrap_or(i32::MAX)),
            ),
            error,
            None,
        ),
        Incident::Quarantined { reason, moved_to } => {
            ("quarantined", none, reason, Some(moved_to.as_str()))
        }
    };
    client
        .execute(
            "INSERT INTO burrow_log_incident
                 (namespace, actor_id, kind, alarm_name, due_ms, attempts, detail, moved_to, node_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &&*key.namespace,
                &key.id.to_string(),
                &kind,
                &alarm,
                &due,
                &attempts,
                &detail,
                &moved_to,
                &node_id,
            ],
        )
        .await
        .map_err(sent)?;
    Ok(())
}
