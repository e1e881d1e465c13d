//! Secrets at rest: AES-256-GCM under a per-instance data key, itself wrapped (AES-256-GCM) by
//! the server's key. The actor's file holds only envelopes; plaintext exists only on the way
//! into a sandbox's environment.
//!
//! Each envelope carries the wrapped data key, so an envelope decrypts on its own. Every
//! ciphertext is bound (as associated data) to the instance's sandbox id and the secret's name:
//! an envelope copied to another name or instance does not decrypt.

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use burrow_identity::SandboxId;
use burrow_state::SecretEnvelope;

/// The envelope's algorithm name.
pub const ALGORITHM: &str = "aes-256-gcm";
/// The envelope format this code writes: nonce (12 bytes) followed by ciphertext and tag, for
/// both the value and the wrapped key.
pub const ENVELOPE_VERSION: u32 = 1;

const NONCE_LEN: usize = 12;

/// The server's key-encryption key (32 bytes). Its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct ServerKey(Key<Aes256Gcm>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The server key is not 32 bytes.
    #[error("the server key must be 32 bytes, got {0}")]
    KeyLength(usize),
    /// The envelope uses an algorithm or version this build does not know.
    #[error("secret {name:?}: unsupported envelope {algorithm} v{version}")]
    Unsupported {
        /// The secret.
        name: String,
        /// Its algorithm.
        algorithm: String,
        /// Its version.
        version: u32,
    },
    /// The envelope did not decrypt: another server key, a damaged value, or an envelope moved
    /// from another name or instance.
    #[error("secret {0:?} does not decrypt with this server key")]
    Undecryptable(String),
}

impl ServerKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ServerKey, SecretError> {
        Key::<Aes256Gcm>::try_from(bytes)
            .map(ServerKey)
            .map_err(|_| SecretError::KeyLength(bytes.len()))
    }

    /// A new random key.
    pub fn generate() -> ServerKey {
        ServerKey(Key::<Aes256Gcm>::generate())
    }

    /// The key's bytes, to store it.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.into()
    }

    /// Encrypts `value` as the secret `name` of the instance `sandbox`. `data_key` is the
    /// instance's data key, unwrapped from one of its existing envelopes
    /// ([`ServerKey::data_key`]); `None` makes a new one (its first secret).
    pub fn seal(
        &self,
        sandbox: &SandboxId,
        name: &str,
        value: &str,
        data_key: Option<&DataKey>,
    ) -> SecretEnvelope {
        let fresh;
        let data_key = match data_key {
            Some(k) => k,
            None => {
                fresh = DataKey(Key::<Aes256Gcm>::generate());
                &fresh
            }
        };
        let wrapped_key = encrypt(&self.0, &data_key.0, &key_aad(sandbox));
        let ciphertext = encrypt(&data_key.0, value.as_bytes(), &value_aad(sandbox, name));
        SecretEnvelope {
            ciphertext,
            wrapped_key,
            algorithm: ALGORITHM.to_owned(),
            version: ENVELOPE_VERSION,
        }
    }

    /// Unwraps the data key an envelope carries.
    pub fn data_key(
        &self,
        sandbox: &SandboxId,
        name: &str,
        envelope: &SecretEnvelope,
    ) -> Result<DataKey, SecretError> {
        check_format(name, envelope)?;
        let bytes = decrypt(&self.0, &envelope.wrapped_key, &key_aad(sandbox))
            .ok_or_else(|| SecretError::Undecryptable(name.to_owned()))?;
        Key::<Aes256Gcm>::try_from(bytes.as_slice())
            .map(DataKey)
            .map_err(|_| SecretError::Undecryptable(name.to_owned()))
    }

    /// Decrypts the secret `name` of the instance `sandbox`.
    pub fn open(
        &self,
        sandbox: &SandboxId,
        name: &str,
        envelope: &SecretEnvelope,
    ) -> Result<String, SecretError> {
        let data_key = self.data_key(sandbox, name, envelope)?;
        let bytes = decrypt(&data_key.0, &envelope.ciphertext, &value_aad(sandbox, name))
            .ok_or_else(|| SecretError::Undecryptable(name.to_owned()))?;
        String::from_utf8(bytes).map_err(|_| SecretError::Undecryptable(name.to_owned()))
    }
}

