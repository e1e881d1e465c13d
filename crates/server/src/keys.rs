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

/// Secrets given explicitly; the rest come from the keys file. Its `Debug` shows which are
/// given, never their values.
#[derive(Clone, Default)]
pub struct KeyOverrides {
    /// The internal API key (`BURROW_INTERNAL_API_KEY`, at least 32 bytes).
    pub internal_api_key: Option<String>,
    /// The token secret (`BURROW_TOKEN_SECRET`, at least 32 bytes).
    pub token_secret: Option<String>,
    /// The gateway secret (`BURROW_GATEWAY_SECRET`, at least 32 bytes).
    pub gateway_secret: Option<String>,
    /// The key that wraps instances' data keys (`BURROW_SECRETS_KEY`, 64 hex digits). It must
    /// equal the one in an existing keys file: secrets sealed with one key cannot be read
    /// with another.
    pub secrets_key: Option<String>,
}

impl std::fmt::Debug for KeyOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given = |v: &Option<String>| if v.is_some() { "<given>" } else { "None" };
        f.debug_struct("KeyOverrides")
            .field("internal_api_key", &given(&self.internal_api_key))
            .field("token_secret", &given(&self.token_secret))
            .field("gateway_secret", &given(&self.gateway_secret))
            .field("secrets_key", &given(&self.secrets_key))
            .finish()
    }
}

