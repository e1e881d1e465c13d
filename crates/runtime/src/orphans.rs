//! In a cluster, alarms whose actors no live node holds: their holder died with the alarms in
//! its catalog. Every node looks for such alarms in the log now and then and indexes them in its
//! own catalog; its scheduler fires them, and the delivery's claim takes the actor over (of
//! several nodes that adopt one alarm, one claims the actor, and the others leave the alarm to
//! it). No alarm is lost with its node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::catalog_db::{CatalogDb, CatalogWrite};
use crate::clock::Clock;
use crate::turn_log::TurnLog;

/// How often the log is asked for orphaned alarms.
const EVERY: Duration = Duration::from_secs(2);
/// Alarms adopted per look.
const BATCH: usize = 256;

/// Stops the sweep when dropped or asked.
pub(crate) struct OrphanSweep {
    stop: Arc<AtomicBool>,
}

impl OrphanSweep {
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for OrphanSweep {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the sweep on a thread of its own.
pub(crate) fn start(
    log: Arc<dyn TurnLog>,
    catalog: Arc<CatalogDb>,
    clock: Clock,
) -> std::io::Result<OrphanSweep> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    crate::log_thread::spawn(
        "burrow-orphan-alarms",
        "adopting orphaned alarms",
        move |executor| {
            while !stopped.load(Ordering::Acquire) {
                match executor.block_on(log.orphaned_alarms(clock.now_ms(), BATCH)) {
                    Ok(orphans) => {
                        for orphan in orphans {
                            tracing::info!(namespace = %orphan.key.namespace, id = %orphan.key.id, alarm = %orphan.name, "adopting an alarm no live node holds");
                            metrics::counter!("burrow_cluster_alarms_adopted_total").increment(1);
                            // The actor's name comes back with its file, from the log.
                            catalog.send(CatalogWrite::AlarmAdopt {
                                namespace: orphan.key.namespace,
                                id: orphan.key.id,
                                name: orphan.name,
                                due_ms: orphan.due_ms,
                            });
                        }
                    }
                    Err(e) => tracing::warn!("looking for orphaned alarms: {e}"),
                }
                // Sleep in short steps, so that a shutdown is not held up.
                let mut slept = Duration::ZERO;
                while slept < EVERY && !stopped.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    slept += Duration::from_millis(100);
                }
            }
        },
    )?;
    Ok(OrphanSweep { stop })
}
