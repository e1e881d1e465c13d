//! In replicated mode, a catalog rebuilt from scratch (the data directory was lost, or the
//! catalog file damaged) learns from the log which actors exist and which alarms they hold, so
//! that listings are complete and alarms fire without anyone calling the actors.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog_db::{CatalogDb, CatalogWrite};
use crate::turn_log::TurnLog;

/// How often, and how long apart, the inventory is retried while the log is unreachable.
const ATTEMPTS: u32 = 60;
const PAUSE: Duration = Duration::from_secs(1);

/// Reads the log's inventory on a thread of its own and queues it into the catalog.
pub(crate) fn restore_from_log(
    log: Arc<dyn TurnLog>,
    catalog: Arc<CatalogDb>,
) -> std::io::Result<()> {
    crate::log_thread::spawn(
        "burrow-catalog-from-log",
        "restoring the catalog from the log",
        move |executor| {
            for attempt in 1..=ATTEMPTS {
                match executor.block_on(log.inventory()) {
                    Ok(actors) => {
                        let count = actors.len();
                        for actor in actors {
                            let namespace = actor.key.namespace.clone();
                            let id = actor.key.id;
                            catalog.send(CatalogWrite::Upsert {
                                namespace: namespace.clone(),
                                id,
                                name: actor.name.map(Arc::from),
                                created_at_ms: actor.created_at_ms,
                                last_active_ms: actor.created_at_ms,
                                ack: None,
                            });
                            for (name, due_ms) in actor.alarms {
                                catalog.send(CatalogWrite::AlarmSet {
                                    namespace: namespace.clone(),
                                    id,
                                    name,
                                    due_ms,
                                    ack: None,
                                });
                            }
                        }
                        tracing::info!(actors = count, "restored the catalog from the log");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(attempt, "restoring the catalog from the log: {e}");
                        std::thread::sleep(PAUSE);
                    }
                }
            }
            tracing::error!("gave up restoring the catalog from the log after {ATTEMPTS} attempts");
        },
    )
}
