//! A shard's thread: its executor, its ticker (idle eviction, trimming, overdue activations),
//! and the loop that takes its messages.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;
use tokio::sync::mpsc;

use super::{ResidentCount, Shard, ShardMsg};
use crate::services::ShardServices;

/// A shard thread's settings.
pub(crate) struct ShardConfig {
    pub index: usize,
    pub services: ShardServices,
    pub resident: Arc<ResidentCount>,
    pub budget: usize,
    pub mailbox_capacity: usize,
    pub idle_timeout: Duration,
    pub overflow_after: Duration,
    pub checkpoint_above: u64,
    pub spin: Duration,
}

/// The shard's next message. When the inbox is empty the shard first polls it for `spin`,
/// letting its actors run in between, before parking its thread: a caller that answers a
/// reply at once (one client in a loop, a request-response protocol) then finds the shard
/// awake instead of paying a futex wake-up, which costs 20–45 µs on a loaded machine.
async fn next_message(
    inbox: &mut mpsc::UnboundedReceiver<ShardMsg>,
    spin: Duration,
) -> Option<ShardMsg> {
    if let Ok(msg) = inbox.try_recv() {
        return Some(msg);
    }
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        while Instant::now() < until {
            tokio::task::yield_now().await;
            if let Ok(msg) = inbox.try_recv() {
                return Some(msg);
            }
        }
    }
    inbox.recv().await
}

/// The body of a shard thread.
pub(crate) fn run_shard(config: ShardConfig, mut inbox: mpsc::UnboundedReceiver<ShardMsg>) {
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread executor can be built");
    let local = tokio::task::LocalSet::new();
    local.block_on(&executor, async move {
        let shard = Rc::new_cyclic(|me| Shard {
            index: config.index,
            me: me.clone(),
            table: RefCell::new(LinkedHashMap::new()),
            waiting: RefCell::new(LinkedHashMap::new()),
            lost_notes: RefCell::new(HashMap::new()),
            services: Rc::new(config.services),
            resident: config.resident,
            budget: config.budget,
            mailbox_capacity: config.mailbox_capacity,
            idle_timeout: config.idle_timeout,
            overflow_after: config.overflow_after,
            checkpoint_above: config.checkpoint_above,
            checkpointing: RefCell::new(HashMap::new()),
            closing: Cell::new(false),
            grace_until: Cell::new(None),
        });
        // Idle eviction and overdue activations are checked a few times per idle timeout and
        // per overflow wait, and at least four times a second (idle actors are trimmed after
        // a second).
        let ticker = {
            let shard = Rc::downgrade(&shard);
            let period = (config.idle_timeout / 4)
                .min(config.overflow_after / 4)
                .clamp(Duration::from_millis(10), Duration::from_millis(250));
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(shard) = shard.upgrade() else { return };
                    if shard.closing.get() {
                        return;
                    }
                    shard.evict_idle();
                    shard.trim_idle();
                    shard.rebalance();
                }
            })
        };
        while let Some(msg) = next_message(&mut inbox, config.spin).await {
            match msg {
                ShardMsg::Deliver {
                    namespace,
                    id,
                    name,
                    envelope,
                } => shard.deliver(namespace, id, name, envelope),
                ShardMsg::Admin(task) => task(&shard),
                ShardMsg::Shutdown { deadline, done } => {
                    ticker.abort();
                    let report = shard.shutdown(deadline).await;
                    let _ = done.send(report);
                    return;
                }
            }
        }
        // Every handle to the runtime is gone without a shutdown: close what is open.
        ticker.abort();
        shard.shutdown(Instant::now()).await;
    });
    // Dropping the LocalSet drops turns still running; their transactions roll back as their
    // connections close, and their callers see the reply channel close.
}