/// An instance's data key, unwrapped. Never stored unwrapped, never printed.
pub struct DataKey(Key<Aes256Gcm>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn check_format(name: &str, envelope: &SecretEnvelope) -> Result<(), SecretError> {
    if envelope.algorithm != ALGORITHM || envelope.version != ENVELOPE_VERSION {
        return Err(SecretError::Unsupported {
            name: name.to_owned(),
            algorithm: envelope.algorithm.clone(),
            version: envelope.version,
        });
    }
    Ok(())
}

fn key_aad(sandbox: &SandboxId) -> Vec<u8> {
    format!("burrow data key\0{sandbox}").into_bytes()
}

fn value_aad(sandbox: &SandboxId, name: &str) -> Vec<u8> {
    format!("burrow secret\0{sandbox}\0{name}").into_bytes()
}

/// Nonce followed by ciphertext and tag. Nonces are random: 96 bits, a handful of messages per
/// key, far below the collision bound.
/// The length of the value an envelope seals, without opening it (AES-GCM adds a nonce in
/// front and a 16-byte tag behind).
pub fn sealed_len(envelope: &SecretEnvelope) -> usize {
    envelope.ciphertext.len().saturating_sub(NONCE_LEN + 16)
}

fn encrypt(key: &Key<Aes256Gcm>, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce = Nonce::generate();
    let sealed = Aes256Gcm::new(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn decrypt(key: &Key<Aes256Gcm>, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).ok()?;
    Aes256Gcm::new(key)
        .decrypt(&nonce, Payload { msg: body, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(n: u8) -> SandboxId {
        format!("ki_{:032x}", n).parse().unwrap()
    }

    #[test]
    fn round_trip_shares_the_instance_data_key() {
        let key = ServerKey::generate();
        let first = key.seal(&sandbox(1), "A", "alpha", None);
        let dk = key.data_key(&sandbox(1), "A", &first).unwrap();
        let second = key.seal(&sandbox(1), "B", "beta", Some(&dk));
        assert_eq!(key.open(&sandbox(1), "A", &first).unwrap(), "alpha");
        assert_eq!(key.open(&sandbox(1), "B", &second).unwrap(), "beta");
        let dk2 = key.data_key(&sandbox(1), "B", &second).unwrap();
        assert_eq!(dk.0, dk2.0);
        assert!(!first.ciphertext.windows(5).any(|w| w == b"alpha"));
    }

    #[test]
    fn moved_tampered_or_foreign_envelopes_do_not_open() {
        let key = ServerKey::generate();
        let env = key.seal(&sandbox(1), "A", "alpha", None);
        assert_eq!(
            key.open(&sandbox(1), "B", &env),
            Err(SecretError::Undecryptable("B".into()))
        );
        assert!(key.open(&sandbox(2), "A", &env).is_err());
        assert!(ServerKey::generate().open(&sandbox(1), "A", &env).is_err());
        let mut tampered = env.clone();
        *tampered.ciphertext.last_mut().unwrap() ^= 1;
        assert!(key.open(&sandbox(1), "A", &tampered).is_err());
        let mut short = env.clone();
        short.ciphertext.truncate(3);
        assert!(key.open(&sandbox(1), "A", &short).is_err());
        let mut future = env;
        future.version = 9;
        assert!(matches!(
            key.open(&sandbox(1), "A", &future),
            Err(SecretError::Unsupported { version: 9, .. })
        ));
    }

    #[test]
    fn server_keys_must_be_32_bytes() {
        assert_eq!(
            ServerKey::from_bytes(&[0; 31]).unwrap_err(),
            SecretError::KeyLength(31)
        );
        let key = ServerKey::generate();
        assert_eq!(
            ServerKey::from_bytes(&key.to_bytes()).unwrap().to_bytes(),
            key.to_bytes()
        );
    }
}
