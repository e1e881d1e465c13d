//! Configuration rules (env var and secret names) and the environment a sandbox receives.

use std::collections::BTreeMap;

use burrow_identity::{OrgId, SandboxId};
use hmac::{KeyInit as _, Mac as _};

/// Names starting with this are set by Burrow and cannot be configured.
pub const RESERVED_PREFIX: &str = "BURROW_";
/// Prefixes no configured name may start with: Burrow's own variables, the sandbox gateway's
/// control variables, and the dynamic loader's (`LD_PRELOAD`, `LD_LIBRARY_PATH`, … decide
/// what code a program runs).
pub const REFUSED_PREFIXES: [&str; 3] = [RESERVED_PREFIX, "SANDBOX_", "LD_"];
/// Names no configured variable may have: where programs are looked up.
pub const REFUSED_NAMES: [&str; 1] = ["PATH"];
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
/// The most bytes of `NAME=value` strings (each with its terminating NUL) the configured env
/// vars and secrets may take together. Linux refuses one string over 128 KiB (`MAX_ARG_STRLEN`)
/// and an environment plus arguments over a quarter of the stack limit (2 MiB by default);
/// keeping the whole environment under 1 MiB, with room for Burrow's own variables, means any
/// configuration the API accepts can start.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024 - 8 * 1024;

/// The bytes `name=value\0` takes in a process environment.
pub fn environment_bytes(name: &str, value_len: usize) -> usize {
    name.len() + 1 + value_len + 1
}

/// Why a stored name may not reach a sandbox (a name stored before the rule existed), if so.
pub fn refused(name: &str) -> Option<String> {
    if REFUSED_NAMES.contains(&name) {
        return Some(format!(
            "{name:?} decides where programs are found and is set by the sandbox's image"
        ));
    }
    REFUSED_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
        .map(|p| match *p {
            RESERVED_PREFIX => format!(
                "{name:?} is reserved: names starting with {RESERVED_PREFIX} are set by Burrow"
            ),
            "SANDBOX_" => format!(
                "{name:?} is reserved: names starting with SANDBOX_ control the sandbox's gateway"
            ),
            _ => format!(
                "{name:?} is refused: names starting with {p} change how programs load code"
            ),
        })
}

/// Checks an env var or secret name: `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_NAME_LEN`]
/// bytes, not [`refused`]. The error names the input and the rule.
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
    match refused(name) {
        Some(why) => Err(format!("{kind} name {why}")),
        None => Ok(()),
    }
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
///
/// Names stored before they were [`refused`] are left out.
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
    env.retain(|name, _| refused(name).is_none());
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
        for refused in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "PATH",
            "SANDBOX_BOOT_DELAY_MS",
            "BURROW_GATEWAY_TOKEN",
        ] {
            let e = check_name("env var", refused).unwrap_err();
            assert!(e.contains(refused), "{e}");
        }
        for allowed in ["PATHS", "MY_PATH", "OLD_PATH", "XLD_PRELOAD", "ld_preload"] {
            assert_eq!(check_name("env var", allowed), Ok(()), "{allowed}");
        }
        assert!(check_name("env var", &"A".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(check_value("env var", "A", "a\0b").is_err());
        assert!(check_value("env var", "A", &"x".repeat(MAX_VALUE_LEN + 1)).is_err());
    }

    #[test]
    fn names_stored_before_the_rule_stay_out_of_the_environment() {
        let sandbox: SandboxId = "ki_0123456789abcdef0123456789abcdef".parse().unwrap();
        let env_vars = BTreeMap::from([
            ("LD_PRELOAD".to_owned(), "/tmp/evil.so".to_owned()),
            ("KEPT".to_owned(), "1".to_owned()),
        ]);
        let secrets = BTreeMap::from([("PATH".to_owned(), "/tmp".to_owned())]);
        let env = sandbox_environment(&env_vars, secrets, &sandbox, None, b"k", None);
        assert_eq!(env.get("KEPT").map(String::as_str), Some("1"));
        assert!(
            !env.contains_key("LD_PRELOAD") && !env.contains_key("PATH"),
            "{env:?}"
        );
        assert!(env.contains_key(SANDBOX_ID_ENV));
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
