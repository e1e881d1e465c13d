//! Where the runtime reads time: one [`Clock`], the system's by default, or a [`ManualClock`]
//! that a test moves by hand — so that alarm, backoff and idle-eviction behaviour can be
//! tested on controlled time instead of real sleeps.
//!
//! The clock decides when alarms are due and when they are retried, what `Alarm::late_by`
//! says, when an actor counts as idle, and the times the catalog records. Real time still
//! bounds what is not the actors' business: shutdown grace, turn latency metrics, how often a
//! shard looks for idle actors and how long the alarm scheduler sleeps between looks (at most a
//! second; a manual clock wakes it when moved).
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use burrow_runtime::Options;
//! use burrow_runtime::clock::ManualClock;
//!
//! let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! let options = Options::new("data").clock(clock.clock());
//! clock.advance(Duration::from_secs(3600)); // alarms due within the hour now fire
//! # let _ = options;
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The runtime's source of time. Cheap to clone; clones read the same time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use burrow_runtime::clock::{Clock, ManualClock};
/// let system = Clock::system();
/// assert!(system.now() > UNIX_EPOCH);
/// let manual = ManualClock::new(UNIX_EPOCH);
/// let clock: Clock = manual.clock();
/// let copy = clock.clone();
/// manual.advance(Duration::from_secs(5));
/// assert_eq!(copy.now(), UNIX_EPOCH + Duration::from_secs(5)); // clones read the same time
/// ```
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    /// Called after every move of a manual clock (the alarm scheduler's wake-up).
    listeners: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

enum Source {
    System {
        started: Instant,
    },
    /// The time now, and how far the clock has moved since it was made.
    Manual(Mutex<(SystemTime, Duration)>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.source {
            Source::System { .. } => f.write_str("Clock::system"),
            Source::Manual(now) => {
                let (now, _) = *now.lock().expect("not poisoned");
                f.debug_tuple("Clock::manual").field(&now).finish()
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The operating system's clock.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let now = burrow_runtime::clock::Clock::system().now();
    /// assert!(now.duration_since(SystemTime::now()).unwrap_or_default() < Duration::from_secs(1));
    /// ```
    pub fn system() -> Clock {
        Clock::with(Source::System {
            started: Instant::now(),
        })
    }

    fn with(source: Source) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                source,
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The time now.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use burrow_runtime::clock::{Clock, ManualClock};
    /// assert!(Clock::system().now() > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    /// let manual = ManualClock::new(UNIX_EPOCH);
    /// assert_eq!(manual.clock().now(), UNIX_EPOCH);
    /// ```
    pub fn now(&self) -> SystemTime {
        match &self.inner.source {
            Source::System { .. } => SystemTime::now(),
            Source::Manual(now) => now.lock().expect("not poisoned").0,
        }
    }

    /// Milliseconds since the Unix epoch, now.
    pub(crate) fn now_ms(&self) -> i64 {
        to_ms(self.now())
    }

    /// Time elapsed since the clock was made, never going backwards: what idleness is measured
    /// in.
    pub(crate) fn elapsed(&self) -> Duration {
        match &self.inner.source {
            Source::System { started } => started.elapsed(),
            Source::Manual(now) => now.lock().expect("not poisoned").1,
        }
    }

    /// Registers `listener`, called after every move of a manual clock.
    pub(crate) fn on_advance(&self, listener: Box<dyn Fn() + Send + Sync>) {
        self.inner
            .listeners
            .lock()
            .expect("not poisoned")
            .push(listener);
    }
}

/// A clock that moves only when told to: for tests of alarms, backoff and idle eviction.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use burrow_runtime::clock::ManualClock;
/// let manual = ManualClock::new(UNIX_EPOCH);
/// manual.advance(Duration::from_secs(90));
/// assert_eq!(manual.clock().now(), UNIX_EPOCH + Duration::from_secs(90));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    clock: Clock,
}

impl ManualClock {
    /// A clock standing at `start`.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// let manual = burrow_runtime::clock::ManualClock::new(start);
    /// assert_eq!(manual.clock().now(), start);
    /// ```
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock {
            clock: Clock::with(Source::Manual(Mutex::new((start, Duration::ZERO)))),
        }
    }

    /// The clock to give the runtime ([`Options::clock`](crate::Options::clock)).
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// let manual = burrow_runtime::clock::ManualClock::new(UNIX_EPOCH);
    /// let options = burrow_runtime::Options::new("data").clock(manual.clock());
    /// # let _ = options;
    /// ```
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Moves the clock forward by `by`, and wakes what waits on it.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let manual = burrow_runtime::clock::ManualClock::new(UNIX_EPOCH);
    /// manual.advance(Duration::from_millis(1500));
    /// manual.advance(Duration::from_millis(500));
    /// assert_eq!(manual.clock().now(), UNIX_EPOCH + Duration::from_secs(2));
    /// ```
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(now) = &self.clock.inner.source {
            let mut now = now.lock().expect("not poisoned");
            now.0 += by;
            now.1 += by;
        }
        for listener in self
            .clock
            .inner
            .listeners
            .lock()
            .expect("not poisoned")
            .iter()
        {
            listener();
        }
    }
}

/// A time as milliseconds since the Unix epoch (negative before it, saturating far from it).
pub(crate) fn to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Milliseconds since the Unix epoch as a time.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A non-negative count of milliseconds as a duration (negative counts are zero).
pub(crate) fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::{from_ms, to_ms};

    #[test]
    fn milliseconds_round_trip_on_both_sides_of_the_epoch() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(to_ms(from_ms(ms)), ms);
        }
    }
}
