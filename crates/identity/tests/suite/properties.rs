//! Property tests of the identifier rules, 10,000 cases each.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use burrow_identity::{
    ActorName, IdKind, InstanceId, LEGACY_SANDBOX_ID_MAX_LEN, OrgId, SandboxId, USER_ID_MAX_BYTES,
    UserId,
};
use proptest::prelude::*;
use uuid::Uuid;

/// Valid user ids: any non-control characters, cut to the byte limit on a char boundary.
fn user_id_text() -> impl Strategy<Value = String> {
    "\\PC{1,47}"
        .prop_map(|s| {
            let mut end = s.len().min(USER_ID_MAX_BYTES);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        })
        .prop_filter("non-empty", |s| !s.is_empty())
}

/// Text that is likely to sit near the rules' edges, plus arbitrary text.
fn near_miss_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F-]{30,40}",
        "ki_[0-9a-fA-FxX]{30,34}",
        "ki_[0-9a-f]{28,36}",
        "[iu]:.{0,50}",
        "[A-Za-z0-9_=+/-]{0,70}",
    ]
}

fn random_case(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn instance_id_text_round_trips_in_any_case(bits in any::<u128>(), mask in any::<u64>()) {
        let id = InstanceId::from_uuid(Uuid::from_u128(bits));
        let canonical = id.to_string();
        prop_assert_eq!(canonical.len(), 36);
        prop_assert_eq!(&canonical, &canonical.to_ascii_lowercase());
        let respelled = random_case(&canonical, mask);
        prop_assert_eq!(respelled.parse::<InstanceId>().unwrap(), id);
        prop_assert_eq!(respelled.parse::<OrgId>().unwrap().to_string(), canonical);
    }

    #[test]
    fn instance_keyed_sandbox_id_round_trips(bits in any::<u128>()) {
        let id = InstanceId::from_uuid(Uuid::from_u128(bits));
        let sandbox = id.sandbox_id().to_string();
        prop_assert_eq!(sandbox.len(), 35);
        prop_assert_eq!(&sandbox[3..], id.to_string().replace('-', ""));
        let parsed: SandboxId = sandbox.parse().unwrap();
        prop_assert!(parsed.is_instance_keyed());
        prop_assert_eq!(parsed.instance_id(), Some(id));
        prop_assert_eq!(ActorName::for_sandbox(&parsed), ActorName::Instance(id));
    }

    #[test]
    fn legacy_sandbox_id_round_trips(text in user_id_text()) {
        let user: UserId = text.parse().unwrap();
        let sandbox = user.legacy_sandbox_id().to_string();
        prop_assert!(sandbox.len() <= LEGACY_SANDBOX_ID_MAX_LEN);
        let parsed: SandboxId = sandbox.parse().unwrap();
        prop_assert!(!parsed.is_instance_keyed());
        prop_assert_eq!(parsed.user_id(), Some(&user));
        prop_assert_eq!(ActorName::for_sandbox(&parsed), ActorName::Legacy(user));
    }

    /// Holds for any UTF-8 text, not just valid user ids: see the proof on `SandboxId`.
    #[test]
    fn no_utf8_text_encodes_to_an_instance_keyed_prefix(text in any::<String>()) {
        let encoded = URL_SAFE_NO_PAD.encode(&text);
        prop_assert!(!encoded.starts_with("ki"), "{:?} encodes to {}", text, encoded);
        if let Ok(user) = text.parse::<UserId>() {
            let parsed: SandboxId = user.legacy_sandbox_id().to_string().parse().unwrap();
            prop_assert!(!parsed.is_instance_keyed());
        }
    }

    #[test]
    fn actor_names_round_trip_and_never_collide(bits in any::<u128>(), text in user_id_text()) {
        let instance = ActorName::Instance(InstanceId::from_uuid(Uuid::from_u128(bits)));
        let legacy = ActorName::Legacy(text.parse().unwrap());
        prop_assert_eq!(instance.to_string().parse::<ActorName>().unwrap(), instance.clone());
        prop_assert_eq!(legacy.to_string().parse::<ActorName>().unwrap(), legacy.clone());
        prop_assert_ne!(instance.to_string(), legacy.to_string());
        prop_assert_eq!(ActorName::for_sandbox(&instance.sandbox_id()), instance);
        prop_assert_eq!(ActorName::for_sandbox(&legacy.sandbox_id()), legacy);
    }

    /// Whatever a parser accepts prints back canonically and re-parses to the same value;
    /// whatever it refuses gets an error of the right kind. No input panics.
    #[test]
    fn parsers_are_canonical_and_total(text in near_miss_text()) {
        match text.parse::<InstanceId>() {
            Ok(id) => prop_assert_eq!(id.to_string(), text.to_ascii_lowercase()),
            Err(e) => prop_assert_eq!(e.kind(), IdKind::InstanceId),
        }
        match text.parse::<UserId>() {
            Ok(user) => prop_assert_eq!(user.as_str(), text.as_str()),
            Err(e) => prop_assert_eq!(e.kind(), IdKind::UserId),
        }
        match text.parse::<SandboxId>() {
            // Sandbox ids have exactly one spelling.
            Ok(sandbox) => prop_assert_eq!(sandbox.to_string(), text.clone()),
            Err(e) => prop_assert_eq!(e.kind(), IdKind::SandboxId),
        }
        match text.parse::<ActorName>() {
            Ok(name) => {
                prop_assert_eq!(name.to_string().parse::<ActorName>().unwrap(), name.clone());
                prop_assert_eq!(name.to_string().to_ascii_lowercase(), text.to_ascii_lowercase());
            }
            Err(e) => prop_assert_eq!(e.kind(), IdKind::ActorName),
        }
    }
}