/// The shortest secret accepted, in bytes (HS256 keys shorter than the hash are weak: RFC
/// 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

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
    #[error(
        "{name} must be at least {MIN_SECRET_BYTES} bytes; the one given has {len} (generate one with `openssl rand -hex 32`)"
    )]
    TooShort {
        /// The environment variable that gives it.
        name: &'static str,
        /// Its length.
        len: usize,
    },
    /// The given secrets key is not 64 hex digits.
    #[error(
        "BURROW_SECRETS_KEY must be 64 hex digits (32 bytes; generate one with `openssl rand -hex 32`)"
    )]
    InvalidSecretsKey,
    /// The given secrets key differs from the one the keys file holds.
    #[error(
        "BURROW_SECRETS_KEY differs from the secretsKey in {path}: secrets sealed with the stored key could not be read with the given one. Start without BURROW_SECRETS_KEY to use the stored key, or give the stored one"
    )]
    SecretsKeyMismatch {
        /// The keys file.
        path: PathBuf,
    },
    /// A secret that must be given (replicated mode keeps no keys file) was not.
    #[error(
        "{name} (or {flag}) must be given with --durability replicated: a keys file generated into the data directory would be lost with the disk that mode protects against (generate one with `openssl rand -hex 32`)"
    )]
    Missing {
        /// The environment variable that gives it.
        name: &'static str,
        /// The flag that gives it.
        flag: &'static str,
    },
    /// The keys file can be read or written by other users.
    #[error(
        "{path} is accessible to other users (mode {mode:04o}); it holds the server's secrets. Fix it with `chmod 600 {path}` (and check who may have read it)"
    )]
    Exposed {
        /// The keys file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The keys' names as operators set them, with the flags that give them too.
const GIVEN: [(&str, &str); 4] = [
    ("BURROW_TOKEN_SECRET", "--token-secret"),
    ("BURROW_INTERNAL_API_KEY", "--internal-api-key"),
    ("BURROW_GATEWAY_SECRET", "--gateway-secret"),
    ("BURROW_SECRETS_KEY", "--secrets-key"),
];

fn is_hex_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// The secrets exactly as given, every one required; no keys file is read or written.
    /// For replicated durability, whose data must survive the loss of the data directory.
    pub fn given(overrides: &KeyOverrides) -> Result<Keys, KeyError> {
        let values = [
            &overrides.token_secret,
            &overrides.internal_api_key,
            &overrides.gateway_secret,
            &overrides.secrets_key,
        ];
        for ((name, flag), value) in GIVEN.into_iter().zip(values) {
            let Some(value) = value else {
                return Err(KeyError::Missing { name, flag });
            };
            if name != "BURROW_SECRETS_KEY" && value.len() < MIN_SECRET_BYTES {
                return Err(KeyError::TooShort {
                    name,
                    len: value.len(),
                });
            }
        }
        let secrets_key = overrides
            .secrets_key
            .as_deref()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if !is_hex_key(&secrets_key) {
            return Err(KeyError::InvalidSecretsKey);
        }
        let given = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(Keys {
            internal_api_key: given(&overrides.internal_api_key),
            token_secret: given(&overrides.token_secret),
            gateway_secret: given(&overrides.gateway_secret),
            secrets_key,
        })
    }

    /// The secrets for `data_dir`: each override if given, else the one stored in the keys
    /// file, generated (and stored) the first time.
    pub fn resolve(data_dir: &Path, overrides: &KeyOverrides) -> Result<Keys, KeyError> {
        for (name, value) in [
            ("BURROW_INTERNAL_API_KEY", &overrides.internal_api_key),
            ("BURROW_TOKEN_SECRET", &overrides.token_secret),
            ("BURROW_GATEWAY_SECRET", &overrides.gateway_secret),
        ] {
            if let Some(v) = value
                && v.len() < MIN_SECRET_BYTES
            {
                return Err(KeyError::TooShort { name, len: v.len() });
            }
        }
        let given_key = overrides
            .secrets_key
            .as_deref()
            .map(str::to_ascii_lowercase);
        if given_key.as_deref().is_some_and(|k| !is_hex_key(k)) {
            return Err(KeyError::InvalidSecretsKey);
        }
        let stored = Keys::load_or_create(data_dir, given_key.as_deref())?;
        if let Some(given) = &given_key
            && !stored.secrets_key.eq_ignore_ascii_case(given)
        {
            return Err(KeyError::SecretsKeyMismatch {
                path: data_dir.join(KEYS_FILE),
            });
        }
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

    /// The stored keys; the first time, new ones (with `secrets_key` if given).
    fn load_or_create(data_dir: &Path, secrets_key: Option<&str>) -> Result<Keys, KeyError> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = data_dir.join(KEYS_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Exposed { path, mode });
                }
                let keys: Keys = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                if !is_hex_key(&keys.secrets_key) {
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
                    secrets_key: secrets_key.map_or_else(|| random_hex(32), str::to_owned),
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
                        Keys::load_or_create(data_dir, secrets_key)
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
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const LONG: &str = "a-token-secret-of-at-least-32-bytes!";

    #[test]
    fn generated_once_reused_and_overridable() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        let again = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        assert!(first == again);
        let mode = std::fs::metadata(dir.path().join(KEYS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let given = KeyOverrides {
            token_secret: Some(LONG.into()),
            ..KeyOverrides::default()
        };
        let overridden = Keys::resolve(dir.path(), &given).unwrap();
        assert_eq!(overridden.token_secret, LONG);
        assert_eq!(overridden.internal_api_key, first.internal_api_key);
        std::fs::write(dir.path().join(KEYS_FILE), b"{not json").unwrap();
        assert!(matches!(
            Keys::resolve(dir.path(), &KeyOverrides::default()),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn short_secrets_are_refused_naming_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        for (overrides, name) in [
            (
                KeyOverrides {
                    token_secret: Some("x".repeat(31)),
                    ..KeyOverrides::default()
                },
                "BURROW_TOKEN_SECRET",
            ),
            (
                KeyOverrides {
                    internal_api_key: Some("short".into()),
                    ..KeyOverrides::default()
                },
                "BURROW_INTERNAL_API_KEY",
            ),
            (
                KeyOverrides {
                    gateway_secret: Some("x".repeat(20)),
                    ..KeyOverrides::default()
                },
                "BURROW_GATEWAY_SECRET",
            ),
        ] {
            let e = Keys::resolve(dir.path(), &overrides).unwrap_err();
            assert!(e.to_string().starts_with(name), "{e}");
        }
        // Nothing was written for a refused start.
        assert!(!dir.path().join(KEYS_FILE).exists());
        let exact = KeyOverrides {
            token_secret: Some("x".repeat(32)),
            ..KeyOverrides::default()
        };
        Keys::resolve(dir.path(), &exact).unwrap();
    }

    #[test]
    fn a_given_secrets_key_is_stored_the_first_time_and_must_match_after() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AB".repeat(32);
        let given = KeyOverrides {
            secrets_key: Some(key.clone()),
            ..KeyOverrides::default()
        };
        let keys = Keys::resolve(dir.path(), &given).unwrap();
        assert_eq!(keys.secrets_key, key.to_ascii_lowercase());
        // Again with the same key (any case), and without it: the stored one.
        Keys::resolve(dir.path(), &given).unwrap();
        let stored = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        assert_eq!(stored.secrets_key, keys.secrets_key);
        let other = KeyOverrides {
            secrets_key: Some("cd".repeat(32)),
            ..KeyOverrides::default()
        };
        let e = Keys::resolve(dir.path(), &other).unwrap_err();
        assert!(matches!(e, KeyError::SecretsKeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("BURROW_SECRETS_KEY"), "{e}");
        for bad in ["abc", &"zz".repeat(32), &"ab".repeat(33)] {
            let bad = KeyOverrides {
                secrets_key: Some(bad.to_owned()),
                ..KeyOverrides::default()
            };
            assert!(matches!(
                Keys::resolve(dir.path(), &bad),
                Err(KeyError::InvalidSecretsKey)
            ));
        }
    }

    #[test]
    fn a_keys_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
        let path = dir.path().join(KEYS_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap_err();
        assert!(matches!(e, KeyError::Exposed { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Keys::resolve(dir.path(), &KeyOverrides::default()).unwrap();
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = KeyOverrides {
            internal_api_key: Some("internal-key-that-must-not-leak-000".into()),
            token_secret: Some("token-secret-that-must-not-leak-0000".into()),
            gateway_secret: Some("gateway-secret-that-must-not-leak-00".into()),
            secrets_key: Some("ef".repeat(32)),
        };
        let keys = Keys::resolve(dir.path(), &overrides).unwrap();
        let shown = format!("{overrides:?} {keys:?} {overrides:#?} {keys:#?}");
        for secret in [
            &keys.internal_api_key,
            &keys.token_secret,
            &keys.gateway_secret,
            &keys.secrets_key,
        ] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
        assert!(shown.contains("<given>"), "{shown}");
    }
}
