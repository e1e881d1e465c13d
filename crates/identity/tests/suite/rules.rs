//! The identifier rules, case by case, including the text of the errors.

use burrow_identity::{ActorName, IdKind, InstanceId, OrgId, SandboxId, UserId};

const ID: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

#[test]
fn instance_id_accepts_only_the_hyphenated_form() {
    let id: InstanceId = ID.parse().unwrap();
    assert_eq!(
        "3F2504E0-4f89-11D3-9a0c-0305E82C3301"
            .parse::<InstanceId>()
            .unwrap(),
        id
    );
    for bad in [
        "",
        "3f2504e04f8911d39a0c0305e82c3301",       // simple form
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", // braced
        "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301", // URN
        " 3f2504e0-4f89-11d3-9a0c-0305e82c3301",  // padded
        "3f2504e0-4f89-11d3-9a0c-0305e82c330g",   // not hex
        "3f2504e0-4f89-11d3-9a0c0-305e82c3301",   // hyphen misplaced
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301\n",
    ] {
        let err = bad.parse::<InstanceId>().unwrap_err();
        assert_eq!(err.kind(), IdKind::InstanceId, "{bad:?}");
        assert!(err.to_string().starts_with("invalid instance id "), "{err}");
        assert_eq!(err.quoted_input(), format!("{bad:?}"));
    }
}

#[test]
fn errors_quote_long_input_only_in_part() {
    let hostile = "x".repeat(10_000);
    let err = hostile.parse::<InstanceId>().unwrap_err();
    let message = err.to_string();
    assert!(message.len() < 300, "{message}");
    assert!(message.contains("(10000 bytes)"), "{message}");
}

#[test]
fn org_id_follows_the_instance_id_rules() {
    let org: OrgId = ID.to_uppercase().parse().unwrap();
    assert_eq!(org.to_string(), ID);
    let err = "org_123".parse::<OrgId>().unwrap_err();
    assert_eq!(err.kind(), IdKind::OrgId);
    assert!(
        err.to_string().starts_with(r#"invalid org id "org_123""#),
        "{err}"
    );
}

#[test]
fn user_id_limits() {
    assert_eq!("a".repeat(47).parse::<UserId>().unwrap().as_str().len(), 47);
    let too_long = "a".repeat(48).parse::<UserId>().unwrap_err();
    assert!(too_long.reason().contains("48 bytes"), "{too_long}");
    // 16 three-byte characters: 16 characters but 48 bytes.
    assert!("€".repeat(16).parse::<UserId>().is_err());
    assert!("€".repeat(15).parse::<UserId>().is_ok());
    assert!("".parse::<UserId>().unwrap_err().reason().contains("empty"));
    let control = "bad\u{7f}id".parse::<UserId>().unwrap_err();
    assert!(control.reason().contains("control"), "{control}");
}

#[test]
fn sandbox_ids_of_both_kinds() {
    let id: InstanceId = ID.parse().unwrap();
    assert_eq!(
        id.sandbox_id().to_string(),
        "ki_3f2504e04f8911d39a0c0305e82c3301"
    );

    let user: UserId = "a".repeat(47).parse().unwrap();
    let legacy = user.legacy_sandbox_id().to_string();
    assert_eq!(legacy.len(), 63);
    assert_eq!(legacy.parse::<SandboxId>().unwrap().user_id(), Some(&user));

    // A user id shaped like a UUID still yields a legacy id.
    let uuidish: UserId = ID.parse().unwrap();
    assert!(!uuidish.legacy_sandbox_id().is_instance_keyed());
}

#[test]
fn malformed_sandbox_ids_are_refused_with_a_reason() {
    let cases = [
        ("ki_3F2504E04F8911D39A0C0305E82C3301", "lower-case hex"), // upper case
        ("ki_3f2504e04f8911d39a0c0305e82c330z", "lower-case hex"),
        (
            "ki_3f2504e04f8911d39a0c0305e82c330",
            "is 34 characters long",
        ),
        ("kiAA", "UTF-8"), // not `ki_`: a legacy candidate, but decodes to 0x92
        ("", "empty"),
        ("dXNlcl80Mg==", "base64url"), // padding
        ("dXNlcl80Mh", "base64url"),   // non-zero trailing bits
        ("dXNlcl+4Mg", "base64url"),   // standard, not URL-safe, alphabet
        ("AA", "control character"),   // decodes to NUL
        (&"A".repeat(64), "at most 63"),
    ];
    for (bad, expected) in cases {
        let err = bad.parse::<SandboxId>().unwrap_err();
        assert_eq!(err.kind(), IdKind::SandboxId);
        assert!(err.to_string().contains(expected), "{bad:?}: {err}");
    }
}

#[test]
fn actor_names_carry_their_kind() {
    let name: ActorName = format!("i:{}", ID.to_uppercase()).parse().unwrap();
    assert_eq!(name.to_string(), format!("i:{ID}"));
    assert!(matches!(
        format!("u:{ID}").parse().unwrap(),
        ActorName::Legacy(_)
    ));
    for (bad, expected) in [
        (ID.to_string(), "expected `i:<instance id>`"),
        ("i:user_1".to_string(), "after `i:`"),
        ("u:".to_string(), "after `u:`"),
        ("x:abc".to_string(), "expected `i:<instance id>`"),
    ] {
        let err = bad.parse::<ActorName>().unwrap_err();
        assert!(err.to_string().contains(expected), "{bad:?}: {err}");
    }
}

#[test]
fn serde_uses_the_canonical_text_and_the_same_rules() {
    let id: InstanceId = ID.parse().unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{ID}\""));
    let upper: InstanceId = serde_json::from_str(&format!("\"{}\"", ID.to_uppercase())).unwrap();
    assert_eq!(upper, id);
    let sandbox: SandboxId =
        serde_json::from_str("\"ki_3f2504e04f8911d39a0c0305e82c3301\"").unwrap();
    assert_eq!(sandbox.instance_id(), Some(id));
    let name: ActorName = serde_json::from_str("\"u:alice\"").unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), "\"u:alice\"");

    let err = serde_json::from_str::<InstanceId>("\"nope\"").unwrap_err();
    assert!(
        err.to_string().contains(r#"invalid instance id "nope""#),
        "{err}"
    );
    assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    assert!(serde_json::from_str::<InstanceId>("42").is_err());
}

#[test]
fn provider_ids_are_short_plain_names() {
    use burrow_identity::{MachineId, PROVIDER_ID_MAX_BYTES, VolumeId};
    for good in ["m0123456789abcdef0123456789abcdef", "fly-machine_1.a", "v1"] {
        assert_eq!(good.parse::<MachineId>().unwrap().as_str(), good);
        assert_eq!(good.parse::<VolumeId>().unwrap().to_string(), good);
    }
    let long = "a".repeat(PROVIDER_ID_MAX_BYTES + 1);
    for bad in [
        "",
        ".",
        "..",
        "../etc",
        "a/b",
        "with space",
        "tab\t",
        "é",
        long.as_str(),
    ] {
        let err = bad.parse::<MachineId>().unwrap_err().to_string();
        assert!(err.starts_with("invalid machine id "), "{err}");
        assert!(bad.parse::<VolumeId>().is_err(), "{bad:?}");
    }
    // Serde goes through the same rule.
    assert!(serde_json::from_str::<MachineId>("\"a/b\"").is_err());
    assert_eq!(
        serde_json::to_string(&"m1".parse::<MachineId>().unwrap()).unwrap(),
        "\"m1\""
    );
}
