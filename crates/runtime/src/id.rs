//! Actor ids: 32 bytes, shown as 64 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The address of an actor within a namespace.
///
/// An id is only an address: creating one activates nothing. Ids come from
/// [`Namespace::id_from_name`](crate::Namespace::id_from_name) (deterministic),
/// [`Namespace::new_unique_id`](crate::Namespace::new_unique_id) (random) or
/// [`Namespace::id_from_string`](crate::Namespace::id_from_string) (a previously shown id).
///
/// A name-derived id is the SHA-256 of the namespace's name, one NUL byte, and the actor's
/// name. The id decides where the actor's file lives on disk, so this derivation is fixed
/// forever: changing it would orphan every existing actor.
///
/// ```
/// use burrow_runtime::ActorId;
/// let id = ActorId::for_name("counter", "alice");
/// let text = id.to_string();
/// assert_eq!(text.len(), 64);
/// assert_eq!(text.parse::<ActorId>()?, id);
/// assert_eq!(ActorId::from_bytes(id.as_bytes()), Some(id));
/// # Ok::<(), burrow_runtime::InvalidActorId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId([u8; 32]);

impl ActorId {
    /// The id of the actor called `name` in the namespace called `namespace` — the same as
    /// [`Namespace::id_from_name`](crate::Namespace::id_from_name), for tools that have no
    /// typed namespace at hand.
    ///
    /// ```
    /// use burrow_runtime::ActorId;
    /// let id = ActorId::for_name("user", "alice");
    /// assert_eq!(id, ActorId::for_name("user", "alice"));
    /// assert_ne!(id, ActorId::for_name("team", "alice")); // the namespace is part of it
    /// ```
    pub fn for_name(namespace: &str, name: &str) -> ActorId {
        let mut hasher = Sha256::new();
        hasher.update(namespace.as_bytes());
        hasher.update([0u8]);
        hasher.update(name.as_bytes());
        ActorId(hasher.finalize().into())
    }

    pub(crate) fn random() -> ActorId {
        ActorId(crate::random::bytes32())
    }

    /// The id with these 32 bytes; `None` for any other length.
    ///
    /// ```
    /// use burrow_runtime::ActorId;
    /// let id = ActorId::for_name("user", "alice");
    /// assert_eq!(ActorId::from_bytes(id.as_bytes()), Some(id));
    /// assert_eq!(ActorId::from_bytes(&[0; 31]), None);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Option<ActorId> {
        bytes.try_into().ok().map(ActorId)
    }

    /// The raw bytes.
    ///
    /// ```
    /// use burrow_runtime::ActorId;
    /// let id = ActorId::for_name("user", "alice");
    /// assert_eq!(id.as_bytes().len(), 32);
    /// assert!(id.to_string().starts_with(&format!("{:02x}", id.as_bytes()[0])));
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Which of `shards` shards the actor lives on.
    pub(crate) fn shard(&self, shards: usize) -> usize {
        let head = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        (head % shards as u64) as usize
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({self})")
    }
}

/// A string that is not an actor id.
///
/// ```
/// let err = "not-an-id".parse::<burrow_runtime::ActorId>().unwrap_err();
/// assert!(err.to_string().contains("\"not-an-id\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid actor id {input:?}: expected 64 lower-case hex digits")]
pub struct InvalidActorId {
    input: String,
}

impl FromStr for ActorId {
    type Err = InvalidActorId;

    /// Accepts exactly the form [`Display`](fmt::Display) produces: 64 lower-case hex digits.
    fn from_str(input: &str) -> Result<ActorId, InvalidActorId> {
        let invalid = || InvalidActorId {
            input: input.chars().take(80).collect(),
        };
        if input.len() != 64
            || !input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&input[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(ActorId(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::ActorId;

    #[test]
    fn name_derivation_is_fixed() {
        // Pinned: these ids decide file paths on disk. If this fails, existing data is lost.
        assert_eq!(
            ActorId::for_name("counter", "alice").to_string(),
            "97409dcccfd271f097f199c55abc8177f8560968a524d46b620422abaa1bc757"
        );
    }

    #[test]
    fn text_round_trips_and_rejects_other_forms() {
        let id = ActorId::random();
        assert_eq!(id.to_string().parse::<ActorId>().unwrap(), id);
        assert!(id.to_string().to_uppercase().parse::<ActorId>().is_err());
        assert!("abc".parse::<ActorId>().is_err());
        let err = "zz".repeat(32).parse::<ActorId>().unwrap_err();
        assert!(err.to_string().contains("64 lower-case hex digits"));
    }
}
