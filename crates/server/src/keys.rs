//! The server's secrets: given by flag or environment, or generated once into the data
//! directory and reused, so that tokens and sealed secrets survive restarts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file holding generated secrets, inside the data directory (mode 0600).
pub const KEYS_FILE: &str = "server-keys.json";

/// Every secret the server uses.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keys {
    /// Platform callers send it in `x-internal-api-key`.
    pub internal_api_key: String,
    /// Signs and checks bearer tokens (HS256).
    pub token_secret: String,
    /// Derives each sandbox's gateway token.
    pub gateway_secret: String,
    /// Wraps instances' data keys (64 hex digits: 32 bytes).
    pub secrets_key: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Secrets given explicitly; the rest come from the keys file.
#[derive(Debug, Clone, Default)]
pub struct KeyOverrides {
    /// The internal API key.
    pub internal_api_key: Option<String>,
    /// The token secret.
    pub token_secret: Option<String>,
    /// The gateway secret.
    pub gateway_secret: Option<String>,
}

/// Why the secrets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keys file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The keys file does not parse.
    #[error("{path} is not a valid keys file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A given secret is too short to be safe.
    #[error("{name} must be at least 16 characters")]
    TooShort {
        /// Which secret.
        name: &'static str,
    },
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// The secrets for `data_dir`: each override if given, else the one stored in the keys
    /// file, generated (and stored) the first time.
    pub fn resolve(data_dir: &Path, overrides: &KeyOverrides) -> Result<Keys, KeyError> {
        for (name, value) in [
            ("the internal API key", &overrides.internal_api_key),
            ("the token secret", &overrides.token_secret),
            ("the gateway secret", &overrides.gateway_secret),
        ] {
            if value.as_ref().is_some_and(|v| v.len() < 16) {
                return Err(KeyError::TooShort { name });
            }
        }
        let stored = Keys::load_or_create(data_dir)?;
        Ok(Keys {
            internal_api_key: overrides
                .internal_api_key
                .clone()
                .unwrap_or(stored.internal_api_key),
            token_secret: overrides
                .token_secret
                .clone()
                .unwrap_or(stored.token_secret),
            gateway_secret: overrides
                .gateway_secret
                .clone()
                .unwrap_or(stored.gateway_secret),
            secrets_key: stored.secrets_key,
        })
    }

    fn load_or_create(data_dir: &Path) -> Result<Keys, KeyError> {
        let path = data_dir.join(KEYS_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let keys: Keys = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                if keys.secrets_key.len() != 64
                    || !keys.secrets_key.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(KeyError::Corrupt {
                        path,
                        reason: "secretsKey must be 64 hex digits".to_owned(),
                    });
                }
                Ok(keys)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let keys = Keys {
                    internal_api_key: random_hex(24),
                    token_secret: random_hex(32),
                    gateway_secret: random_hex(32),
                    secrets_key: random_hex(32),
                };
                let json = serde_json::to_vec_pretty(&keys).expect("keys serialise");
                // Written under a temporary name, then linked into place: two processes
                // starting at once agree on one set of keys.
                let tmp = data_dir.join(format!("{KEYS_FILE}.{}.tmp", std::process::id()));
                {
                    use std::io::Write as _;
                    use std::os::unix::fs::OpenOptionsExt as _;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)
                        .map_err(io)?;
                    f.write_all(&json).and_then(|()| f.sync_all()).map_err(io)?;
                }
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(keys),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Keys::load_or_create(data_dir)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key that wraps instances' data keys.
    pub fn server_key(&self) -> burrow_instance::secrets::ServerKey {
        let bytes: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(&self.secrets_key[2 * i..2 * i + 2], 16).expect("checked hex")
            })
            .collect();
        burrow_instance::secrets::ServerKey::from_bytes(&bytes).expect("32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_reused_and_overridable() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        let again = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        assert!(first == again);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(KEYS_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let given = KeyOverrides {
            token_secret: Some("a-token-secret-of-some-length".into()),
            ..KeyOverrides::default()
        };
        let overridden = Keys::resolve(dir.path(), &given).unwrap();
        assert_eq!(overridden.token_secret, "a-token-secret-of-some-length");
        assert_eq!(overridden.internal_api_key, first.internal_api_key);
        let short = KeyOverrides {
            internal_api_key: Some("short".into()),
            ..KeyOverrides::default()
        };
        assert!(matches!(
            Keys::resolve(dir.path(), &short),
            Err(KeyError::TooShort { .. })
        ));
        std::fs::write(dir.path().join(KEYS_FILE), b"{not json").unwrap();
        assert!(matches!(
            Keys::resolve(dir.path(), &KeyOverrides::default()),
            Err(KeyError::Corrupt { .. })
        ));
    }
}
