use proptest::prelude::*;

use super::*;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_seed("central-it-2026", [7; 32]).unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed("central-it-2026", [8; 32]).unwrap()
}

fn anchors() -> Vec<TrustAnchor> {
    vec![
        SigningKey::from_seed("old", [1; 32]).unwrap().anchor(),
        key().anchor(),
    ]
}

fn north() -> FacilityId {
    FacilityId::new("north").unwrap()
}

fn gw1() -> GatewayId {
    GatewayId::new("gw-1").unwrap()
}

const ISSUED: &str = "2026-03-01T10:00:00Z";
const NOW: &str = "2026-03-01T10:05:00Z";

fn target(s: &str) -> Addressee {
    s.parse().unwrap()
}

fn config_doc(version: u64, expires: Option<&str>, to: Option<&str>) -> String {
    sign_config(
        &key(),
        version,
        expires.map(ts),
        to.map(target).as_ref(),
        "[agent]\nfacility = \"north\"\n",
        ts(ISSUED),
    )
    .unwrap()
}

fn command(name: &str) -> Command {
    Command {
        id: Uuid::parse_str("01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f").unwrap(),
        name: CommandName::new(name).unwrap(),
        args: BTreeMap::from([("ids".to_owned(), "all".to_owned())]),
    }
}

fn command_doc(to: Option<&str>) -> String {
    sign_command(
        &key(),
        &command("dlq-replay"),
        to.map(target).as_ref(),
        ts(ISSUED),
        ts("2026-03-01T10:10:00Z"),
    )
    .unwrap()
}

/// The outer document as JSON, to take apart.
fn outer(doc: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(doc).unwrap()
}

fn payload_of(doc: &str) -> Vec<u8> {
    BASE64
        .decode(outer(doc)["payload"].as_str().unwrap())
        .unwrap()
}

fn with_payload(doc: &str, payload: &[u8]) -> String {
    let mut o = outer(doc);
    o.insert("payload".into(), BASE64.encode(payload).into());
    serde_json::Value::Object(o).to_string()
}

fn check_config(doc: &str) -> Result<Verified, Refused> {
    verify_for(
        doc.as_bytes(),
        &anchors(),
        DocKind::Config,
        &north(),
        &gw1(),
        ts(NOW),
    )
}

fn check_command(doc: &str) -> Result<Verified, Refused> {
    verify_for(
        doc.as_bytes(),
        &anchors(),
        DocKind::Command,
        &north(),
        &gw1(),
        ts(NOW),
    )
}

/// A payload signed as it is, by the trusted key.
fn signed_raw(payload: serde_json::Value) -> String {
    sign_payload(&key(), payload.to_string().as_bytes())
}

#[test]
fn a_signed_config_verifies() {
    let doc = config_doc(7, Some("2026-03-02T00:00:00Z"), Some("north/gw-1"));
    let v = check_config(&doc).unwrap();
    assert_eq!(v.key_id, "central-it-2026");
    assert_eq!(v.version(), Some(7));
    assert_eq!(v.issued, ts(ISSUED));
    assert_eq!(v.expires, Some(ts("2026-03-02T00:00:00Z")));
    assert_eq!(v.target, Some(target("north/gw-1")));
    assert_eq!(
        v.payload,
        Payload::Config {
            version: 7,
            toml: "[agent]\nfacility = \"north\"\n".into()
        }
    );
    // The facility's `all` and no target at all address the gateway too.
    assert!(check_config(&config_doc(7, None, Some("north/all"))).is_ok());
    assert!(check_config(&config_doc(7, None, None)).is_ok());
}

