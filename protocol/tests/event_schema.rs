//! The published JSON Schema (`protocol/schema/event.v1.schema.json`) and the event types agree:
//! (a) every valid event the types can make serialises to JSON the schema accepts;
//! (b) every document in the invalid list is refused by serde, and by the schema too unless the
//!     case is marked `SerdeOnly` — a rule JSON Schema cannot express (a check digit, a calendar
//!     date, from ≠ to). For those the test also proves the schema lets the document through,
//!     so that the list of gaps stays exact;
//! (c) the documents in the valid list (lenient input forms) are accepted by both.

// Test code: a panic is how a helper reports a failed expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strategies;

use std::sync::OnceLock;

use jsonschema::Validator;
use proptest::prelude::*;
use serde_json::{Value, json};
use tallyman_protocol::event::{Event, JSON_SCHEMA_V1, MAX_LINES};

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(JSON_SCHEMA_V1).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema compiles")
    })
}

/// A receipt like the one of PRODUCT §3, as a JSON value to mutate.
fn receipt() -> Value {
    json!({
        "v": 1,
        "id": "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11",
        "facility": "north",
        "gateway": "gw-north-01",
        "source": "dock-1",
        "seq": 1042,
        "captured_at": "2026-11-24T10:15:03.120Z",
        "kind": "receipt",
        "reference": "PO00042",
        "from": null,
        "to": "WH/Stock",
        "lines": [
            {"item": {"gtin": "09506000134352"}, "lot": "A1B2", "serial": null,
             "expiry": "2027-12-31", "qty": "5", "uom": "Units", "flags": []}
        ],
        "scan": null
    })
}

fn scan_event() -> Value {
    let mut doc = receipt();
    set(&mut doc, "/kind", json!("scan"));
    set(&mut doc, "/lines", json!([]));
    set(
        &mut doc,
        "/scan",
        json!({"raw": "]d2\\x1d0109506000134352", "symbology": "]d2", "decoded": "gs1"}),
    );
    doc
}

/// Set the value at a JSON pointer, creating the last key if needed.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let target = doc.pointer_mut(parent).expect("the parent exists");
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().expect("an index");
            items[i] = value;
        }
        _ => panic!("{pointer}: parent is not a container"),
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let map = doc
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("an object");
    map.remove(key).expect("the key exists");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// Refused by the schema and by serde.
    Both,
    /// Refused by serde only: JSON Schema cannot express the rule.
    SerdeOnly,
}

