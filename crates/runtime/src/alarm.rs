//! Durable named alarms: what a handler is told when one fires, and how failed handlers are
//! retried.
//!
//! An alarm lives in two places. The actor's own file holds it (`_burrow_alarms`), written in
//! the turn's transaction, so an aborted turn never leaves one behind. The catalog indexes it
//! by fire time, written (and acknowledged) *before* the turn commits, so every alarm an actor
//! holds has an entry: a crash between the two leaves an entry whose alarm does not exist,
//! which delivery recognises (the actor's file is checked first) and drops — or, since the index
//! keeps one entry per name, an entry that displaced the version the actor does hold, which
//! delivery recognises too and indexes the held version again.
//! Set alarms with [`Context::set_alarm`](crate::Context::set_alarm); handle them in
//! [`Actor::alarm`](crate::Actor::alarm).

use std::time::{Duration, SystemTime};

use crate::random::Random;

/// An alarm being delivered to [`Actor::alarm`](crate::Actor::alarm). See
/// [`Context::set_alarm`](crate::Context::set_alarm) for an example.
///
/// ```
/// use std::time::Duration;
/// use burrow_runtime::{Abort, Actor, Context, alarm::Alarm};
/// struct Syncer;
/// impl Actor for Syncer {
///     async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
///         if alarm.late_by > Duration::from_secs(600) {
///             // The host was down when it came due: catch up in one go.
///         }
///         ctx.storage().put("last sync attempt", &alarm.attempt)?;
///         Ok(())
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alarm {
    /// The name it was set under.
    pub name: String,
    /// When it was due.
    pub due: SystemTime,
    /// 1 for the first delivery, 2 for the first retry, and so on.
    pub attempt: u32,
    /// When this attempt was scheduled to run (the due time, then each retry's time).
    pub scheduled: SystemTime,
    /// How late this attempt runs relative to `scheduled` (for instance, because the host was
    /// down when it came due).
    pub late_by: Duration,
    /// The backoff delay chosen after the previous attempt failed (zero on the first attempt).
    pub backoff: Duration,
}

/// How failed alarm handlers are retried. Delivery is at least once: a handler that fails (or
/// panics) runs again after a delay that doubles from `first_retry` up to `max_delay`, each
/// delay varied by ±`jitter`; after `max_attempts` failures the alarm goes to the catalog's
/// dead-letter list.
///
/// ```
/// use std::time::Duration;
/// use burrow_runtime::{Options, alarm::AlarmPolicy};
/// let policy = AlarmPolicy { max_attempts: 3, ..AlarmPolicy::default() };
/// let options = Options::new("data").alarm_policy(policy);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmPolicy {
    /// The delay before the first retry (default 2 s).
    pub first_retry: Duration,
    /// The longest delay between attempts (default 5 min).
    pub max_delay: Duration,
    /// The fraction by which each delay is varied at random, up or down (default 0.25).
    pub jitter: f64,
    /// Attempts before an alarm is dead-lettered (default 6).
    pub max_attempts: u32,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        AlarmPolicy {
            first_retry: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            jitter: 0.25,
            max_attempts: 6,
        }
    }
}

impl AlarmPolicy {
    /// The delay after failed attempt `attempt` (1-based).
    pub(crate) fn delay_after(&self, attempt: u32, random: &Random) -> Duration {
        let doubled = self.first_retry.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let base = doubled.min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter + 2.0 * jitter * random.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::AlarmPolicy;
    use crate::random::Random;
    use std::time::Duration;

    #[test]
    fn delays_double_within_the_jitter_and_stop_at_the_cap() {
        let policy = AlarmPolicy::default();
        for _ in 0..1000 {
            let first = policy.delay_after(1, &Random::Os);
            assert!(first >= Duration::from_millis(1500) && first <= Duration::from_millis(2500));
            let second = policy.delay_after(2, &Random::Os);
            assert!(second >= Duration::from_secs(3) && second <= Duration::from_secs(5));
            let late = policy.delay_after(40, &Random::Os);
            assert!(late >= Duration::from_secs(225) && late <= Duration::from_secs(375));
        }
    }
}