#[test]
fn the_payload_is_the_documented_json() {
    let doc = config_doc(3, None, Some("north/all"));
    let p: serde_json::Value = serde_json::from_slice(&payload_of(&doc)).unwrap();
    assert_eq!(
        p,
        serde_json::json!({
            "type": "tallyman-config",
            "version": 3,
            "issued": "2026-03-01T10:00:00.000Z",
            "expires": null,
            "target": "north/all",
            "config": "[agent]\nfacility = \"north\"\n",
        })
    );
    let p: serde_json::Value = serde_json::from_slice(&payload_of(&command_doc(None))).unwrap();
    assert_eq!(
        p,
        serde_json::json!({
            "type": "tallyman-command",
            "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f",
            "issued": "2026-03-01T10:00:00.000Z",
            "expires": "2026-03-01T10:10:00.000Z",
            "target": null,
            "command": "dlq-replay",
            "args": {"ids": "all"},
        })
    );
    let o = outer(&doc);
    assert_eq!(o.len(), 3);
    assert_eq!(
        BASE64
            .decode(o["signature"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn a_signed_command_verifies() {
    let v = check_command(&command_doc(Some("north/gw-1"))).unwrap();
    assert_eq!(v.command(), Some(&command("dlq-replay")));
    assert_eq!(v.version(), None);
    v.check_command_name(&CommandName::new("dlq-replay").unwrap())
        .unwrap();
    assert_eq!(
        v.check_command_name(&CommandName::new("status").unwrap())
            .unwrap_err()
            .to_string(),
        "signed as command `dlq-replay`, received on cmd/status"
    );
}

#[test]
fn key_files_round_trip_and_the_public_line_is_the_trusted_key_form() {
    let k = key();
    let back = SigningKey::parse(&k.to_key_file()).unwrap();
    assert_eq!(back.public_key(), k.public_key());
    assert_eq!(back.id(), "central-it-2026");
    let line = k.public_line();
    let (id, b64) = line.split_once(':').unwrap();
    assert_eq!(id, "central-it-2026");
    assert_eq!(BASE64.decode(b64).unwrap(), k.public_key());
    assert!(!format!("{k:?}").contains(&BASE64.encode([7u8; 32])));
    assert_eq!(line.parse::<TrustAnchor>(), Ok(k.anchor()));
    assert!("k:AAEC".parse::<TrustAnchor>().is_err());
    assert!("bad id:AAEC".parse::<TrustAnchor>().is_err());
    for bad in [
        "",
        "nokey",
        "bad id:AAAA",
        "k:not base64!",
        "k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
    ] {
        assert!(SigningKey::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn refused_unknown_key_id() {
    let doc = sign_config(
        &SigningKey::from_seed("rogue", [9; 32]).unwrap(),
        1,
        None,
        None,
        "",
        ts(ISSUED),
    )
    .unwrap();
    assert_eq!(
        check_config(&doc).unwrap_err().to_string(),
        "unknown key id `rogue`"
    );
}

#[test]
fn refused_a_key_id_signed_by_another_key() {
    let doc = sign_config(&other_key(), 1, None, None, "", ts(ISSUED)).unwrap();
    assert_eq!(check_config(&doc), Err(Refused::BadSignature));
}

#[test]
fn refused_tampered_payload() {
    let doc = config_doc(7, None, None);
    let mut payload = payload_of(&doc);
    // "version":7 → "version":9
    let at = payload.iter().position(|b| *b == b'7').unwrap();
    payload[at] = b'9';
    assert_eq!(
        check_config(&with_payload(&doc, &payload)),
        Err(Refused::BadSignature)
    );
}

#[test]
fn refused_tampered_signature() {
    let doc = config_doc(7, None, None);
    let mut o = outer(&doc);
    let mut sig = BASE64.decode(o["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 0x01;
    o.insert("signature".into(), BASE64.encode(&sig).into());
    let tampered = serde_json::Value::Object(o.clone()).to_string();
    assert_eq!(check_config(&tampered), Err(Refused::BadSignature));
    sig.pop();
    o.insert("signature".into(), BASE64.encode(&sig).into());
    let short = serde_json::Value::Object(o).to_string();
    assert_eq!(
        check_config(&short).unwrap_err().to_string(),
        "not a signed document: an Ed25519 signature is 64 bytes, `signature` has 63"
    );
}

#[test]
fn refused_unsigned_and_malformed() {
    let unsigned = r#"{"type":"tallyman-command","command":"status"}"#;
    assert_eq!(check_command(unsigned), Err(Refused::Unsigned));
    assert_eq!(check_command("{}"), Err(Refused::Unsigned));
    assert_eq!(
        check_command(r#"{"key_id":"central-it-2026","payload":"e30="}"#),
        Err(Refused::Unsigned)
    );
    assert_eq!(
        check_command("{}").unwrap_err().to_string(),
        "the document is not signed: a signed document is {\"key_id\", \"payload\", \"signature\"}"
    );
    for bad in [
        "",
        "status",
        "[1,2]",
        "{\"key_id\":1,\"signature\":\"\"}",
        "{\"key_id\":\"a\"",
        "{\"key_id\":\"a\",\"payload\":\"\",\"signature\":\"\",\"x\":1}",
    ] {
        assert!(
            matches!(check_command(bad), Err(Refused::Malformed(_))),
            "{bad}"
        );
    }
    let doc = command_doc(None);
    let mut o = outer(&doc);
    o.insert("payload".into(), "not base64!".into());
    let r = check_command(&serde_json::Value::Object(o).to_string()).unwrap_err();
    assert!(
        r.to_string()
            .starts_with("not a signed document: `payload` is not base64"),
        "{r}"
    );
}

#[test]
fn refused_oversized() {
    let big = format!("{{\"key_id\":\"{}\"}}", "x".repeat(MAX_DOCUMENT_BYTES));
    assert_eq!(
        check_config(&big),
        Err(Refused::TooLarge {
            bytes: big.len(),
            max: MAX_DOCUMENT_BYTES
        })
    );
    let toml = "#".repeat(MAX_DOCUMENT_BYTES);
    assert!(matches!(
        sign_config(&key(), 1, None, None, &toml, ts(ISSUED)),
        Err(SignError::TooLarge { .. })
    ));
}

#[test]
fn refused_wrong_type_for_the_topic() {
    assert_eq!(
        check_command(&config_doc(1, None, None))
            .unwrap_err()
            .to_string(),
        "the document is a tallyman-config; this topic takes a tallyman-command"
    );
    assert_eq!(
        check_config(&command_doc(None)),
        Err(Refused::WrongType {
            expected: DocKind::Config,
            found: DocKind::Command
        })
    );
}

#[test]
fn refused_other_target() {
    for other in ["north/gw-2", "south/gw-1", "south/all"] {
        let r = check_config(&config_doc(1, None, Some(other))).unwrap_err();
        assert_eq!(r.to_string(), format!("signed for {other}"));
    }
}

#[test]
fn refused_expired() {
    let doc = config_doc(1, Some("2026-03-01T10:04:59Z"), None);
    assert_eq!(
        check_config(&doc).unwrap_err().to_string(),
        "expired at 2026-03-01T10:04:59.000Z"
    );
    // Expiring exactly now is expired; a moment later is not.
    assert!(check_config(&config_doc(1, Some(NOW), None)).is_err());
    assert!(check_config(&config_doc(1, Some("2026-03-01T10:05:00.001Z"), None)).is_ok());
    // verify (without topic checks) checks expiry too.
    assert!(matches!(
        verify(doc.as_bytes(), &anchors(), ts(NOW)),
        Err(Refused::Expired { .. })
    ));
}

#[test]
fn refused_non_increasing_version() {
    let v = check_config(&config_doc(4, None, None)).unwrap();
    assert_eq!(v.check_version(None, None), Ok(Some(4)));
    assert_eq!(v.check_version(Some(3), Some(3)), Ok(Some(4)));
    assert_eq!(
        v.check_version(Some(4), Some(4)).unwrap_err().to_string(),
        "version 4 is not newer than the running version 4"
    );
    assert_eq!(
        v.check_version(Some(5), Some(5)).unwrap_err().to_string(),
        "version 4 is not newer than the running version 5"
    );
    assert_eq!(
        v.check_version(Some(2), Some(4)).unwrap_err().to_string(),
        "version 4 is not newer than version 4, already attempted"
    );
    assert_eq!(
        v.check_version(None, Some(4)).unwrap_err(),
        Refused::AlreadyAttempted {
            version: 4,
            highest: 4
        }
    );
}

#[test]
fn refused_command_without_expiry_or_too_long() {
    let base = |expires: serde_json::Value| {
        serde_json::json!({
            "type": "tallyman-command",
            "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f",
            "issued": ISSUED,
            "expires": expires,
            "target": null,
            "command": "status",
            "args": {},
        })
    };
    assert_eq!(
        check_command(&signed_raw(base(serde_json::Value::Null))),
        Err(Refused::CommandWithoutExpiry)
    );
    let mut no_field = base(serde_json::Value::Null);
    no_field.as_object_mut().unwrap().remove("expires");
    assert_eq!(
        check_command(&signed_raw(no_field)),
        Err(Refused::CommandWithoutExpiry)
    );
    // Exactly 24 h is allowed, a millisecond more is not.
    assert!(check_command(&signed_raw(base("2026-03-02T10:00:00Z".into()))).is_ok());
    let r = check_command(&signed_raw(base("2026-03-02T10:00:00.001Z".into()))).unwrap_err();
    assert_eq!(
        r.to_string(),
        "a command may be valid for at most 24 h; this one was issued at \
         2026-03-01T10:00:00.000Z and expires at 2026-03-02T10:00:00.001Z"
    );
    // The signer refuses to make one.
    assert!(
        sign_command(
            &key(),
            &command("status"),
            None,
            ts(ISSUED),
            ts("2026-03-03T00:00:00Z")
        )
        .is_err()
    );
}

#[test]
fn refused_replayed_command_reason() {
    let id = command("status").id;
    assert_eq!(
        Refused::ReplayedCommand { id }.to_string(),
        "command id 01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f was already received (a replay)"
    );
}

#[test]
fn refused_invalid_payloads() {
    let cases = [
        (
            serde_json::json!({"type": "tallyman-config", "issued": ISSUED, "config": ""}),
            "needs a `version`",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 0, "issued": ISSUED, "config": ""}),
            "at least 1",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": ISSUED}),
            "needs a `config`",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": ISSUED, "config": "", "command": "x"}),
            "has no `id`",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": ISSUED, "config": "", "extra": 1}),
            "unknown field",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": "yesterday", "config": ""}),
            "RFC 3339",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": ISSUED, "config": "", "target": "north"}),
            "FACILITY/GATEWAY",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": 1, "issued": ISSUED, "config": "", "target": "north/ALL"}),
            "reserved",
        ),
        (
            serde_json::json!({"type": "tallyman-config", "version": -1, "issued": ISSUED, "config": ""}),
            "invalid value",
        ),
        (
            serde_json::json!({"type": "tallyman-other", "issued": ISSUED}),
            "unknown type",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "issued": ISSUED, "command": "status"}),
            "needs an `id`",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "not-a-uuid", "issued": ISSUED, "command": "status"}),
            "not a UUID",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-4d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED, "command": "status"}),
            "not a UUIDv7",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED}),
            "needs a `command`",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED, "command": "Bad/Name"}),
            "command name",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED, "command": "status", "args": {"Bad": "x"}}),
            "argument name",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED, "command": "status", "args": {"n": 1}}),
            "invalid type",
        ),
        (
            serde_json::json!({"type": "tallyman-command", "id": "01964b2e-8c3a-7d4e-9f10-1a2b3c4d5e6f", "issued": ISSUED, "command": "status", "version": 2}),
            "no `version`",
        ),
        (serde_json::json!([1]), "invalid type"),
    ];
    for (payload, want) in cases {
        let doc = signed_raw(payload.clone());
        match verify(doc.as_bytes(), &anchors(), ts(NOW)) {
            Err(Refused::InvalidPayload(m)) => assert!(m.contains(want), "{payload}: {m}"),
            other => panic!("{payload}: {other:?}"),
        }
    }
    // Not JSON at all, signed.
    assert!(matches!(
        verify(
            sign_payload(&key(), b"\xff\x00").as_bytes(),
            &anchors(),
            ts(NOW)
        ),
        Err(Refused::InvalidPayload(_))
    ));
}

