//! The runtime's one source of randomness (retry and alarm jitter, unique ids).

/// A uniformly random number in [0, 1).
pub(crate) fn unit() -> f64 {
    (u64_from_os() >> 11) as f64 / (1u64 << 53) as f64
}

/// 32 random bytes.
pub(crate) fn bytes32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    bytes
}

fn u64_from_os() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    u64::from_le_bytes(bytes)
}
