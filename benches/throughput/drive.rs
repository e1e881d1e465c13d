//! Driving a scenario: calls from concurrent callers, timed.

use super::*;

/// A scenario's rate and its calls' latency.
pub(crate) struct Timed {
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

impl Timed {
    pub(crate) fn from(calls: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> Timed {
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Timed {
            rate: calls as f64 / elapsed.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// Runs `calls` calls with `concurrency` callers; `target(i)` names the actor of call `i`.
pub(crate) async fn drive(
    ns: &Namespace<Bench>,
    calls: u64,
    concurrency: usize,
    target: impl Fn(u64) -> String + Send + Sync + 'static,
) -> f64 {
    drive_timed(ns, calls, concurrency, target).await.rate
}

/// [`drive`], also timing each call.
pub(crate) async fn drive_timed(
    ns: &Namespace<Bench>,
    calls: u64,
    concurrency: usize,
    target: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Timed {
    let next = Arc::new(AtomicU64::new(0));
    let target = Arc::new(target);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (ns, next, target) = (ns.clone(), next.clone(), target.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break latencies;
                    }
                    let sent = Instant::now();
                    let n = ns.get_by_name(&target(i)).call(Touch).await.unwrap();
                    latencies.push(sent.elapsed());
                    assert_eq!(n, ROW.len());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    Timed::from(calls, started.elapsed(), latencies)
}