#[test]
fn an_invalid_trust_anchor_is_named() {
    // The first small y coordinate that is no point of the curve.
    let bad = (2u8..=255)
        .map(|y| {
            let mut k = [0u8; 32];
            k[0] = y;
            k
        })
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    let anchors = vec![TrustAnchor {
        id: "central-it-2026".into(),
        public_key: bad,
    }];
    assert_eq!(
        verify(config_doc(1, None, None).as_bytes(), &anchors, ts(NOW)),
        Err(Refused::InvalidAnchor {
            key_id: "central-it-2026".into()
        })
    );
}

#[test]
fn addressees_parse_and_print() {
    let a = target("north/gw-1");
    assert!(a.includes(&north(), &gw1()));
    assert!(!a.includes(&north(), &GatewayId::new("gw-2").unwrap()));
    assert!(target("north/all").includes(&north(), &GatewayId::new("gw-2").unwrap()));
    assert_eq!(a.to_string(), "north/gw-1");
    for bad in [
        "north",
        "north/",
        "/gw",
        "north/g/w",
        "no rth/gw",
        "north/+",
    ] {
        assert!(bad.parse::<Addressee>().is_err(), "{bad}");
    }
}

fn valid_documents() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(config_doc(
            7,
            Some("2026-03-02T00:00:00Z"),
            Some("north/gw-1")
        )),
        Just(config_doc(1, None, None)),
        Just(command_doc(Some("north/all"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = verify(&bytes, &anchors(), ts(NOW));
        let _ = check_command(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn verify_never_panics_on_json_shaped_input(
        key_id in "[a-z0-9-]{0,20}",
        payload in "[A-Za-z0-9+/=]{0,200}",
        signature in "[A-Za-z0-9+/=]{0,100}",
    ) {
        let doc = serde_json::json!({"key_id": key_id, "payload": payload, "signature": signature});
        let _ = verify(doc.to_string().as_bytes(), &anchors(), ts(NOW));
    }

    /// Any one byte of a valid document changed: no panic, and whatever still verifies says
    /// exactly what the original said.
    #[test]
    fn a_mutated_document_never_verifies_to_something_else(
        doc in valid_documents(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let original = verify(doc.as_bytes(), &anchors(), ts(NOW)).unwrap();
        let mut bytes = doc.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok(v) = verify(&bytes, &anchors(), ts(NOW)) {
            prop_assert_eq!(v, original);
        }
    }

    /// Any single-byte change of the signed payload is refused as a bad signature.
    #[test]
    fn a_mutated_payload_is_refused(
        doc in valid_documents(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut payload = payload_of(&doc);
        let i = at.index(payload.len());
        payload[i] ^= xor;
        let r = verify(with_payload(&doc, &payload).as_bytes(), &anchors(), ts(NOW));
        prop_assert_eq!(r, Err(Refused::BadSignature));
    }

    /// Payloads that are JSON but arbitrary, signed by a trusted key: decoding never panics.
    #[test]
    fn decoding_any_signed_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verify(sign_payload(&key(), &payload).as_bytes(), &anchors(), ts(NOW));
    }
}
