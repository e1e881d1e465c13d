//! What a shard reports: its resident count, and what its shutdown did.

/// What [`Runtime::shutdown`](crate::Runtime::shutdown) did. See [`Runtime`](crate::Runtime)
/// for an example.
///
/// ```
/// # use std::time::Duration;
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// # struct Touch; impl Message for Touch { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Touch> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Touch) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// let lamps = runtime.namespace("lamp", |_| A)?;
/// lamps.get_by_name("desk").call(Touch).await?;
/// lamps.get_by_name("hall").call(Touch).await?;
/// let report: burrow_runtime::ShutdownReport = runtime.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report, burrow_runtime::ShutdownReport { closed: 2, abandoned: 0 });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Actors closed after their last turn.
    pub closed: usize,
    /// Actors still in a turn at the deadline: those turns were rolled back and their callers
    /// got a retryable error.
    pub abandoned: usize,
}

impl std::ops::AddAssign for ShutdownReport {
    fn add_assign(&mut self, other: ShutdownReport) {
        self.closed += other.closed;
        self.abandoned += other.abandoned;
    }
}

/// The number of resident actors, per shard, behind the `burrow_resident_actors` gauge: each
/// shard publishes its table's size after every change, so the gauge is derived from the
/// tables rather than kept by hand.
pub(crate) struct ResidentCount {
    per_shard: Vec<std::sync::atomic::AtomicUsize>,
}

impl ResidentCount {
    pub(crate) fn new(shards: usize) -> ResidentCount {
        ResidentCount {
            per_shard: (0..shards).map(|_| Default::default()).collect(),
        }
    }

    pub(super) fn publish(&self, shard: usize, resident: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.per_shard[shard].store(resident, Relaxed);
        let total: usize = self.per_shard.iter().map(|n| n.load(Relaxed)).sum();
        metrics::gauge!("burrow_resident_actors").set(total as f64);
    }
}
