//! `burrow actor export`: an actor's SQLite file as it was at an entry or a time, rebuilt from
//! the replicated log in PostgreSQL, without a running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use burrow_log_postgres::PgTurnLog;
use burrow_runtime::ActorId;
use burrow_runtime::point_in_time::export_at;
use burrow_runtime::turn_log::{LogKey, TurnLog};
use clap::Args;

/// Which actor, which point, and where to write it.
#[derive(Args)]
pub struct Export {
    /// The PostgreSQL database that holds the log (the server's `--database-url`).
    #[arg(long, env = "BURROW_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The actor's namespace (`instance` for instances).
    #[arg(long)]
    namespace: String,
    /// The actor's id: 64 hex digits.
    #[arg(long)]
    id: String,
    /// The entry to export the actor as of.
    #[arg(long, conflicts_with = "at", required_unless_present = "at")]
    seq: Option<u64>,
    /// The time (RFC 3339) to export the actor as of.
    #[arg(long)]
    at: Option<String>,
    /// Where to write the file (must not exist).
    #[arg(long)]
    out: PathBuf,
}

/// Runs the export; the exit code says whether it worked, and stderr why not.
pub fn run(export: Export) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("burrow actor export: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(export_one(export)) {
        Ok(seq) => {
            println!("exported as of entry {seq}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("burrow actor export: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn export_one(export: Export) -> Result<u64, String> {
    let id: ActorId = export
        .id
        .parse()
        .map_err(|_| format!("--id {:?} is not an actor id (64 hex digits)", export.id))?;
    let key = LogKey {
        namespace: export.namespace.as_str().into(),
        id,
    };
    let log = PgTurnLog::connect(&export.database_url, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let seq = match (export.seq, export.at.as_deref()) {
        (Some(seq), _) => seq,
        (None, Some(at)) => {
            let when =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("--at {at:?} is not an RFC 3339 time: {e}"))?;
            let at_ms = (when.unix_timestamp_nanos() / 1_000_000) as i64;
            log.seq_at(&key, at_ms)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the log keeps nothing of this actor as old as {at}"))?
        }
        (None, None) => return Err("give --seq or --at".into()),
    };
    export_at(&log, &key, seq, &export.out)
        .await
        .map(|position| position.seq)
        .map_err(|e| e.to_string())
}
