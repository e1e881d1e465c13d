//! The runtime's randomness: the jitter of alarm retries and of `retry::with_retry` (both
//! seedable, so that a test can reproduce a backoff sequence) and the operating system's
//! randomness for unique ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of random numbers: the operating system's, or a seeded sequence.
#[derive(Clone, Debug)]
pub(crate) enum Random {
    Os,
    /// SplitMix64 over a shared counter: the same seed gives the same sequence.
    Seeded(Arc<AtomicU64>),
}

impl Random {
    pub(crate) fn seeded(seed: u64) -> Random {
        Random::Seeded(Arc::new(AtomicU64::new(seed)))
    }

    /// A uniformly random number in [0, 1).
    pub(crate) fn unit(&self) -> f64 {
        let bits = match self {
            Random::Os => os_u64(),
            Random::Seeded(state) => {
                let mut z = state
                    .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                    .wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
        };
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 32 random bytes from the operating system.
pub(crate) fn bytes32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    bytes
}

fn os_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::Random;

    #[test]
    fn a_seed_gives_one_sequence_within_the_unit_interval() {
        let (a, b) = (Random::seeded(7), Random::seeded(7));
        let first: Vec<f64> = (0..100).map(|_| a.unit()).collect();
        assert_eq!(first, (0..100).map(|_| b.unit()).collect::<Vec<_>>());
        assert!(first.iter().all(|x| (0.0..1.0).contains(x)));
        assert_ne!(first[0], Random::seeded(8).unit());
    }
}