fn invalid_cases() -> Vec<(&'static str, Side, Value)> {
    use Side::*;
    let r = receipt;
    let with = |base: fn() -> Value, pointer: &str, value: Value| {
        let mut d = base();
        set(&mut d, pointer, value);
        d
    };
    let without = |base: fn() -> Value, pointer: &str| {
        let mut d = base();
        remove(&mut d, pointer);
        d
    };
    let transfer = || {
        let mut d = receipt();
        set(&mut d, "/kind", json!("transfer"));
        set(&mut d, "/from", json!("WH/Dock"));
        d
    };
    let line = |pointer: &str, value: Value| with(r, &format!("/lines/0{pointer}"), value);
    let line_json = receipt()["lines"][0].clone();
    vec![
        // v
        ("v is 2", Both, with(r, "/v", json!(2))),
        ("v is 0", Both, with(r, "/v", json!(0))),
        ("v is text", Both, with(r, "/v", json!("1"))),
        ("v is missing", Both, without(r, "/v")),
        // id
        (
            "id is not a UUID",
            Both,
            with(r, "/id", json!("not-a-uuid")),
        ),
        (
            "id is a UUIDv4",
            Both,
            with(r, "/id", json!("01937f6e-7c1a-4a4e-9b1e-3c7c2d0f8a11")),
        ),
        (
            "id has the wrong variant",
            Both,
            with(r, "/id", json!("01937f6e-7c1a-7a4e-cb1e-3c7c2d0f8a11")),
        ),
        (
            "id without hyphens",
            Both,
            with(r, "/id", json!("01937f6e7c1a7a4e9b1e3c7c2d0f8a11")),
        ),
        (
            "id braced",
            Both,
            with(r, "/id", json!("{01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11}")),
        ),
        // names
        (
            "facility with a space",
            Both,
            with(r, "/facility", json!("north wing")),
        ),
        (
            "facility with a slash",
            Both,
            with(r, "/facility", json!("north/1")),
        ),
        (
            "facility with a wildcard",
            Both,
            with(r, "/facility", json!("+")),
        ),
        ("facility empty", Both, with(r, "/facility", json!(""))),
        (
            "facility of 65 characters",
            Both,
            with(r, "/facility", json!("f".repeat(65))),
        ),
        ("gateway is all", Both, with(r, "/gateway", json!("all"))),
        ("gateway is ALL", Both, with(r, "/gateway", json!("ALL"))),
        (
            "source is not ASCII",
            Both,
            with(r, "/source", json!("dock-é")),
        ),
        // seq
        ("seq is negative", Both, with(r, "/seq", json!(-1))),
        ("seq is a fraction", Both, with(r, "/seq", json!(1.5))),
        ("seq is text", Both, with(r, "/seq", json!("1042"))),
        ("seq is above u64", Both, with(r, "/seq", json!(1.9e19))),
        // captured_at
        (
            "captured_at without a zone",
            Both,
            with(r, "/captured_at", json!("2026-11-24T10:15:03.120")),
        ),
        (
            "captured_at is a date",
            Both,
            with(r, "/captured_at", json!("2026-11-24")),
        ),
        (
            "captured_at hour 24",
            Both,
            with(r, "/captured_at", json!("2026-11-24T24:00:00Z")),
        ),
        (
            "captured_at leap second",
            Both,
            with(r, "/captured_at", json!("2026-12-31T23:59:60Z")),
        ),
        (
            "captured_at with a space",
            Both,
            with(r, "/captured_at", json!("2026-11-24 10:15:03Z")),
        ),
        (
            "captured_at offset without colon",
            Both,
            with(r, "/captured_at", json!("2026-11-24T10:15:03+0100")),
        ),
        (
            "captured_at is a number",
            Both,
            with(r, "/captured_at", json!(1_795_515_303_120u64)),
        ),
        (
            "captured_at on 30 February",
            SerdeOnly,
            with(r, "/captured_at", json!("2026-02-30T10:15:03Z")),
        ),
        (
            "captured_at before year 1 in UTC",
            SerdeOnly,
            with(r, "/captured_at", json!("0001-01-01T00:30:00+01:00")),
        ),
        // kind
        ("kind is unknown", Both, with(r, "/kind", json!("sale"))),
        (
            "kind is capitalised",
            Both,
            with(r, "/kind", json!("Receipt")),
        ),
        ("kind is missing", Both, without(r, "/kind")),
        // kind rules
        ("receipt without to", Both, without(r, "/to")),
        ("receipt with to null", Both, with(r, "/to", Value::Null)),
        (
            "transfer without from",
            Both,
            with(r, "/kind", json!("transfer")),
        ),
        ("transfer without to", Both, {
            let mut d = transfer();
            set(&mut d, "/to", Value::Null);
            d
        }),
        (
            "transfer from equals to",
            SerdeOnly,
            with(transfer, "/from", json!("WH/Stock")),
        ),
        (
            "consumption without from",
            Both,
            with(r, "/kind", json!("consumption")),
        ),
        ("receipt without lines", Both, with(r, "/lines", json!([]))),
        (
            "receipt with 1001 lines",
            Both,
            with(
                r,
                "/lines",
                Value::Array(vec![line_json.clone(); MAX_LINES + 1]),
            ),
        ),
        (
            "receipt with a scan object",
            Both,
            with(r, "/scan", json!({"raw": "x"})),
        ),
        ("lines missing", Both, without(r, "/lines")),
        (
            "scan event with lines",
            Both,
            with(scan_event, "/lines", json!([line_json])),
        ),
        (
            "scan event without scan",
            Both,
            with(scan_event, "/scan", Value::Null),
        ),
        (
            "scan event missing scan",
            Both,
            without(scan_event, "/scan"),
        ),
        // locations and texts
        ("to empty", Both, with(r, "/to", json!(""))),
        (
            "to of 257 characters",
            Both,
            with(r, "/to", json!("é".repeat(257))),
        ),
        (
            "to with a newline",
            Both,
            with(r, "/to", json!("WH/\nStock")),
        ),
        (
            "to with a C1 control",
            Both,
            with(r, "/to", json!("WH/\u{85}Stock")),
        ),
        ("reference empty", Both, with(r, "/reference", json!(""))),
        (
            "reference of 65 characters",
            Both,
            with(r, "/reference", json!("R".repeat(65))),
        ),
        (
            "unknown top-level field",
            Both,
            with(r, "/note", json!("hello")),
        ),
        // items
        (
            "gtin with a bad check digit",
            SerdeOnly,
            line("/item", json!({"gtin": "09506000134353"})),
        ),
        (
            "gtin of 13 digits",
            Both,
            line("/item", json!({"gtin": "9506000134352"})),
        ),
        (
            "gtin as a number",
            Both,
            line("/item", json!({"gtin": 9_506_000_134_352u64})),
        ),
        (
            "item with two keys",
            Both,
            line("/item", json!({"gtin": "09506000134352", "code": "X"})),
        ),
        ("item empty", Both, line("/item", json!({}))),
        (
            "item of unknown form",
            Both,
            line("/item", json!({"sku": "X"})),
        ),
        (
            "item code of 65 characters",
            Both,
            line("/item", json!({"code": "c".repeat(65)})),
        ),
        (
            "hibc lic lowercase",
            Both,
            line(
                "/item",
                json!({"hibc": {"lic": "a123", "pcn": "X1", "unit": null}}),
            ),
        ),
        (
            "hibc lic starting with a digit",
            Both,
            line(
                "/item",
                json!({"hibc": {"lic": "1123", "pcn": "X1", "unit": null}}),
            ),
        ),
        (
            "hibc pcn of 19 characters",
            Both,
            line(
                "/item",
                json!({"hibc": {"lic": "A123", "pcn": "X".repeat(19), "unit": 0}}),
            ),
        ),
        (
            "hibc unit 10",
            Both,
            line(
                "/item",
                json!({"hibc": {"lic": "A123", "pcn": "X1", "unit": 10}}),
            ),
        ),
        (
            "hibc with an unknown key",
            Both,
            line(
                "/item",
                json!({"hibc": {"lic": "A123", "pcn": "X1", "unit": 1, "lot": "x"}}),
            ),
        ),
        // quantities
        ("qty is a float", Both, line("/qty", json!(5.0))),
        ("qty is an integer", Both, line("/qty", json!(5))),
        ("qty is zero", Both, line("/qty", json!("0"))),
        (
            "qty is zero with decimals",
            Both,
            line("/qty", json!("000.000")),
        ),
        ("qty is negative", Both, line("/qty", json!("-1"))),
        ("qty in exponent form", Both, line("/qty", json!("1e3"))),
        ("qty with a comma", Both, line("/qty", json!("1,5"))),
        (
            "qty with 7 decimals",
            Both,
            line("/qty", json!("1.0000001")),
        ),
        (
            "qty with 13 digits",
            Both,
            line("/qty", json!("1000000000000")),
        ),
        ("qty ending in a point", Both, line("/qty", json!("5."))),
        ("qty missing", Both, without(r, "/lines/0/qty")),
        // lines
        ("serial with qty 2", Both, {
            let mut d = line("/serial", json!("SN1"));
            set(&mut d, "/lines/0/qty", json!("2"));
            d
        }),
        ("serial with qty 1.5", Both, {
            let mut d = line("/serial", json!("SN1"));
            set(&mut d, "/lines/0/qty", json!("1.5"));
            d
        }),
        (
            "lot with a GS control character",
            Both,
            line("/lot", json!("A1\u{1d}B2")),
        ),
        (
            "lot of 65 characters",
            Both,
            line("/lot", json!("L".repeat(65))),
        ),
        ("serial empty", Both, line("/serial", json!(""))),
        (
            "expiry month 13",
            Both,
            line("/expiry", json!("2027-13-01")),
        ),
        ("expiry YYMMDD", Both, line("/expiry", json!("271231"))),
        (
            "expiry on 30 February",
            SerdeOnly,
            line("/expiry", json!("2027-02-30")),
        ),
        (
            "expiry in year 0",
            SerdeOnly,
            line("/expiry", json!("0000-01-01")),
        ),
        ("uom empty", Both, line("/uom", json!(""))),
        (
            "uom of 33 characters",
            Both,
            line("/uom", json!("u".repeat(33))),
        ),
        ("uom missing", Both, without(r, "/lines/0/uom")),
        ("unknown line field", Both, line("/price", json!("1.00"))),
        ("unknown flag", Both, line("/flags", json!(["stolen"]))),
        (
            "duplicate flag",
            Both,
            line("/flags", json!(["expired", "expired"])),
        ),
        ("expiry flag without expiry", Both, {
            let mut d = line("/flags", json!(["expiry_day_00"]));
            set(&mut d, "/lines/0/expiry", Value::Null);
            d
        }),
        ("flags not an array", Both, line("/flags", json!("expired"))),
        // scans
        (
            "raw scan with a control character",
            Both,
            with(scan_event, "/scan/raw", json!("]d2\u{1d}01")),
        ),
        (
            "raw scan with a bad escape",
            Both,
            with(scan_event, "/scan/raw", json!("\\x1")),
        ),
        (
            "raw scan with uppercase hex",
            Both,
            with(scan_event, "/scan/raw", json!("\\x1D")),
        ),
        (
            "raw scan with a lone backslash",
            Both,
            with(scan_event, "/scan/raw", json!("a\\b")),
        ),
        (
            "raw scan not ASCII",
            Both,
            with(scan_event, "/scan/raw", json!("é")),
        ),
        (
            "raw scan empty",
            Both,
            with(scan_event, "/scan/raw", json!("")),
        ),
        (
            "raw scan too long",
            Both,
            with(scan_event, "/scan/raw", json!("a".repeat(16_385))),
        ),
        (
            "symbology without bracket",
            Both,
            with(scan_event, "/scan/symbology", json!("d2")),
        ),
        (
            "symbology without modifier",
            Both,
            with(scan_event, "/scan/symbology", json!("]d")),
        ),
        (
            "decoded unknown",
            Both,
            with(scan_event, "/scan/decoded", json!("qr")),
        ),
        (
            "scan with an unknown key",
            Both,
            with(scan_event, "/scan/bytes", json!("x")),
        ),
    ]
}

