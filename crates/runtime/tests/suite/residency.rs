//! Bounded residency at scale: 20,000 actors, each called twice in random order, with
//! `max_resident = 100`. A test binary of its own, so that only its descriptors are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::fds_under;
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};

struct Tally;

impl Actor for Tally {}

/// Appends `n`; replies with everything appended so far.
struct Append(u64);

impl Message for Append {
    type Reply = Vec<u64>;
}

impl Handler<Append> for Tally {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        Append(n): Append,
    ) -> Result<Vec<u64>, Abort> {
        let storage = ctx.storage();
        let mut seen: Vec<u64> = storage
            .get::<Vec<u8>>("seen")?
            .map(|b| {
                b.chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        seen.push(n);
        let bytes: Vec<u8> = seen.iter().flat_map(|n| n.to_le_bytes()).collect();
        storage.put("seen", &bytes)?;
        Ok(seen)
    }
}

fn shuffled(n: u64) -> Vec<u64> {
    let mut items: Vec<u64> = (0..n).collect();
    let mut random = vec![0u8; items.len() * 8];
    getrandom::fill(&mut random).unwrap();
    for i in (1..items.len()).rev() {
        let r = u64::from_le_bytes(random[i * 8..i * 8 + 8].try_into().unwrap());
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_actors_through_a_hundred_slots() {
    const ACTORS: u64 = 20_000;
    const MAX_RESIDENT: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let runtime =
        Runtime::open(Options::new(&dir_path).shards(2).max_resident(MAX_RESIDENT)).unwrap();
    let ns = runtime.namespace("tally", |_| Tally).unwrap();

    // Each actor appears twice, in one random order; 256 calls in flight at a time (more than
    // the slots), so that activations regularly find every slot busy and must wait.
    let order: Vec<u64> = shuffled(2 * ACTORS)
        .into_iter()
        .map(|i| i % ACTORS)
        .collect();
    let mut calls_so_far = vec![0u64; ACTORS as usize];
    // Sampled continuously from another thread, so that the peak seen is the one mid-batch.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (stop, dir) = (stop.clone(), dir_path.clone());
        move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(fds_under(&dir));
            }
            peak
        }
    });
    for batch in order.chunks(256) {
        // Within a batch an actor may appear twice; its calls are queued in order.
        let mut calls = Vec::new();
        let mut expected = Vec::new();
        for &a in batch {
            let k = calls_so_far[a as usize];
            calls_so_far[a as usize] += 1;
            calls.push(ns.get_by_name(&a.to_string()).call(Append(a * 10 + k)));
            expected.push((0..=k).map(|k| a * 10 + k).collect::<Vec<_>>());
        }
        for ((outcome, want), &a) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .zip(expected)
            .zip(batch)
        {
            assert_eq!(outcome.unwrap(), want, "actor {a}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    // Two per resident actor; the LOCK file and the catalog's connections are the fixed rest.
    assert!(
        peak <= 2 * MAX_RESIDENT + 16,
        "peak of {peak} descriptors with max_resident {MAX_RESIDENT}"
    );
    assert!(
        peak > 2 * MAX_RESIDENT / 2,
        "only {peak} descriptors: was anything resident?"
    );
    assert_eq!(runtime.catalog().count("tally").await.unwrap(), ACTORS);
    let report = runtime.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.abandoned, 0);
    assert!(report.closed <= MAX_RESIDENT);
}
