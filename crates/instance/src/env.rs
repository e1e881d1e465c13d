//! Configuration rules (env var and secret names) and the environment a sandbox receives.

use std::collections::BTreeMap;

use burrow_identity::{OrgId, SandboxId};
use hmac::{KeyInit as _, Mac as _};

/// Names starting with this are set by Burrow and cannot be configured.
pub const RESERVED_PREFIX: &str = "BURROW_";
/// The organisation's id, when the instance has one.
pub const ORGANIZATION_ID_ENV: &str = "BURROW_ORGANIZATION_ID";
/// The sandbox's id.
pub const SANDBOX_ID_ENV: &str = burrow_sandbox::SANDBOX_ID_ENV;
/// The token the sandbox's gateway expects in `x-burrow-proxy-token`.
pub const GATEWAY_TOKEN_ENV: &str = "BURROW_GATEWAY_TOKEN";
/// The image tag recorded by the last restart that named one.
pub const IMAGE_TAG_ENV: &str = "BURROW_IMAGE_TAG";

/// The longest name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The longest value (env var or secret), in bytes.
pub const MAX_VALUE_LEN: usize = 32 * 1024;
/// The most env vars plus secrets one instance may hold.
pub const MAX_ENTRIES: usize = 256;

/// Checks an env var or secret name: `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_NAME_LEN`]
/// bytes, not starting with [`RESERVED_PREFIX`]. The error names the input and the rule.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Err(format!(
            "{kind} name {:?} is invalid: names match [A-Za-z_][A-Za-z0-9_]*",
            cut(name)
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{kind} name {:?} is {} bytes; the limit is {MAX_NAME_LEN}",
            cut(name),
            name.len()
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "{kind} name {name:?} is reserved: names starting with {RESERVED_PREFIX} are set by Burrow"
        ));
    }
    Ok(())
}

/// Checks a value's size and that it can go into a process environment (no NUL byte).
pub fn check_value(kind: &str, name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "{kind} {name:?} is {} bytes; the limit is {MAX_VALUE_LEN}",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err(format!("{kind} {name:?} contains a NUL byte"));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The gateway token of a sandbox: lower-case hex HMAC-SHA256 of its id under `secret`.
pub fn gateway_token(secret: &[u8], sandbox: &SandboxId) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(sandbox.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Everything a sandbox's process environment holds: the configured env vars, the decrypted
/// secrets, and Burrow's own variables (which win over nothing: configured names cannot use
/// the reserved prefix).
pub fn sandbox_environment(
    env_vars: &BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    sandbox: &SandboxId,
    org: Option<OrgId>,
    gateway_secret: &[u8],
    image_tag: Option<&str>,
) -> BTreeMap<String, String> {
    let mut env = env_vars.clone();
    env.extend(secrets);
    env.insert(SANDBOX_ID_ENV.to_owned(), sandbox.to_string());
    env.insert(
        GATEWAY_TOKEN_ENV.to_owned(),
        gateway_token(gateway_secret, sandbox),
    );
    if let Some(org) = org {
        env.insert(ORGANIZATION_ID_ENV.to_owned(), org.to_string());
    }
    if let Some(tag) = image_tag {
        env.insert(IMAGE_TAG_ENV.to_owned(), tag.to_owned());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_and_the_prefix_is_reserved() {
        for ok in ["A", "_", "a_b9", "_9", "Burrow_x", "burrow_x"] {
            assert_eq!(check_name("env var", ok), Ok(()), "{ok}");
        }
        for bad in ["", "9A", "A-B", "A B", "é", "A=B"] {
            let e = check_name("env var", bad).unwrap_err();
            assert!(e.contains("[A-Za-z_][A-Za-z0-9_]*"), "{e}");
        }
        let e = check_name("secret", "BURROW_X").unwrap_err();
        assert!(e.contains("reserved") && e.contains("BURROW_X"), "{e}");
        assert!(check_name("env var", &"A".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(check_value("env var", "A", "a\0b").is_err());
        assert!(check_value("env var", "A", &"x".repeat(MAX_VALUE_LEN + 1)).is_err());
    }

    #[test]
    fn gateway_token_is_hmac_sha256_hex() {
        let sandbox: SandboxId = "ki_0123456789abcdef0123456789abcdef".parse().unwrap();
        // python3: hmac.new(b"secret", b"ki_0123…cdef", hashlib.sha256).hexdigest()
        assert_eq!(
            gateway_token(b"secret", &sandbox),
            "05c07be87dc8d34bb621b9b8e196f107a3474031deb16582bc39abd369c40646"
        );
        assert_ne!(
            gateway_token(b"secret2", &sandbox),
            gateway_token(b"secret", &sandbox)
        );
    }
}
