//! 10,000 actors in one process without running out of file descriptors. A test binary of its
//! own, so that no other test's descriptors are counted, and no other test's files move the
//! descriptor numbers its scans of `/proc/self/fd` walk.

mod common;

use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
use common::fds_under;

struct Cell;

impl Actor for Cell {}

/// Writes the value if given; replies with the value stored.
struct Value(Option<u64>);

impl Message for Value {
    type Reply = Option<u64>;
}

impl Handler<Value> for Cell {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        Value(req): Value,
    ) -> Result<Option<u64>, Abort> {
        let storage = ctx.storage();
        if let Some(v) = req {
            storage.put("v", &(v as i64))?;
        }
        Ok(storage.get::<i64>("v")?.map(|v| v as u64))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_actors_stay_within_the_descriptor_budget() {
    const ACTORS: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let runtime = Runtime::open(Options::new(&dir_path)).unwrap();
    let bound = runtime.max_resident();
    assert!(
        bound < ACTORS as usize,
        "the default bound {bound} must force evictions here"
    );
    let ns = runtime.namespace("cell", |_| Cell).unwrap();

    let mut peak = 0;
    for pass in 0..2 {
        for (n, batch) in (0..ACTORS).collect::<Vec<_>>().chunks(250).enumerate() {
            let calls: Vec<_> = batch
                .iter()
                .map(|&i| {
                    let write = (pass == 0).then_some(i * 7);
                    ns.get_by_name(&i.to_string()).call(Value(write))
                })
                .collect();
            for (outcome, &i) in futures_util::future::join_all(calls)
                .await
                .into_iter()
                .zip(batch)
            {
                assert_eq!(outcome.unwrap(), Some(i * 7), "actor {i}, pass {pass}");
            }
            // Sampled: counting walks every descriptor of the process.
            if n % 4 == 3 {
                peak = peak.max(fds_under(&dir_path));
            }
        }
    }
    // Two per resident actor (database and WAL), plus the LOCK file and the catalog's
    // connections (database, WAL and shared memory each: a writer, a reader, one per shard).
    assert!(
        peak <= 2 * bound + 16,
        "peak {peak} descriptors for a bound of {bound} actors"
    );
    assert!(
        peak > 0,
        "the descriptor count saw nothing: is the path right?"
    );
    let report = runtime.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.abandoned, 0);
    assert_eq!(fds_under(&dir_path), 0, "files left open after shutdown");
}
