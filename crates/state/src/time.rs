//! The unit of every timestamp in the state and the registry: milliseconds since the Unix
//! epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
///
/// ```
/// assert!(burrow_state::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// A time as milliseconds since the Unix epoch (0 for times before it).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(burrow_state::epoch_ms(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
/// ```
pub fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
