//! Bounded residency at scale: 20,000 actors, each called twice in random order, with
//! `max_resident = 100`, and the descriptors open under the runtime's directory sampled
//! throughout.
//!
//! A test binary of its own: the count is a scan of `/proc/self/fd`, which is not atomic. While
//! other tests in the process open and close files, the numbers the kernel hands out move, and a
//! scan can see an actor's file at a number it already passed and a newer one further on: in
//! the shared suite binary it counted up to 229 descriptors (109 actor files) at a bound of 216.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use burrow_runtime::{Options, Runtime};
use common::{Append, Tally, fds_under};

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
    // Tally calls no other actor, so no turn can wait on an activation: the valve that goes
    // over the bound after a wait (1 s by default, real time) stays shut, and the bound holds
    // however slow the machine is. (With the default, a loaded machine went over it.)
    let options = Options::new(&dir_path)
        .shards(2)
        .max_resident(MAX_RESIDENT)
        .overflow_after(Duration::from_secs(3600));
    let runtime = Runtime::open(options).unwrap();
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
