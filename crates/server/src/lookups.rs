//! What the server remembers of registry lookups, and how many a caller may make.
//!
//! Every request that names an instance must know its owner before any actor is woken. The
//! registry answers that, but the embedded registry is one connection behind a mutex, so a
//! caller sending unknown ids as fast as it can would starve everyone else. Three things stop
//! it: owners once found are remembered (they never change); ids found missing are remembered
//! for a second (forgotten at once when provisioned here); and each user may make only so many
//! lookups that reach the registry (a token bucket per user; beyond it, 429).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_identity::{ActorName, UserId};
use moka::sync::Cache;

/// Owners remembered, at most.
const OWNERS: u64 = 100_000;
/// An owner not asked for this long is forgotten (the cache must not pin a destroyed
/// instance's entry forever on a server that never saw the destroy).
const OWNER_IDLE: Duration = Duration::from_secs(600);
/// Missing names remembered, at most.
const MISSING: u64 = 100_000;
/// How long "not found" is believed.
const MISSING_FOR: Duration = Duration::from_secs(1);
/// Rate-limited users remembered, at most; a user idle this long starts with a full bucket.
const CALLERS: u64 = 100_000;
const CALLER_IDLE: Duration = Duration::from_secs(60);

/// A user's lookup budget: `tokens` left as of `at`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The lookup caches and the per-user rate limit.
pub struct Lookups {
    owners: Cache<ActorName, UserId>,
    missing: Cache<ActorName, ()>,
    buckets: Cache<UserId, Arc<Mutex<Bucket>>>,
    per_second: f64,
}

/// A lookup refused by the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When the next lookup would be allowed.
    pub retry_after: Duration,
}

impl Lookups {
    /// Caches with the documented bounds; `per_second` lookups per user (also the burst).
    pub fn new(per_second: u32) -> Lookups {
        Lookups {
            owners: Cache::builder()
                .max_capacity(OWNERS)
                .time_to_idle(OWNER_IDLE)
                .build(),
            missing: Cache::builder()
                .max_capacity(MISSING)
                .time_to_live(MISSING_FOR)
                .build(),
            buckets: Cache::builder()
                .max_capacity(CALLERS)
                .time_to_idle(CALLER_IDLE)
                .build(),
            per_second: f64::from(per_second.max(1)),
        }
    }

    /// What is remembered of `name`: `Some(Some(owner))` found, `Some(None)` missing a moment
    /// ago, `None` unknown.
    pub fn known(&self, name: &ActorName) -> Option<Option<UserId>> {
        if let Some(owner) = self.owners.get(name) {
            return Some(Some(owner));
        }
        self.missing.get(name).map(|()| None)
    }

    /// Remembers what the registry said of `name`.
    pub fn remember(&self, name: &ActorName, owner: Option<&UserId>) {
        match owner {
            Some(owner) => {
                self.missing.invalidate(name);
                self.owners.insert(name.clone(), owner.clone());
            }
            None => self.missing.insert(name.clone(), ()),
        }
    }

    /// `name` was provisioned here: stop believing it missing.
    pub fn provisioned(&self, name: &ActorName) {
        self.missing.invalidate(name);
    }

    /// `name` was destroyed here.
    pub fn destroyed(&self, name: &ActorName) {
        self.owners.invalidate(name);
    }

    /// Takes one registry lookup from `caller`'s budget.
    pub fn take(&self, caller: &UserId) -> Result<(), Throttled> {
        let per_second = self.per_second;
        let bucket = self.buckets.get_with_by_ref(caller, || {
            Arc::new(Mutex::new(Bucket {
                tokens: per_second,
                at: Instant::now(),
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(per_second);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Throttled {
                retry_after: Duration::from_secs_f64(wait),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_the_bucket_refills() {
        let lookups = Lookups::new(5);
        let alice: UserId = "alice".parse().unwrap();
        let bob: UserId = "bob".parse().unwrap();
        for _ in 0..5 {
            lookups.take(&alice).unwrap();
        }
        let refused = lookups.take(&alice).unwrap_err();
        assert!(
            refused.retry_after <= Duration::from_millis(200),
            "{refused:?}"
        );
        // Another user has a budget of their own.
        lookups.take(&bob).unwrap();
        std::thread::sleep(Duration::from_millis(450));
        lookups.take(&alice).unwrap();
        lookups.take(&alice).unwrap();
    }

    #[test]
    fn missing_is_forgotten_when_provisioned_and_owners_when_destroyed() {
        let lookups = Lookups::new(5);
        let alice: UserId = "alice".parse().unwrap();
        let name = ActorName::Legacy(alice.clone());
        assert_eq!(lookups.known(&name), None);
        lookups.remember(&name, None);
        assert_eq!(lookups.known(&name), Some(None));
        lookups.provisioned(&name);
        assert_eq!(lookups.known(&name), None);
        lookups.remember(&name, Some(&alice));
        assert_eq!(lookups.known(&name), Some(Some(alice.clone())));
        lookups.destroyed(&name);
        assert_eq!(lookups.known(&name), None);
    }
}
