//! Golden envelopes and round trips of the wire forms.
//!
//! `protocol/test_data/wire/v1/NAME.json` is an event in its canonical JSON form and `NAME.bin`
//! its v1 postcard envelope. For every pair:
//! 1. `decode(NAME.bin)` equals the event of `NAME.json`. THE V1 GOLDEN BYTES ARE FROZEN
//!    FOREVER: every later build must decode them to the same event. Never edit or regenerate
//!    an existing `.bin`; a new format is a new envelope version with its own `wire/vN/` folder
//!    and its own golden files, and these keep decoding.
//! 2. `encode(event)` equals `NAME.bin`: today's encoder still writes v1 exactly. Run with
//!    `TALLYMAN_REGENERATE=1` to write the `.bin` of a newly added `.json`; it will not
//!    overwrite an existing `.bin` whose bytes would change (see 1).
//! 3. The `.json` is canonical: serialising the event gives the same JSON value back, so the
//!    v1 JSON output is pinned too.
//!
//! Then property tests: arbitrary valid events survive JSON and postcard round trips, and the
//! largest possible event fits the envelope size limit.

// Test code: a panic is how a helper reports a failed expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strategies;

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tallyman_protocol::Date;
use tallyman_protocol::event::*;
use tallyman_protocol::wire::{self, MAX_ENVELOPE_SIZE, WireError};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/wire/v1")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn v1_golden_envelopes() {
    let regenerate = std::env::var_os("TALLYMAN_REGENERATE").is_some_and(|v| v == "1");
    let mut names: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "golden files are missing");
    let mut failures = Vec::new();
    for json_path in &names {
        let name = json_path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let json = fs::read(json_path).unwrap();
        let event = Event::from_json(&json).unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let encoded = wire::encode(&event).unwrap();
        let bin_path = json_path.with_extension("bin");
        let existing = fs::read(&bin_path).ok();
        if regenerate && existing.is_none() {
            fs::write(&bin_path, &encoded).unwrap();
            eprintln!("wrote {}", bin_path.display());
        }
        let Ok(bin) = fs::read(&bin_path) else {
            failures.push(format!(
                "{name}.bin is missing: run with TALLYMAN_REGENERATE=1 to write it"
            ));
            continue;
        };
        // 1. Frozen forever.
        match wire::decode(&bin) {
            Ok(decoded) if decoded == event => {}
            Ok(decoded) => failures.push(format!(
                "{name}.bin no longer decodes to {name}.json: got {decoded:?}"
            )),
            Err(e) => failures.push(format!("{name}.bin no longer decodes: {e}")),
        }
        // 2. The encoder still writes these bytes.
        if encoded != bin {
            failures.push(format!(
                "encode({name}.json) differs from {name}.bin (v1 bytes are frozen; a new \
                 format needs a new envelope version):\n  golden  {}\n  encoded {}",
                hex(&bin),
                hex(&encoded)
            ));
        }
        // 3. Canonical JSON.
        let file_value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let out_value = serde_json::to_value(&event).unwrap();
        if file_value != out_value {
            failures.push(format!(
                "{name}.json is not in canonical form; the event writes {out_value}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The smallest golden envelope, byte by byte, so that a reader can see the format.
#[test]
fn v1_layout_of_the_scan_event() {
    let bin = fs::read(golden_dir().join("scan_raw.bin")).unwrap();
    let mut expected = vec![
        0x01, // envelope version
        0x01, // v
    ];
    expected.extend(
        EventId::parse("019ab3f2-7f00-7c00-b000-000000000001")
            .unwrap()
            .as_bytes(),
    ); // id: 16 bytes
    expected.extend([5]);
    expected.extend(b"north"); // facility: length, UTF-8
    expected.extend([11]);
    expected.extend(b"gw-north-01");
    expected.extend([6]);
    expected.extend(b"dock-1");
    expected.extend([0x94, 0x08]); // seq 1044 as a varint
    // captured_at: zigzag varint of 1_795_515_420_000 ms
    let mut zz = (1_795_515_420_000i64 << 1) as u64;
    while zz >= 0x80 {
        expected.push((zz as u8) | 0x80);
        zz >>= 7;
    }
    expected.push(zz as u8);
    expected.extend([3]); // kind: variant 3 = scan
    expected.extend([0, 0, 0]); // reference, from, to: None
    expected.extend([0]); // lines: empty
    expected.extend([1]); // scan: Some
    let raw = b"]d201095060001343521727123110A1B2\\x1d21SN42";
    expected.push(raw.len() as u8);
    expected.extend(raw);
    expected.extend([1, 3]);
    expected.extend(b"]d2"); // symbology: Some("]d2")
    expected.extend([1, 0]); // decoded: Some(gs1 = variant 0)
    assert_eq!(hex(&bin), hex(&expected));
}

#[test]
fn envelope_errors() {
    let bin = fs::read(golden_dir().join("receipt_gtin_lot_expiry.bin")).unwrap();
    assert_eq!(wire::decode(&[]), Err(WireError::Empty));
    assert_eq!(wire::decode(&[0]), Err(WireError::UnsupportedVersion(0)));
    let mut v9 = bin.clone();
    v9[0] = 9;
    assert_eq!(wire::decode(&v9), Err(WireError::UnsupportedVersion(9)));
    assert_eq!(
        wire::decode(&bin[..bin.len() - 1]),
        Err(WireError::Truncated)
    );
    let mut trailing = bin.clone();
    trailing.push(0);
    assert_eq!(wire::decode(&trailing), Err(WireError::TrailingBytes(1)));
    // The v of the event inside the envelope is checked too.
    let mut v2 = bin.clone();
    v2[1] = 2;
    assert!(matches!(wire::decode(&v2), Err(WireError::Malformed(_))));
}

/// The largest event the rules allow: 1000 lines, every text at its maximum length in 4-byte
/// characters, every optional field present. It must fit [`MAX_ENVELOPE_SIZE`], so `encode`
/// never refuses a valid event.
#[test]
fn the_largest_event_fits_the_envelope() {
    let big = |n: usize| "😀".repeat(n);
    let header = Header {
        id: EventId::new_v7(u64::MAX, [0xff; 10]),
        facility: FacilityId::new("f".repeat(64)).unwrap(),
        gateway: GatewayId::new("g".repeat(64)).unwrap(),
        source: SourceName::new("s".repeat(64)).unwrap(),
        seq: u64::MAX,
        captured_at: Timestamp::MIN,
    };
    let line = Line {
        item: Item::Code(ItemCode::new(big(ItemCode::MAX_CHARS)).unwrap()),
        lot: Some(Lot::new(big(Lot::MAX_CHARS)).unwrap()),
        serial: None,
        expiry: Date::new(9999, 12, 31),
        qty: Quantity::new("999999999999.999999").unwrap(),
        uom: Uom::new(big(Uom::MAX_CHARS)).unwrap(),
        flags: Flag::ALL.to_vec(),
    };
    let serial_line = Line {
        serial: Some(Serial::new(big(Serial::MAX_CHARS)).unwrap()),
        qty: Quantity::one(),
        ..line.clone()
    };
    let ev = Event::transfer(
        header,
        Location::new(big(Location::MAX_CHARS)).unwrap(),
        Location::new(format!("x{}", big(Location::MAX_CHARS - 1))).unwrap(),
        vec![serial_line; MAX_LINES],
    )
    .unwrap()
    .with_reference(Some(Reference::new(big(Reference::MAX_CHARS)).unwrap()));
    let bytes = wire::encode(&ev).unwrap();
    assert!(bytes.len() <= MAX_ENVELOPE_SIZE, "{} bytes", bytes.len());
    assert!(
        bytes.len() > MAX_ENVELOPE_SIZE * 8 / 10,
        "the limit is not loose: {}",
        bytes.len()
    );
    assert_eq!(wire::decode(&bytes).unwrap(), ev);
}

proptest! {
    #[test]
    fn json_round_trip(ev in strategies::event()) {
        let json = serde_json::to_vec(&ev).unwrap();
        prop_assert_eq!(Event::from_json(&json).unwrap(), ev.clone());
        let pretty = serde_json::to_string_pretty(&ev).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&pretty).unwrap(), ev);
    }

    #[test]
    fn postcard_round_trip(ev in strategies::event()) {
        let bytes = wire::encode(&ev).unwrap();
        prop_assert_eq!(bytes.first(), Some(&wire::ENVELOPE_V1));
        prop_assert_eq!(wire::decode(&bytes).unwrap(), ev.clone());
        // Every proper prefix is refused, never misread.
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(wire::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn json_and_postcard_agree(ev in strategies::event()) {
        let via_json: Event = serde_json::from_slice(&serde_json::to_vec(&ev).unwrap()).unwrap();
        let via_wire = wire::decode(&wire::encode(&via_json).unwrap()).unwrap();
        prop_assert_eq!(via_wire, ev);
    }
}
