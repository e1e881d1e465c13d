//! The sandbox machines of a cluster (`burrow_machine`): the node hosting each records it, any
//! node reads it — to reach the machine, to check it, or to find an instance's machines by
//! their labels — and what is wanted of a machine whose node could not be asked waits here
//! until that node rejoins. What a machine is (labels, volume, state) is the instance
//! manager's; this module stores it as given.

use burrow_runtime::turn_log::LogError;

use crate::{PgTurnLog, read, sent};

/// A machine as its hosting node records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    /// The machine's id.
    pub machine_id: String,
    /// Its volume's id.
    pub volume_id: String,
    /// Its owner, for lookups by label.
    pub user_id: String,
    /// Its sandbox id, for lookups by label.
    pub sandbox_id: String,
    /// The provider's own description of it (opaque here).
    pub record: String,
    /// Its state, as the provider names it.
    pub state: String,
    /// Where it is reached while it runs (`host:port`).
    pub address: Option<String>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: i64,
}

/// What is wanted of a machine whose node could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Nothing: it is kept as it is.
    Kept,
    /// Stopped (its volume stays).
    Stopped,
    /// Deleted, with its volume.
    Deleted,
}

impl Wanted {
    fn as_str(self) -> &'static str {
        match self {
            Wanted::Kept => "kept",
            Wanted::Stopped => "stopped",
            Wanted::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Result<Wanted, LogError> {
        match s {
            "kept" => Ok(Wanted::Kept),
            "stopped" => Ok(Wanted::Stopped),
            "deleted" => Ok(Wanted::Deleted),
            other => Err(LogError::Corrupt(format!("a machine wanted {other:?}"))),
        }
    }
}

/// A machine with its host as PostgreSQL sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedMachine {
    /// The machine.
    pub row: MachineRow,
    /// The node hosting it.
    pub node_id: String,
    /// Where that node takes internal calls.
    pub node_url: Option<String>,
    /// Whether that node holds a running lease (by PostgreSQL's clock).
    pub host_alive: bool,
    /// What is wanted of it.
    pub wanted: Wanted,
}

const SELECT: &str = "SELECT m.machine_id, m.volume_id, m.user_id, m.sandbox_id, m.record, m.state,
        m.address, m.created_at_ms, m.node_id, n.advertise_url,
        coalesce(n.status <> 'left' AND n.lease_expires_at > clock_timestamp(), false),
        m.wanted
   FROM burrow_machine m LEFT JOIN burrow_node n ON n.node_id = m.node_id";

fn hosted(r: &tokio_postgres::Row) -> Result<HostedMachine, LogError> {
    Ok(HostedMachine {
        row: MachineRow {
            machine_id: r.get(0),
            volume_id: r.get(1),
            user_id: r.get(2),
            sandbox_id: r.get(3),
            record: r.get(4),
            state: r.get(5),
            address: r.get(6),
            created_at_ms: r.get(7),
        },
        node_id: r.get(8),
        node_url: r.get(9),
        host_alive: r.get(10),
        wanted: Wanted::parse(r.get(11))?,
    })
}

impl PgTurnLog {
    /// Records (or updates) a machine hosted by this log's node. What was wanted of it is kept,
    /// unless `started` (it was just created or started, which settles it).
    pub async fn record_machine(&self, row: &MachineRow, started: bool) -> Result<(), LogError> {
        let Some(node) = self.current_node() else {
            return Err(LogError::Unavailable(
                "machines are recorded by a node of a cluster".into(),
            ));
        };
        let (db, row) = (self.clone(), row.clone());
        self.at_home(async move {
            let client = db.client().await?;
            client
                .execute(
                    "INSERT INTO burrow_machine (machine_id, node_id, volume_id, user_id, sandbox_id,
                                                 record, state, address, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (machine_id) DO UPDATE SET
                        node_id = excluded.node_id, record = excluded.record,
                        state = excluded.state, address = excluded.address,
                        wanted = CASE WHEN $10 THEN 'kept' ELSE burrow_machine.wanted END,
                        updated_at = clock_timestamp()",
                    &[
                        &row.machine_id,
                        &node.node_id,
                        &row.volume_id,
                        &row.user_id,
                        &row.sandbox_id,
                        &row.record,
                        &row.state,
                        &row.address,
                        &row.created_at_ms,
                        &started,
                    ],
                )
                .await
                .map_err(sent)?;
            Ok(())
        })
        .await
    }

    /// Forgets a machine (deleted).
    pub async fn forget_machine(&self, machine_id: &str) -> Result<(), LogError> {
        let (db, id) = (self.clone(), machine_id.to_owned());
        self.at_home(async move {
            let client = db.client().await?;
            client
                .execute("DELETE FROM burrow_machine WHERE machine_id = $1", &[&id])
                .await
                .map_err(sent)?;
            Ok(())
        })
        .await
    }

    /// A machine with its host, if it is recorded.
    pub async fn machine(&self, machine_id: &str) -> Result<Option<HostedMachine>, LogError> {
        let (db, id) = (self.clone(), machine_id.to_owned());
        self.at_home(async move {
            let client = db.client().await?;
            let rows = client
                .query(&format!("{SELECT} WHERE m.machine_id = $1"), &[&id])
                .await
                .map_err(read)?;
            rows.first().map(hosted).transpose()
        })
        .await
    }

    /// Every machine labelled with this user and sandbox id, on any node.
    pub async fn machines_labelled(
        &self,
        user_id: &str,
        sandbox_id: &str,
    ) -> Result<Vec<HostedMachine>, LogError> {
        let (db, user, sandbox) = (self.clone(), user_id.to_owned(), sandbox_id.to_owned());
        self.at_home(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    &format!("{SELECT} WHERE m.user_id = $1 AND m.sandbox_id = $2"),
                    &[&user, &sandbox],
                )
                .await
                .map_err(read)?;
            rows.iter().map(hosted).collect()
        })
        .await
    }

    /// Records what is wanted of a machine whose node cannot be asked now.
    pub async fn want_machine(&self, machine_id: &str, wanted: Wanted) -> Result<(), LogError> {
        let (db, id) = (self.clone(), machine_id.to_owned());
        self.at_home(async move {
            let client = db.client().await?;
            client
                .execute(
                    "UPDATE burrow_machine SET wanted = $2, updated_at = clock_timestamp()
                      WHERE machine_id = $1",
                    &[&id, &wanted.as_str()],
                )
                .await
                .map_err(sent)?;
            Ok(())
        })
        .await
    }

    /// Every machine recorded as this node's, with what is wanted of it (after it rejoins).
    pub async fn machines_here(&self) -> Result<Vec<(String, Wanted)>, LogError> {
        let Some(node) = self.current_node() else {
            return Ok(Vec::new());
        };
        let db = self.clone();
        self.at_home(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT machine_id, wanted FROM burrow_machine WHERE node_id = $1",
                    &[&node.node_id],
                )
                .await
                .map_err(read)?;
            rows.iter()
                .map(|r| Ok((r.get(0), Wanted::parse(r.get(1))?)))
                .collect()
        })
        .await
    }
}
