//! Field values as bytes: bincode 2 (standard configuration) through serde.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most a decode may allocate. A damaged length prefix can claim anything (7 EB was seen
/// in a test): without a limit, bincode allocates first and the process aborts. The largest
/// legitimate field (256 env vars or secrets of 32 KiB each) is about 8 MiB.
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes one field's value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string())
}

/// Decodes one field's value; bytes left over count as a failure, not as a value.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, decode_config())
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} bytes left over after the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_length_prefix_is_an_error_not_an_allocation() {
        // A string whose varint length prefix claims about 7 * 10^18 bytes.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&7_050_555_373_519_515_687u64.to_le_bytes());
        let e = decode::<String>(&bytes).unwrap_err();
        assert!(e.to_lowercase().contains("limit"), "{e}");
        assert!(decode::<Vec<String>>(&bytes).is_err());
        // Legitimate large values still decode.
        let big = vec!["x".repeat(32 * 1024); 256];
        assert_eq!(decode::<Vec<String>>(&encode(&big).unwrap()).unwrap(), big);
    }
}