#[test]
fn invalid_documents_are_refused_by_schema_and_serde() {
    let schema = validator();
    assert!(schema.is_valid(&receipt()), "the base receipt is valid");
    assert!(
        schema.is_valid(&scan_event()),
        "the base scan event is valid"
    );
    serde_json::from_value::<Event>(receipt()).expect("serde accepts the base receipt");
    serde_json::from_value::<Event>(scan_event()).expect("serde accepts the base scan event");

    let cases = invalid_cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (name, side, doc) in &cases {
        let by_serde = serde_json::from_value::<Event>(doc.clone());
        let by_schema = schema.is_valid(doc);
        if let Ok(ev) = by_serde {
            failures.push(format!("{name}: serde accepted it as {ev:?}"));
        }
        match side {
            Side::Both if by_schema => failures.push(format!("{name}: the schema accepted it")),
            Side::SerdeOnly if !by_schema => failures.push(format!(
                "{name}: the schema now refuses it; mark the case Both"
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Lenient input forms that both sides accept.
#[test]
fn lenient_documents_are_accepted_by_schema_and_serde() {
    let schema = validator();
    let r = receipt;
    let with = |pointer: &str, value: Value| {
        let mut d = r();
        set(&mut d, pointer, value);
        d
    };
    let without = |pointer: &str| {
        let mut d = r();
        remove(&mut d, pointer);
        d
    };
    let cases = vec![
        ("product example", r()),
        (
            "uppercase id",
            with("/id", json!("01937F6E-7C1A-7A4E-9B1E-3C7C2D0F8A11")),
        ),
        (
            "offset time",
            with("/captured_at", json!("2026-11-24T11:15:03.120+01:00")),
        ),
        (
            "lowercase t and z",
            with("/captured_at", json!("2026-11-24t10:15:03.120z")),
        ),
        (
            "no fraction",
            with("/captured_at", json!("2026-11-24T10:15:03Z")),
        ),
        (
            "long fraction",
            with("/captured_at", json!("2026-11-24T10:15:03.123456789Z")),
        ),
        ("qty with zeros", with("/lines/0/qty", json!("05.10"))),
        ("qty below one", with("/lines/0/qty", json!("0.000001"))),
        (
            "qty at the maximum",
            with("/lines/0/qty", json!("999999999999.999999")),
        ),
        ("serial with qty 1.000", {
            let mut d = with("/lines/0/serial", json!("SN1"));
            set(&mut d, "/lines/0/qty", json!("1.000"));
            d
        }),
        ("missing nullable fields", {
            let mut d = without("/reference");
            remove(&mut d, "/from");
            remove(&mut d, "/scan");
            remove(&mut d, "/lines/0/lot");
            remove(&mut d, "/lines/0/serial");
            remove(&mut d, "/lines/0/flags");
            d
        }),
        (
            "hibc item",
            with(
                "/lines/0/item",
                json!({"hibc": {"lic": "A123", "pcn": "PCN1"}}),
            ),
        ),
        (
            "code item",
            with("/lines/0/item", json!({"code": "GLOVE-M"})),
        ),
        (
            "flags",
            with("/lines/0/flags", json!(["expiry_day_00", "expired"])),
        ),
        ("receipt with a from", with("/from", json!("Vendors"))),
        ("1000 lines", {
            let line = r()["lines"][0].clone();
            with("/lines", Value::Array(vec![line; MAX_LINES]))
        }),
        (
            "unicode location",
            with("/to", json!("Entrepôt/Étagère 2 📦")),
        ),
        ("scan event", scan_event()),
        ("gateway containing all", with("/gateway", json!("gw-all"))),
        ("max seq", with("/seq", json!(u64::MAX))),
    ];
    let mut failures = Vec::new();
    for (name, doc) in &cases {
        if let Err(e) = serde_json::from_value::<Event>(doc.clone()) {
            failures.push(format!("{name}: serde refused it: {e}"));
        }
        if !schema.is_valid(doc) {
            let errors: Vec<String> = schema.iter_errors(doc).map(|e| e.to_string()).collect();
            failures.push(format!("{name}: the schema refused it: {errors:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Output is always the canonical form: every field present, normalised quantity, UTC time
/// with milliseconds, lowercase id.
#[test]
fn output_is_canonical() {
    let mut d = receipt();
    set(&mut d, "/id", json!("01937F6E-7C1A-7A4E-9B1E-3C7C2D0F8A11"));
    set(
        &mut d,
        "/captured_at",
        json!("2026-11-24T11:15:03.1209+01:00"),
    );
    set(&mut d, "/lines/0/qty", json!("005.500"));
    remove(&mut d, "/lines/0/flags");
    remove(&mut d, "/scan");
    let ev: Event = serde_json::from_value(d).unwrap();
    let out = serde_json::to_value(&ev).unwrap();
    assert_eq!(out, receipt_with_qty("5.5"));
}

fn receipt_with_qty(qty: &str) -> Value {
    let mut d = receipt();
    set(&mut d, "/lines/0/qty", json!(qty));
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_valid_event_matches_the_schema(ev in strategies::event()) {
        let schema = validator();
        let doc = serde_json::to_value(&ev).unwrap();
        let errors: Vec<String> = schema.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        prop_assert!(errors.is_empty(), "{:?}\n{}", errors, doc);
    }
}
