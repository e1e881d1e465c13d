//! Retrying calls that failed for a reason that may pass.
//!
//! Backoff runs on tokio's clock (`tokio::time`), so a test on a paused tokio runtime
//! (`#[tokio::test(start_paused = true)]`) retries without real sleeps, and
//! [`RetryPolicy::jitter_seed`] makes the pauses reproducible.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::CallError;
use crate::random::Random;

/// How [`with_retry`] retries.
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use burrow_runtime::retry::RetryPolicy;
/// let patient = RetryPolicy {
///     attempts: 6,
///     deadline: Some(Instant::now() + Duration::from_secs(30)),
///     ..RetryPolicy::default()
/// };
/// assert_eq!(patient.base, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub attempts: u32,
    /// The ceiling of the first backoff; it doubles with each retry (default 100 ms).
    pub base: Duration,
    /// The largest backoff ceiling (default 5 s).
    pub cap: Duration,
    /// Give up rather than sleep past this moment, on tokio's clock (default: none).
    pub deadline: Option<Instant>,
    /// Seeds the jitter, so that the pauses can be reproduced (default: the operating
    /// system's randomness).
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            deadline: None,
            jitter_seed: None,
        }
    }
}

/// Runs `op` on a stub from `get_stub`, retrying [retryable](CallError::is_retryable) errors.
///
/// Every attempt gets a fresh stub (a stub that failed may be broken). Only retryable errors
/// are retried — an overloaded actor, invalid input or the actor's own failure are returned at
/// once. Between attempts it sleeps a random time up to `base × 2^(attempt − 1)`, capped at
/// `cap` ("full jitter"), and gives up early rather than sleep past the deadline. When it gives
/// up it returns the last error.
///
/// ```
/// # use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};
/// # struct Ping; impl Message for Ping { type Reply = (); }
/// # struct A; impl Actor for A {}
/// # impl Handler<Ping> for A {
/// #     async fn handle(&mut self, _: &mut Context<Self>, _: Ping) -> Result<(), Abort> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let runtime = Runtime::open(Options::new(dir.path()))?;
/// use burrow_runtime::retry::{RetryPolicy, with_retry};
/// let ns = runtime.namespace("pinged", |_| A)?;
/// with_retry(|| ns.get_by_name("alice"), |stub| stub.call(Ping), &RetryPolicy::default()).await?;
/// # runtime.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub async fn with_retry<S, T, F>(
    mut get_stub: impl FnMut() -> S,
    mut op: impl FnMut(S) -> F,
    policy: &RetryPolicy,
) -> Result<T, CallError>
where
    F: Future<Output = Result<T, CallError>>,
{
    let random = policy.jitter_seed.map_or(Random::Os, Random::seeded);
    let mut attempt = 1u32;
    loop {
        let error = match op(get_stub()).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.is_retryable() || attempt >= policy.attempts {
            return Err(error);
        }
        let ceiling = policy
            .base
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
            .min(policy.cap);
        let pause = ceiling.mul_f64(random.unit());
        if policy.deadline.is_some_and(|d| Instant::now() + pause >= d) {
            return Err(error);
        }
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}
