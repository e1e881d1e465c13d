//! The valve on bounded residency: an actor is activated beyond `max_resident` when every slot
//! is held by a busy actor, after a wait. (The bound at scale is `tests/residency_at_scale.rs`,
//! a binary of its own.)

use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Handler, Message, Namespace, Options, Runtime};
use futures_util::FutureExt as _;

use crate::common::{Append, Tally};

/// Forwards `Append` to the tally named `callee`, from inside its own turn.
struct Relay {
    to: Namespace<Tally>,
}

impl Actor for Relay {}

struct Forward(u64);

impl Message for Forward {
    type Reply = Vec<u64>;
}

impl Handler<Forward> for Relay {
    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        Forward(n): Forward,
    ) -> Result<Vec<u64>, Abort> {
        let callee = self.to.get_by_name("callee");
        callee
            .call(Append(n))
            .await
            .map_err(|e| Abort::new(e.to_string()))
    }
}

/// With one slot, a busy caller holds the slot its callee needs: the callee waits
/// `overflow_after` (real time), is activated beyond the bound, and answers; once both are idle
/// the runtime is back within its bound.
#[tokio::test]
async fn a_callee_waits_for_a_slot_then_is_activated_beyond_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::new(dir.path())
        .shards(1)
        .max_resident(1)
        .overflow_after(Duration::from_millis(500));
    let runtime = Runtime::open(options).unwrap();
    let tallies = runtime.namespace("tally", |_| Tally).unwrap();
    let relays = runtime
        .namespace("relay", move |_| Relay {
            to: tallies.clone(),
        })
        .unwrap();
    let mut call = Box::pin(relays.get_by_name("caller").call(Forward(7)));
    // Before the wait is over, the callee has no slot: nothing can answer. (Only a runtime that
    // ignored its bound could answer this early, whatever the machine's speed.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        (&mut call).now_or_never().is_none(),
        "the callee was activated with no free slot before the wait was over"
    );
    let relayed = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the callee was never activated: its caller holds the only slot")
        .unwrap();
    assert_eq!(relayed, [7]);
    // The excess is closed as soon as an actor falls idle: one actor is left to close. (The
    // shard closes it just after the replies leave; `ready` runs after that on the shard.)
    runtime.ready(Duration::from_secs(30)).await.unwrap();
    assert_eq!(runtime.close_idle().await, 1);
    runtime.shutdown(Duration::from_secs(10)).await;
}
