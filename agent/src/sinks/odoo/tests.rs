//! Unit tests of the Odoo sink: the transport and the classification against the real
//! captures of Odoo 16–19 (`tests/data/odoo-captures/`, the repository's one copy), the mapping, the key file, and
//! the state machine against a scripted Odoo.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use tallyman_protocol::Date;
use tallyman_protocol::event::{
    Event, FacilityId, GatewayId, Gtin14, Header, Item, ItemCode, Line, Location as EvLocation,
    Lot, Quantity, Reference, SourceName, Uom,
};

use super::error::{Class, OdooError, classify_exception};
use super::machine;
use super::mapping::*;
use super::transport::*;
use crate::sinks::Outcome;

// ------------------------------------------------------------------------------------------
// Captures

fn captures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/odoo-captures"
    ))
}

/// A capture's request body and its answer as the transport sees it.
fn capture(name: &str) -> (Value, Raw, String) {
    let path = captures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let c: Value = serde_json::from_str(&text).unwrap();
    let request = c["request"].clone();
    let response = &c["response"];
    // One capture (16, immediate wizard) holds only the answer's body.
    let (status, body) = match response.get("status") {
        Some(s) => (s.as_u64().unwrap() as u16, response["body"].clone()),
        None => (200, response.clone()),
    };
    let body = match body {
        Value::String(s) => s.into_bytes(),
        other => serde_json::to_vec(&other).unwrap(),
    };
    let path = request
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/jsonrpc")
        .to_owned();
    (
        request,
        Raw {
            status,
            retry_after: None,
            body,
        },
        path,
    )
}

fn decode(name: &str) -> Result<Value, OdooError> {
    let (_, raw, path) = capture(name);
    if path.starts_with("/json/2/") {
        decode_json2("call", "http://odoo", &raw)
    } else {
        decode_jsonrpc("call", "http://odoo", &raw)
    }
}

#[derive(Debug)]
enum Expect {
    Value(Value),
    Error(&'static str, Class),
}

fn retry() -> Class {
    Class::Retry { after: None }
}

/// The one check every capture goes through: decoded as expected, errors classified as
/// odoo-api.md §4 says, with Odoo's message kept.
fn check(name: &str, expect: &Expect) {
    let got = decode(name);
    match (expect, got) {
        (Expect::Value(v), Ok(got)) => assert_eq!(&got, v, "{name}"),
        (Expect::Error(exc, class), Err(e)) => {
            assert_eq!(&e.class(), class, "{name}: {e}");
            if let OdooError::Server {
                name: n, message, ..
            } = &e
            {
                assert_eq!(n, exc, "{name}");
                assert!(!message.is_empty(), "{name}: Odoo's message is kept");
            } else {
                assert_eq!(*exc, "", "{name}: expected Odoo's exception {exc}, got {e}");
            }
        }
        (expect, got) => panic!("{name}: expected {expect:?}, got {got:?}"),
    }
}

#[test]
fn every_capture_is_decoded_as_odoo_api_says() {
    use Expect::*;
    let halt = || Class::Halt;
    let reject = || Class::Reject;
    let mut table: Vec<(String, Expect)> = Vec::new();
    for v in ["16", "17", "18", "19"] {
        let f = |n: &str| format!("{v}/{n}");
        table.extend([
            (
                f("jsonrpc_error_access_denied.json"),
                Error("odoo.exceptions.AccessDenied", halt()),
            ),
            (
                f("jsonrpc_error_private_method.json"),
                Error("odoo.exceptions.AccessError", halt()),
            ),
            (
                f("jsonrpc_error_user.json"),
                Error("odoo.exceptions.UserError", reject()),
            ),
            (
                f("jsonrpc_error_validation.json"),
                Error("odoo.exceptions.ValidationError", reject()),
            ),
            (
                f("jsonrpc_error_missing.json"),
                Error("odoo.exceptions.MissingError", reject()),
            ),
            (
                f("jsonrpc_error_unknown_model.json"),
                Error("odoo.exceptions.UserError", reject()),
            ),
            // `None` returned: no `result` key, read as null (§1.3).
            (
                f("jsonrpc_quant_apply_inventory.json"),
                Value(serde_json::Value::Null),
            ),
            (
                f("jsonrpc_common_authenticate_bad.json"),
                Value(json!(false)),
            ),
            (f("jsonrpc_common_authenticate.json"), Value(json!(2))),
            (f("jsonrpc_action_confirm.json"), Value(json!(true))),
        ]);
    }
    for v in ["16", "17", "18"] {
        // Re-validating a done picking: a UserError up to 18 …
        table.push((
            format!("{v}/jsonrpc_button_validate_on_done.json"),
            Error("odoo.exceptions.UserError", reject()),
        ));
    }
    table.extend([
        // … and `true` on 19.
        (
            "19/jsonrpc_button_validate_on_done.json".into(),
            Value(json!(true)),
        ),
        ("16/jsonrpc_create_receipt.json".into(), Value(json!(1))),
        (
            "19/json2_button_validate_done.json".into(),
            Value(json!(true)),
        ),
        (
            "19/json2_bot_check_object_reference_found.json".into(),
            Value(json!(["stock.picking", 26])),
        ),
        (
            "19/json2_bot_check_object_reference_missing.json".into(),
            Error("builtins.ValueError", Class::NotFound),
        ),
        (
            "19/json2_bot_ir_model_data_search.json".into(),
            Error("odoo.exceptions.AccessError", halt()),
        ),
        (
            "19/json2_error_bad_key.json".into(),
            Error("werkzeug.exceptions.Unauthorized", halt()),
        ),
        (
            "19/json2_error_no_auth.json".into(),
            Error("werkzeug.exceptions.Unauthorized", halt()),
        ),
        (
            "19/json2_error_private.json".into(),
            Error("odoo.exceptions.AccessError", halt()),
        ),
        (
            "19/json2_error_user.json".into(),
            Error("odoo.exceptions.UserError", reject()),
        ),
        (
            "19/json2_error_validation.json".into(),
            Error("odoo.exceptions.ValidationError", reject()),
        ),
        (
            "19/json2_error_duplicate_xmlid.json".into(),
            Error("odoo.exceptions.ValidationError", reject()),
        ),
        (
            "19/json2_error_duplicate_picking_name.json".into(),
            Error("odoo.exceptions.ValidationError", reject()),
        ),
        (
            "19/json2_error_missing.json".into(),
            Error("odoo.exceptions.MissingError", reject()),
        ),
        (
            "19/json2_error_unknown_model.json".into(),
            Error("werkzeug.exceptions.NotFound", reject()),
        ),
        (
            "19/json2_error_unknown_method.json".into(),
            Error("werkzeug.exceptions.NotFound", reject()),
        ),
        (
            "19/json2_error_bad_kwarg.json".into(),
            Error("werkzeug.exceptions.UnprocessableEntity", reject()),
        ),
        (
            "19/json2_error_ids_on_model_method.json".into(),
            Error("werkzeug.exceptions.UnprocessableEntity", reject()),
        ),
        // The "no database" page is HTML: not the events' fault, retried.
        ("19/json2_error_wrong_db.json".into(), Error("", retry())),
        ("19/json2_read_missing_ids.json".into(), Value(json!([]))),
        ("19/json2_create.json".into(), Value(json!([9]))),
        ("19/json2_write.json".into(), Value(json!(true))),
        (
            "19/json2_bot_load_xmlid.json".into(),
            Value(json!({"ids": [26], "messages": [], "nextrow": 0})),
        ),
    ]);
    for (name, expect) in &table {
        check(name, expect);
    }
}

#[test]
fn no_capture_makes_the_decoders_fail_unclearly() {
    let mut seen = 0;
    for v in ["16", "17", "18", "19"] {
        for entry in std::fs::read_dir(captures().join(v)).unwrap() {
            let name = format!("{v}/{}", entry.unwrap().file_name().to_string_lossy());
            let (_, raw, path) = capture(&name);
            // Both decoders on every answer: whatever the shape, a value or a classified error
            // whose text names the call.
            for got in [
                decode_json2("m.x", "http://odoo", &raw),
                decode_jsonrpc("m.x", "http://odoo", &raw),
            ] {
                if let Err(e) = got {
                    let _ = e.class();
                    assert!(e.to_string().starts_with("m.x"), "{name} ({path}): {e}");
                }
            }
            seen += 1;
        }
    }
    assert!(seen > 100, "{seen} captures");
}

#[test]
fn versions_are_read_from_every_capture_and_saas_strings() {
    for (v, major, text) in [
        ("16", 16, "16.0"),
        ("17", 17, "17.0"),
        ("18", 18, "18.0+e-20241005"),
        ("19", 19, "19.0"),
    ] {
        let result = decode(&format!("{v}/jsonrpc_common_version.json")).unwrap();
        let got = parse_version(&result).unwrap();
        assert_eq!(
            (got.major, got.saas, got.text.as_str()),
            (major, false, text)
        );
    }
    let saas = parse_version(&json!({"server_version": "saas~18.3+e",
        "server_version_info": ["saas~18", 3, 0, "final", 0, ""]}))
    .unwrap();
    assert_eq!((saas.major, saas.minor, saas.saas), (18, 3, true));
    assert_eq!(Fields::of(18, true), Fields::of(19, false));
    assert!(parse_version(&json!({"server_version_info": ["nightly"]})).is_err());
    assert!(parse_version(&json!({"server_version_info": [-1]})).is_err());
    assert!(parse_version(&json!([])).is_err());
}

#[test]
fn calls_are_encoded_as_the_captured_requests() {
    // JSON-RPC: execute_kw's model, method, positional list and keyword object.
    let (req, _, _) = capture("17/jsonrpc_write_move_line.json");
    let args = req["body"]["params"]["args"].as_array().unwrap();
    let call = Call::new("stock.move.line", "write").ids(vec![2]).arg(
        "vals",
        json!({"lot_name": "LOT-5e9b906c", "quantity": 5.0, "expiration_date": "2027-11-24 03:26:35"}),
    );
    assert_eq!(call.execute_kw_args().to_vec(), args[3..].to_vec());

    let (req, _, _) = capture("16/jsonrpc_button_validate_on_done.json");
    let args = req["body"]["params"]["args"].as_array().unwrap();
    let call = Call::new("stock.picking", "button_validate")
        .ids(vec![1])
        .context(json!({"skip_backorder": true}));
    assert_eq!(call.execute_kw_args().to_vec(), args[3..].to_vec());

    let (req, _, _) = capture("17/jsonrpc_search_read_picking_types.json");
    let args = req["body"]["params"]["args"].as_array().unwrap();
    let call = Call::new("stock.picking.type", "search_read")
        .arg("domain", args[5][0].clone())
        .kwarg("fields", args[6]["fields"].clone());
    assert_eq!(call.execute_kw_args().to_vec(), args[3..].to_vec());

    // JSON-2: named arguments, `ids`, `context`.
    for (file, call) in [
        (
            "19/json2_read.json",
            Call::new("stock.picking", "read").ids(vec![20]).kwarg("fields", json!(["state"])),
        ),
        (
            "19/json2_write.json",
            Call::new("res.partner", "write").ids(vec![9]).arg("vals", json!({"comment": "x"})),
        ),
        (
            "19/json2_bot_check_object_reference_found.json",
            Call::new("ir.model.data", "check_object_reference")
                .arg("module", json!("edge_agent"))
                .arg("xml_id", json!("evt_a42058cbba")),
        ),
        (
            "19/json2_backorder_wizard_create_empty.json",
            Call::new("stock.backorder.confirmation", "create")
                .arg("vals_list", json!([{}]))
                .context(json!({"button_validate_picking_ids": [13], "default_show_transfers": false, "default_pick_ids": [[4, 13]]})),
        ),
    ] {
        let (req, _, path) = capture(file);
        assert_eq!(call.json2_body(), req["body"], "{file}");
        assert_eq!(path, format!("/json/2/{}/{}", call.model, call.method));
    }
    let request = jsonrpc_request(1, "common", "version", vec![]);
    let (req, _, _) = capture("16/jsonrpc_common_version.json");
    assert_eq!(request, req["body"]);
}

#[test]
fn answers_of_wrong_shape_are_protocol_errors_never_panics() {
    let raw = |status: u16, body: &str| Raw {
        status,
        retry_after: None,
        body: body.as_bytes().to_vec(),
    };
    for body in [
        "",
        "not json",
        "[1,2]",
        "{\"error\": 5}",
        "{\"error\": {}}",
        "null",
    ] {
        let got = decode_jsonrpc("m.x", "e", &raw(200, body));
        if let Err(e) = got {
            assert!(
                matches!(e.class(), Class::Retry { .. } | Class::Reject),
                "{body}: {e}"
            );
        }
    }
    // Session expiry and 404 in JSON-RPC carry their code only.
    let e = decode_jsonrpc(
        "m.x",
        "e",
        &raw(
            200,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":100,"message":"Odoo Session Expired"}}"#,
        ),
    )
    .unwrap_err();
    assert_eq!(e.class(), retry());
    // A proxy's 502 page, a 503 with Retry-After.
    let e = decode_json2("m.x", "e", &raw(502, "<html>Bad Gateway</html>")).unwrap_err();
    assert_eq!(e.class(), retry());
    let mut r = raw(503, "");
    r.retry_after = Some(std::time::Duration::from_secs(7));
    assert_eq!(
        decode_json2("m.x", "e", &r).unwrap_err().class(),
        Class::Retry {
            after: Some(std::time::Duration::from_secs(7))
        }
    );
    assert_eq!(
        decode_json2("m.x", "e", &raw(200, "")).unwrap(),
        Value::Null
    );
    assert_eq!(
        decode_json2("m.x", "e", &raw(401, "")).unwrap_err().class(),
        Class::Halt
    );
    assert_eq!(
        decode_jsonrpc("m.x", "e", &raw(403, "no"))
            .unwrap_err()
            .class(),
        Class::Halt
    );
    // Locks and serialization failures are retried on every version (§1.3, §1.8).
    for name in [
        "odoo.exceptions.LockError",
        "psycopg2.errors.SerializationFailure",
        "psycopg2.errors.LockNotAvailable",
        "psycopg2.OperationalError",
    ] {
        assert_eq!(classify_exception(name, "x", 200), retry(), "{name}");
    }
    assert_eq!(
        classify_exception(
            "builtins.ValueError",
            "Invalid field 'name' in 'stock.move'",
            500
        ),
        Class::Reject
    );
    assert_eq!(classify_exception("some_addon.Boom", "x", 500), retry());
}

#[test]
fn load_answers_give_ids_or_odoos_messages() {
    let v = decode("19/json2_load_xmlid_upsert_with_child_ids.json").unwrap();
    assert_eq!(answer::loaded("l", &v, 1).unwrap(), vec![15]);
    let refused = json!({"ids": false, "messages": [{"type": "error", "rows": {"from": 0, "to": 0},
        "message": "Changing the operation type of this record is forbidden at this point."}]});
    let e = answer::loaded("stock.picking.load", &refused, 1).unwrap_err();
    assert_eq!(e.class(), Class::Reject);
    assert!(
        e.reason().contains("Changing the operation type"),
        "{}",
        e.reason()
    );
    assert!(answer::loaded("l", &json!({"ids": [1, 2]}), 1).is_err());
    assert!(answer::loaded("l", &json!("x"), 1).is_err());
    assert_eq!(answer::created("c", &json!(5)).unwrap(), vec![5]);
    assert_eq!(answer::created("c", &json!([3, 4])).unwrap(), vec![3, 4]);
    assert!(answer::created("c", &json!({"a": 1})).is_err());
}

#[test]
fn wizards_are_answered_with_the_right_button() {
    let cases = [
        (
            "16/jsonrpc_button_validate_immediate_wizard.json",
            "stock.immediate.transfer",
            "process",
        ),
        (
            "18/jsonrpc_button_validate_backorder_wizard.json",
            "stock.backorder.confirmation",
            "process_cancel_backorder",
        ),
        (
            "19/json2_button_validate_expiry_wizard.json",
            "expiry.picking.confirmation",
            "process",
        ),
        (
            "19/json2_scrap_insufficient_wizard.json",
            "stock.warn.insufficient.qty.scrap",
            "action_done",
        ),
    ];
    for (file, model, button) in cases {
        let v = decode(file).unwrap();
        match wizard_step(&v) {
            WizardStep::Process {
                model: m,
                button: b,
                context,
            } => {
                assert_eq!((m.as_str(), b), (model, button), "{file}");
                assert!(context.is_object());
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    assert_eq!(wizard_step(&json!(true)), WizardStep::Done);
    assert_eq!(
        wizard_step(&json!({"type": "ir.actions.client", "tag": "do_multi_print"})),
        WizardStep::Done
    );
    assert!(matches!(
        wizard_step(
            &json!({"res_model": "quality.check.wizard", "target": "new", "name": "Quality Checks"})
        ),
        WizardStep::Unknown { .. }
    ));
}

// ------------------------------------------------------------------------------------------
// Key file

#[test]
fn the_key_file_is_read_again_when_it_changes_and_refused_when_unsafe() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odoo.key");
    std::fs::write(&path, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut key = super::key::KeyFile::new(path.clone());
    let (k, changed) = key.current().unwrap();
    assert_eq!(
        (&*k, changed),
        ("0123456789abcdef0123456789abcdef01234567", false)
    );
    std::fs::write(&path, "fedcba9876543210fedcba9876543210fedcba98\r\n").unwrap();
    let (k, changed) = key.current().unwrap();
    assert_eq!(
        (&*k, changed),
        ("fedcba9876543210fedcba9876543210fedcba98", true)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(key.current().unwrap_err().contains("every user"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(&path, "\n").unwrap();
    assert!(key.current().unwrap_err().contains("empty"));
    std::fs::write(&path, "two words").unwrap();
    assert!(key.current().unwrap_err().contains("spaces"));
    std::fs::remove_file(&path).unwrap();
    assert!(key.current().unwrap_err().contains("odoo.key"));
}

// ------------------------------------------------------------------------------------------
// Mapping

#[test]
fn gtin_candidates_are_the_13_12_and_8_digit_forms() {
    assert_eq!(
        gtin_candidates("05901234123457"),
        vec!["05901234123457", "5901234123457"]
    );
    assert_eq!(
        gtin_candidates("00012345678905"),
        vec!["00012345678905", "0012345678905", "012345678905"]
    );
    assert_eq!(
        gtin_candidates("00000096385074"),
        vec![
            "00000096385074",
            "0000096385074",
            "000096385074",
            "96385074"
        ]
    );
    assert_eq!(gtin_candidates("19506000134352"), vec!["19506000134352"]);
    let key = ItemKey::Gtin("00000096385074".into());
    assert!(key.matches(Some("96385074"), None));
    assert!(!key.matches(Some("6385074"), None));
    assert!(ItemKey::Code("GLV-100".into()).matches(None, Some("GLV-100")));
}

#[test]
fn quantities_keep_their_decimals() {
    assert_eq!(qty_text(5_000_000), "5");
    assert_eq!(qty_text(2_500_000), "2.5");
    assert_eq!(qty_text(1), "0.000001");
    assert_eq!(millionths_of(&json!(2.5)), Some(2_500_000));
    assert_eq!(millionths_of(&json!(0.1 + 0.2)), Some(300_000));
    assert_eq!(millionths_of(&json!(-1.0)), None);
    assert_eq!(millionths_of(&json!("5")), None);
    assert_eq!(qty_value(2_500_000), json!(2.5));
}

fn header(n: u8) -> Header {
    Header {
        id: tallyman_protocol::event::EventId::new_v7(1_700_000_000_000 + u64::from(n), [n; 10]),
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-1").unwrap(),
        source: SourceName::new("dock-1").unwrap(),
        seq: u64::from(n),
        captured_at: tallyman_protocol::event::Timestamp::from_unix_millis(1_700_000_000_000)
            .unwrap(),
    }
}

fn gtin_line(gtin: &str, qty: &str) -> Line {
    Line::new(
        Item::Gtin(Gtin14::from_gtin(gtin).unwrap()),
        Quantity::new(qty).unwrap(),
        Uom::new("Units").unwrap(),
    )
}

fn loc(s: &str) -> EvLocation {
    EvLocation::new(s).unwrap()
}

const GAUZE: i64 = 11;
const GLOVES: i64 = 12;

fn resolved() -> Resolved {
    let mut r = Resolved::default();
    r.products.insert(
        ItemKey::Gtin("05901234123457".into()),
        ProductMatch::One(Product {
            id: GAUZE,
            name: "Gauze".into(),
            barcode: Some("5901234123457".into()),
            default_code: None,
            tracking: Tracking::Lot,
            uom: Some(1),
            use_expiry: true,
        }),
    );
    r.products.insert(
        ItemKey::Code("GLV-100".into()),
        ProductMatch::One(Product {
            id: GLOVES,
            name: "Gloves".into(),
            barcode: None,
            default_code: Some("GLV-100".into()),
            tracking: Tracking::None,
            uom: Some(1),
            use_expiry: false,
        }),
    );
    for (id, name, usage) in [
        (1, "Partners/Vendors", "supplier"),
        (5, "WH/Stock", "internal"),
        (6, "WH/Stock/Shelf 1", "internal"),
        (9, "Virtual Locations/Consumption", "production"),
        (20, "WH2/Stock", "internal"),
    ] {
        r.locations.insert(
            name.into(),
            Location {
                id,
                name: name.into(),
                usage: usage.into(),
            },
        );
    }
    r.uoms.insert("Units".into(), 1);
    r.lots.insert((GAUZE, "LOT-A".into()), 77);
    let t =
        |id: i64, code: &str, src: Option<(i64, &str)>, dest: Option<(i64, &str)>| PickingType {
            id,
            name: code.into(),
            code: code.into(),
            default_src: src.map(|(i, n)| (i, n.to_owned())),
            default_dest: dest.map(|(i, n)| (i, n.to_owned())),
        };
    r.types = vec![
        t(1, "incoming", None, Some((5, "WH/Stock"))),
        t(2, "outgoing", Some((5, "WH/Stock")), None),
        t(3, "internal", Some((5, "WH/Stock")), Some((5, "WH/Stock"))),
        t(8, "incoming", None, Some((20, "WH2/Stock"))),
        t(
            9,
            "internal",
            Some((20, "WH2/Stock")),
            Some((20, "WH2/Stock")),
        ),
    ];
    r.supplier = Some(1);
    r
}

fn receipt(n: u8) -> Event {
    let lines = vec![
        gtin_line("5901234123457", "5")
            .with_lot(Lot::new("LOT-A").unwrap())
            .with_expiry(Date::new(2027, 11, 30).unwrap()),
        gtin_line("5901234123457", "2.5").with_lot(Lot::new("LOT-B").unwrap()),
        Line::new(
            Item::Code(ItemCode::new("GLV-100").unwrap()),
            Quantity::new("3").unwrap(),
            Uom::new("Units").unwrap(),
        )
        .with_lot(Lot::new("IGNORED").unwrap()),
    ];
    Event::receipt(header(n), loc("WH/Stock/Shelf 1"), lines)
        .unwrap()
        .with_reference(Some(Reference::new("PO-4711").unwrap()))
}

#[test]
fn a_receipt_becomes_an_incoming_picking_with_one_move_per_product() {
    let e = receipt(1);
    let Plan::Picking(p) = plan(&e, &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    assert_eq!(p.origin, e.id().to_string());
    assert_eq!(
        p.xmlid,
        format!("evt_{}", e.id().to_string().replace('-', "_"))
    );
    assert_eq!((p.picking_type, p.location, p.location_dest), (1, 1, 6));
    assert_eq!(p.reference.as_deref(), Some("PO-4711"));
    assert_eq!(p.moves.len(), 2);
    let gauze = &p.moves[0];
    assert_eq!(
        (gauze.product, gauze.qty, gauze.xmlid.ends_with("_m1")),
        (GAUZE, 7_500_000, true)
    );
    assert_eq!(gauze.lines[0].lot, LotPlan::Name("LOT-A".into()));
    assert_eq!(gauze.lines[0].expiry, Date::new(2027, 11, 30));
    assert_eq!(gauze.lines[1].lot, LotPlan::Name("LOT-B".into()));
    // Untracked: the lot on the line is not Odoo's business.
    assert_eq!(p.moves[1].lines[0].lot, LotPlan::None);
    assert!(p.moves[1].xmlid.ends_with("_m2"));

    // The same receipt into the second warehouse takes that warehouse's receipt type.
    let mut parts = e.clone().into_parts();
    parts.to = Some(loc("WH2/Stock"));
    let e2 = Event::from_parts(parts).unwrap();
    let Plan::Picking(p2) = plan(&e2, &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    assert_eq!((p2.picking_type, p2.location_dest), (8, 20));
}

#[test]
fn load_rows_follow_the_version() {
    let Plan::Picking(p) = plan(&receipt(1), &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    let (cols16, rows16) = picking_load(&[&p, &p], Fields::of(16, false));
    let (cols19, rows19) = picking_load(&[&p], Fields::of(19, false));
    assert_eq!(cols16.last(), Some(&"move_ids/name"));
    assert!(!cols19.contains(&"move_ids/name"));
    assert_eq!(rows16.len(), 4, "two pickings of two moves");
    assert!(rows16.iter().all(|r| r.len() == cols16.len()));
    assert_eq!(rows16[0][0], format!("tallyman.{}", p.xmlid));
    assert_eq!(rows16[0][4], p.origin);
    assert_eq!(rows16[0][5], "Reference: PO-4711");
    assert_eq!(
        rows16[1][0], "",
        "a move's own row leaves the picking columns empty"
    );
    assert_eq!(rows16[1][6], format!("tallyman.{}_m2", p.xmlid));
    assert_eq!(rows19[0][8], "7.5");
    assert_eq!(rows19[0].len(), cols19.len());
    assert_eq!(Fields::of(16, false).line_qty, "qty_done");
    assert_eq!(Fields::of(17, false).line_qty, "quantity");
    assert!(!Fields::of(16, false).picked && Fields::of(17, false).picked);
}

#[test]
fn transfers_consumption_and_scraps_need_known_lots() {
    let r = resolved();
    let line = gtin_line("5901234123457", "2").with_lot(Lot::new("LOT-A").unwrap());
    let t = Event::transfer(
        header(2),
        loc("WH/Stock"),
        loc("WH/Stock/Shelf 1"),
        vec![line.clone()],
    )
    .unwrap();
    let Plan::Picking(p) = plan(&t, &r, &Consumption::Scrap).unwrap() else {
        panic!()
    };
    assert_eq!((p.picking_type, p.location, p.location_dest), (3, 5, 6));
    assert_eq!(p.moves[0].lines[0].lot, LotPlan::Id(77));

    let c = Event::consumption(header(3), loc("WH/Stock/Shelf 1"), vec![line.clone()]).unwrap();
    let picking = Consumption::Picking {
        location: Some("Virtual Locations/Consumption".into()),
    };
    let Plan::Picking(p) = plan(&c, &r, &picking).unwrap() else {
        panic!()
    };
    assert_eq!((p.picking_type, p.location, p.location_dest), (3, 6, 9));
    let Plan::Scraps(s) = plan(&c, &r, &Consumption::Scrap).unwrap() else {
        panic!()
    };
    assert_eq!(s.scraps.len(), 1);
    assert_eq!(
        (s.scraps[0].lot, s.scraps[0].location, s.scraps[0].qty),
        (Some(77), 6, 2_000_000)
    );
    assert!(s.scraps[0].xmlid.ends_with("_s1"));

    let unknown = gtin_line("5901234123457", "1").with_lot(Lot::new("LOT-Z").unwrap());
    let c = Event::consumption(header(4), loc("WH/Stock"), vec![unknown]).unwrap();
    let err = plan(&c, &r, &Consumption::Scrap).unwrap_err();
    assert!(
        matches!(err, Problem::UnknownLot { .. }) && !err.is_setup(),
        "{err}"
    );
    let nolot = gtin_line("5901234123457", "1");
    let c = Event::consumption(header(4), loc("WH/Stock"), vec![nolot]).unwrap();
    assert!(matches!(
        plan(&c, &r, &Consumption::Scrap),
        Err(Problem::NoLot { .. })
    ));
    assert_eq!(
        plan(&c, &r, &Consumption::Picking { location: None }).unwrap_err(),
        Problem::NoConsumptionLocation
    );
}

#[test]
fn unknown_items_places_and_units_are_the_events_problem_setup_gaps_are_not() {
    let r = resolved();
    let unknown = Event::receipt(
        header(5),
        loc("WH/Stock"),
        vec![gtin_line("4006381333931", "1")],
    )
    .unwrap();
    let err = plan(&unknown, &r, &Consumption::Scrap).unwrap_err();
    assert!(!err.is_setup());
    assert!(err.to_string().contains("04006381333931"), "{err}");
    let nowhere = Event::receipt(
        header(6),
        loc("Nowhere"),
        vec![gtin_line("5901234123457", "1")],
    )
    .unwrap();
    assert_eq!(
        plan(&nowhere, &r, &Consumption::Scrap).unwrap_err(),
        Problem::UnknownLocation("Nowhere".into())
    );
    let mut no_internal = r.clone();
    no_internal.types.retain(|t| t.code != "internal");
    let t = Event::transfer(
        header(7),
        loc("WH/Stock"),
        loc("WH/Stock/Shelf 1"),
        vec![gtin_line("5901234123457", "1").with_lot(Lot::new("LOT-A").unwrap())],
    )
    .unwrap();
    let err = plan(&t, &no_internal, &Consumption::Scrap).unwrap_err();
    assert!(err.is_setup(), "{err}");
    assert!(err.to_string().contains("Storage Locations"));
    let mut many = r.clone();
    many.products.insert(
        ItemKey::Gtin("05901234123457".into()),
        ProductMatch::Many(vec!["A".into(), "B".into()]),
    );
    assert!(matches!(
        plan(&receipt(1), &many, &Consumption::Scrap),
        Err(Problem::AmbiguousProduct { .. })
    ));
}

fn existing(
    id: i64,
    move_id: i64,
    lot: Option<i64>,
    name: Option<&str>,
    qty: u64,
    src: i64,
    dst: i64,
) -> ExistingLine {
    ExistingLine {
        id,
        move_id,
        lot_id: lot,
        lot_name: name.map(str::to_owned),
        qty,
        location: src,
        location_dest: dst,
    }
}

#[test]
fn reconcile_changes_only_what_differs_and_settles() {
    let Plan::Picking(p) = plan(&receipt(1), &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    let f17 = Fields::of(17, false);
    // After confirmation (17+): one line per move with the demand, no lot.
    let have = vec![
        existing(100, 50, None, None, 7_500_000, 1, 6),
        existing(101, 51, None, None, 3_000_000, 1, 6),
    ];
    let moves = [(50, &p.moves[0]), (51, &p.moves[1])];
    let c = reconcile(900, &moves, &have, f17);
    // Gauze: the reserved line becomes LOT-A (5, with its expiry), LOT-B is created; gloves
    // already right.
    assert_eq!(c.writes.len(), 1);
    assert_eq!(c.writes[0].0, vec![100]);
    assert_eq!(
        c.writes[0].1,
        json!({"lot_name": "LOT-A", "quantity": 5.0, "location_id": 1, "location_dest_id": 6,
               "expiration_date": "2027-11-30 12:00:00"})
    );
    assert_eq!(c.creates.len(), 1);
    assert_eq!(c.creates[0]["lot_name"], "LOT-B");
    assert_eq!(c.creates[0]["move_id"], 50);
    assert_eq!(c.creates[0]["picking_id"], 900);
    assert_eq!(c.creates[0]["product_id"], GAUZE);
    assert!(c.unlinks.is_empty());

    // Once applied, nothing more to do.
    let after = vec![
        existing(100, 50, None, Some("LOT-A"), 5_000_000, 1, 6),
        existing(101, 51, None, None, 3_000_000, 1, 6),
        existing(102, 50, None, Some("LOT-B"), 2_500_000, 1, 6),
    ];
    assert!(reconcile(900, &moves, &after, f17).is_empty());

    // 16: the done quantity is qty_done, 0 after confirmation.
    let have16 = vec![
        existing(100, 50, None, None, 0, 1, 6),
        existing(101, 51, None, None, 0, 1, 6),
    ];
    let c = reconcile(900, &moves, &have16, Fields::of(16, false));
    assert_eq!(c.writes.len(), 2);
    assert_eq!(
        c.writes[1].1,
        json!({"qty_done": 3.0, "location_id": 1, "location_dest_id": 6})
    );

    // A transfer whose reservation took other lots and places: rewritten, the surplus removed.
    let line = gtin_line("5901234123457", "2").with_lot(Lot::new("LOT-A").unwrap());
    let t = Event::transfer(
        header(2),
        loc("WH/Stock"),
        loc("WH/Stock/Shelf 1"),
        vec![line],
    )
    .unwrap();
    let Plan::Picking(tp) = plan(&t, &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    let reserved = vec![
        existing(200, 60, Some(78), None, 1_000_000, 6, 6),
        existing(201, 60, Some(79), None, 1_000_000, 5, 6),
    ];
    let c = reconcile(901, &[(60, &tp.moves[0])], &reserved, f17);
    assert_eq!(
        c.writes,
        vec![(
            vec![200],
            json!({"lot_id": 77, "quantity": 2.0, "location_id": 5, "location_dest_id": 6})
        )]
    );
    assert_eq!(c.unlinks, vec![201]);
    // Writes with the same values are one call.
    let mut all = LineChanges::default();
    all.extend(reconcile(
        1,
        &[(60, &tp.moves[0])],
        &[existing(1, 60, None, None, 0, 6, 6)],
        f17,
    ));
    all.extend(reconcile(
        2,
        &[(61, &tp.moves[0])],
        &[existing(2, 61, None, None, 0, 6, 6)],
        f17,
    ));
    assert_eq!(all.writes.len(), 1);
    assert_eq!(all.writes[0].0, vec![1, 2]);
}

#[test]
fn several_line_changes_are_one_import_per_set_of_columns() {
    let Plan::Picking(p) = plan(&receipt(1), &resolved(), &Consumption::Scrap).unwrap() else {
        panic!()
    };
    let f17 = Fields::of(17, false);
    let moves = [(50, &p.moves[0]), (51, &p.moves[1])];
    // One rewrite (LOT-A) and one creation (LOT-B): two imports, each row's fields only.
    let have = vec![
        existing(100, 50, None, None, 7_500_000, 1, 6),
        existing(101, 51, None, None, 3_000_000, 1, 6),
    ];
    let loads = reconcile(900, &moves, &have, f17).as_loads().unwrap();
    assert_eq!(loads.len(), 2);
    let (columns, rows) = &loads[0];
    assert_eq!(
        columns,
        &[
            ".id",
            "expiration_date",
            "location_dest_id/.id",
            "location_id/.id",
            "lot_name",
            "quantity"
        ]
    );
    assert_eq!(
        rows,
        &[vec!["100", "2027-11-30 12:00:00", "6", "1", "LOT-A", "5"]]
    );
    let (columns, rows) = &loads[1];
    assert!(!columns.contains(&".id".to_owned()), "{columns:?}");
    let cell = |name: &str| rows[0][columns.iter().position(|c| c == name).unwrap()].clone();
    assert_eq!(cell("move_id/.id"), "50");
    assert_eq!(cell("picking_id/.id"), "900");
    assert_eq!(cell("product_uom_id/.id"), "1");
    assert_eq!(cell("lot_name"), "LOT-B");
    assert_eq!(cell("quantity"), "2.5");

    // Many pickings' rewrites with different lots: one import, one row each.
    let mut all = LineChanges::default();
    for (picking, line) in [(900, 100), (901, 110), (902, 120)] {
        all.extend(reconcile(
            picking,
            &moves[..1],
            &[existing(line, 50, None, None, 7_500_000, 1, 6)],
            Fields::of(16, false),
        ));
    }
    // (The same move id stands for three pickings' moves here: only the rows matter.)
    let loads = all.as_loads().unwrap();
    assert_eq!(loads.len(), 2, "the rewrites, and the LOT-B creations");
    assert_eq!(loads[0].1.len(), 3);
    assert!(loads[0].0.contains(&"qty_done".to_owned()));

    // A single change is a plain write.
    let one = reconcile(
        900,
        &moves[1..],
        &[existing(101, 51, None, None, 0, 1, 6)],
        f17,
    );
    assert_eq!(one.writes.len(), 1);
    assert!(one.as_loads().is_none());
}

#[test]
fn operation_types_follow_the_warehouse_of_the_place() {
    let r = resolved();
    assert_eq!(
        choose_type(&r.types, "incoming", "WH/Stock/Shelf 1")
            .unwrap()
            .id,
        1
    );
    assert_eq!(
        choose_type(&r.types, "incoming", "WH2/Stock").unwrap().id,
        8
    );
    // `WH/Stocks` is not inside `WH/Stock`: the first of the code.
    assert_eq!(
        choose_type(&r.types, "internal", "WH/Stocks").unwrap().id,
        3
    );
    assert_eq!(
        choose_type(&r.types, "internal", "WH2/Stock/A").unwrap().id,
        9
    );
    assert!(choose_type(&r.types, "mrp_operation", "WH/Stock").is_none());
}

// ------------------------------------------------------------------------------------------
// The state machine against a scripted Odoo

type Handler = Box<dyn Fn(&Call, &mut Script) -> Result<Value, OdooError> + Send + Sync>;

/// A scripted Odoo: a handler answers each call and may keep state; every call is recorded.
struct Scripted {
    fields: Fields,
    state: Mutex<Script>,
    handler: Handler,
}

#[derive(Default)]
struct Script {
    calls: Vec<String>,
    /// Picking id → state.
    pickings: HashMap<i64, String>,
    /// Origin → picking id.
    origins: HashMap<String, i64>,
    /// External id (without the module) → picking id.
    xmlids: HashMap<String, i64>,
    /// Failures to answer once, by call label.
    fail: HashMap<String, OdooError>,
}

impl Caller for Scripted {
    fn call<'a>(&'a self, call: Call) -> CallFuture<'a> {
        let mut s = self.state.lock().unwrap();
        let label = call.label();
        s.calls.push(label.clone());
        let out = match s.fail.remove(&label) {
            Some(e) => Err(e),
            None => (self.handler)(&call, &mut s),
        };
        Box::pin(async move { out })
    }

    fn fields(&self) -> Fields {
        self.fields
    }
}

/// An Odoo that records pickings and their states; each picking has one move of gloves whose
/// line is right from the start (this tests the order and grouping of the steps, not the
/// lines).
fn odoo(fields: Fields) -> Scripted {
    Scripted {
        fields,
        state: Mutex::default(),
        handler: Box::new(move |call, s| {
            let ids = call.ids.clone().unwrap_or_default();
            let arg = |n: &str| {
                call.args
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null)
            };
            Ok(match (call.model.as_str(), call.method.as_str()) {
                ("stock.picking", "search_read") => {
                    let origins: Vec<String> = serde_json::from_value(arg("domain")[0][2].clone()).unwrap();
                    json!(origins.iter().filter_map(|o| s.origins.get(o).map(|id| json!({"id": id, "origin": o, "state": s.pickings[id], "name": format!("WH/IN/{id}")}))).collect::<Vec<_>>())
                }
                ("ir.model.data", "check_object_reference") => {
                    let name = arg("xml_id").as_str().unwrap().to_owned();
                    match s.xmlids.get(&name) {
                        Some(id) => json!(["stock.picking", id]),
                        None => return Err(OdooError::Server { call: call.label(), status: 500, name: "builtins.ValueError".into(), message: format!("External ID not found in the system: tallyman.{name}") }),
                    }
                }
                ("stock.picking", "load") => {
                    let data: Vec<Vec<String>> = serde_json::from_value(arg("data")).unwrap();
                    let mut ids = Vec::new();
                    for row in data.iter().filter(|r| !r[0].is_empty()) {
                        let id = 1000 + s.pickings.len() as i64;
                        s.pickings.insert(id, "draft".into());
                        s.origins.insert(row[4].clone(), id);
                        s.xmlids.insert(row[0].trim_start_matches("tallyman.").to_owned(), id);
                        ids.push(id);
                    }
                    json!({"ids": ids, "messages": []})
                }
                ("stock.picking", "action_confirm") => {
                    for id in &ids { s.pickings.insert(*id, "assigned".into()); }
                    json!(true)
                }
                ("stock.move", "search_read") => {
                    let pids: Vec<i64> = serde_json::from_value(arg("domain")[0][2].clone()).unwrap();
                    json!(pids.iter().map(|p| json!({"id": p * 10, "picking_id": [p, "P"], "product_id": [GLOVES, "Gloves"],
                        "product_uom": [1, "Units"], "state": "assigned", "picked": true})).collect::<Vec<_>>())
                }
                ("stock.move.line", "search_read") => {
                    let pids: Vec<i64> = serde_json::from_value(arg("domain")[0][2].clone()).unwrap();
                    json!(pids.iter().map(|p| json!({"id": p * 10 + 1, "move_id": [p * 10, "M"], "lot_id": false, "lot_name": false,
                        "qty_done": 1.0, "quantity": 1.0, "location_id": [1, "Partners/Vendors"], "location_dest_id": [5, "WH/Stock"]})).collect::<Vec<_>>())
                }
                ("stock.picking", "button_validate") => {
                    for id in &ids { s.pickings.insert(*id, "done".into()); }
                    json!(true)
                }
                ("stock.picking", "read") => json!(ids.iter().map(|id| json!({"id": id, "state": s.pickings[id], "name": format!("WH/IN/{id}")})).collect::<Vec<_>>()),
                other => panic!("unexpected call {other:?}"),
            })
        }),
    }
}

fn untracked_receipts(n: u8) -> Vec<PickingPlan> {
    (1..=n)
        .map(|i| {
            let e = Event::receipt(
                header(i),
                loc("WH/Stock"),
                vec![Line::new(
                    Item::Code(ItemCode::new("GLV-100").unwrap()),
                    Quantity::new("1").unwrap(),
                    Uom::new("Units").unwrap(),
                )],
            )
            .unwrap();
            let Plan::Picking(p) = plan(&e, &resolved(), &Consumption::Scrap).unwrap() else {
                panic!()
            };
            p
        })
        .collect()
}

fn run(odoo: &Scripted, plans: &[PickingPlan]) -> Vec<Outcome> {
    let items = plans.iter().enumerate().collect::<Vec<_>>();
    let out = futures_block_on(machine::pickings(odoo, items));
    let mut out = out;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn many_events_share_each_step_s_call() {
    let odoo = odoo(Fields::of(17, false));
    let plans = untracked_receipts(5);
    let out = run(&odoo, &plans);
    assert!(out.iter().all(|o| *o == Outcome::Delivered), "{out:?}");
    let calls = odoo.state.lock().unwrap().calls.clone();
    assert_eq!(
        calls,
        [
            "stock.picking.search_read",
            "stock.picking.load",
            "stock.picking.action_confirm",
            "stock.move.search_read",
            "stock.move.line.search_read",
            "stock.picking.button_validate",
            "stock.picking.read"
        ]
    );
    // Again: found done by origin, nothing else.
    odoo.state.lock().unwrap().calls.clear();
    let out = run(&odoo, &plans);
    assert!(out.iter().all(|o| *o == Outcome::Delivered));
    assert_eq!(
        odoo.state.lock().unwrap().calls,
        ["stock.picking.search_read"]
    );
}

#[test]
fn a_lost_answer_is_a_retry_and_the_next_run_validates_nothing_twice() {
    let odoo = odoo(Fields::of(16, false));
    let plans = untracked_receipts(3);
    // The validation committed, its answer was lost.
    let lost = OdooError::NoAnswer {
        call: "stock.picking.button_validate".into(),
        endpoint: "e".into(),
        detail: "cut".into(),
    };
    {
        let mut s = odoo.state.lock().unwrap();
        s.fail.insert("stock.picking.button_validate".into(), lost);
    }
    // The scripted failure answers instead of the handler: simulate the commit by hand after.
    let out = run(&odoo, &plans);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Retry { .. })),
        "{out:?}"
    );
    {
        let mut s = odoo.state.lock().unwrap();
        for st in s.pickings.values_mut() {
            *st = "done".into();
        }
        s.calls.clear();
    }
    let out = run(&odoo, &plans);
    assert!(out.iter().all(|o| *o == Outcome::Delivered));
    let calls = odoo.state.lock().unwrap().calls.clone();
    assert!(
        !calls.iter().any(|c| c.contains("button_validate")),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("load")), "{calls:?}");
}

#[test]
fn a_refused_group_call_sends_each_event_alone_and_only_the_bad_one_is_dead_lettered() {
    let mut odoo = odoo(Fields::of(19, false));
    let plans = untracked_receipts(3);
    let bad = plans[1].origin.clone();
    let inner = std::mem::replace(&mut odoo.handler, Box::new(|_, _| Ok(Value::Null)));
    odoo.handler = Box::new(move |call, s| {
        if (call.model.as_str(), call.method.as_str()) == ("stock.picking", "button_validate") {
            let ids = call.ids.clone().unwrap_or_default();
            let bad_id = s.origins.get(&bad).copied();
            if ids.iter().any(|id| Some(*id) == bad_id) {
                return Err(OdooError::Server {
                    call: call.label(),
                    status: 200,
                    name: "odoo.exceptions.UserError".into(),
                    message: "You need to supply a Lot/Serial number for product Gauze.".into(),
                });
            }
        }
        inner(call, s)
    });
    let out = run(&odoo, &plans);
    assert_eq!(out[0], Outcome::Delivered);
    assert_eq!(out[2], Outcome::Delivered);
    match &out[1] {
        Outcome::Rejected { reason } => assert!(
            reason.contains("You need to supply a Lot/Serial number"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let calls = odoo.state.lock().unwrap().calls.clone();
    let alone = calls
        .iter()
        .filter(|c| c.as_str() == "ir.model.data.check_object_reference")
        .count();
    assert_eq!(
        alone, 3,
        "each event looked up by its external id: {calls:?}"
    );
}

#[test]
fn auth_failures_halt_and_lock_conflicts_retry() {
    let odoo = odoo(Fields::of(18, false));
    let plans = untracked_receipts(2);
    odoo.state.lock().unwrap().fail.insert(
        "stock.picking.search_read".into(),
        OdooError::Server {
            call: "x".into(),
            status: 200,
            name: "odoo.exceptions.AccessDenied".into(),
            message: "Access Denied".into(),
        },
    );
    let out = run(&odoo, &plans);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Halt { .. })),
        "{out:?}"
    );
    odoo.state.lock().unwrap().fail.insert(
        "stock.picking.load".into(),
        OdooError::Server {
            call: "x".into(),
            status: 200,
            name: "psycopg2.errors.SerializationFailure".into(),
            message: "could not serialize access".into(),
        },
    );
    let out = run(&odoo, &plans);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Retry { .. })),
        "{out:?}"
    );
    // Nothing was created by the refused load; the next run creates each picking once.
    let out = run(&odoo, &plans);
    assert!(out.iter().all(|o| *o == Outcome::Delivered), "{out:?}");
    assert_eq!(odoo.state.lock().unwrap().pickings.len(), 2);
}

// ------------------------------------------------------------------------------------------
// The sink

fn sink_settings(key_file: &Path) -> tallyman_config::OdooSink {
    let text = format!(
        "[agent]\nfacility = \"f\"\ngateway = \"g\"\n[[sources]]\nname = \"s\"\n\
         type = \"stdin\"\n[[sinks]]\nname = \"odoo\"\ntype = \"odoo\"\n\
         endpoint = \"http://127.0.0.1:9\"\ndatabase = \"db\"\nlogin = \"edgebot\"\n\
         api_key_file = \"{}\"\nconsumption_location = \"Virtual Locations/Consumption\"\n",
        key_file.display()
    );
    let config = tallyman_config::parse_str(&text, "test.toml").unwrap();
    let tallyman_config::SinkTarget::Odoo(o) = config.sinks[0].target.clone() else {
        panic!("an odoo sink")
    };
    o
}

#[tokio::test(start_paused = true)]
async fn a_halted_sink_resumes_when_the_key_file_changes_or_after_the_recheck() {
    use crate::sinks::Sink;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odoo.key");
    std::fs::write(&path, "old-key\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut sink = super::OdooSink::new("odoo", &sink_settings(&path));
    // As a delivery does: the key file looked at, then refused by Odoo.
    let _ = sink.session().await;

    // Unchanged: it waits for the recheck.
    let start = tokio::time::Instant::now();
    sink.resumed().await;
    assert!(
        start.elapsed() >= super::HALT_RECHECK,
        "{:?}",
        start.elapsed()
    );

    // Changed (even before the halt began): within a poll.
    std::fs::write(&path, "new-key-longer\n").unwrap();
    let start = tokio::time::Instant::now();
    sink.resumed().await;
    assert!(
        start.elapsed() <= std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_sink_without_a_usable_key_halts_every_event_with_the_file_named() {
    use crate::sinks::Sink;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.key");
    let mut sink = super::OdooSink::new("odoo", &sink_settings(&path));
    let e = receipt(1);
    let out = sink.deliver(std::slice::from_ref(&e)).await;
    match &out[..] {
        [Outcome::Halt { reason }] => {
            assert!(reason.contains("missing.key"), "{reason}");
            assert!(reason.contains("edgebot"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_batch_is_cut_before_moving_a_lot_a_receipt_of_the_same_batch_brings() {
    let r = receipt(1);
    let lot_a = gtin_line("5901234123457", "1").with_lot(Lot::new("LOT-A").unwrap());
    let lot_x = gtin_line("5901234123457", "1").with_lot(Lot::new("LOT-X").unwrap());
    let move_x = Event::transfer(
        header(2),
        loc("WH/Stock"),
        loc("WH/Stock/Shelf 1"),
        vec![lot_x],
    )
    .unwrap();
    let move_a = Event::transfer(
        header(3),
        loc("WH/Stock/Shelf 1"),
        loc("WH/Stock"),
        vec![lot_a.clone()],
    )
    .unwrap();
    let use_a = Event::consumption(header(4), loc("WH/Stock"), vec![lot_a]).unwrap();
    let batch = vec![r.clone(), move_x.clone(), move_a.clone(), use_a.clone()];
    assert_eq!(super::segment_end(&batch, 0), 2);
    assert_eq!(super::segment_end(&batch, 2), 4);
    let batch = vec![move_a, r, move_x];
    assert_eq!(super::segment_end(&batch, 0), 3);
}

// ------------------------------------------------------------------------------------------
// The HTTP client: bounded calls in flight, bounded time

/// A CA bundle for clients that never meet TLS here (plain-HTTP test servers).
fn any_ca(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["unused".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

fn session() -> Session {
    Session {
        auth: Auth::JsonRpc { uid: 6 },
        key: std::sync::Arc::from("0123456789abcdef0123456789abcdef01234567"),
        version: parse_version(
            &json!({"server_version": "17.0", "server_version_info": [17, 0, 0, "final", 0, ""]}),
        )
        .unwrap(),
    }
}

/// A plain-HTTP server answering every request (one per connection) with an empty JSON-RPC
/// result after `delay` — or never, with `None` — and counting the requests it holds at once.
async fn counting_server(
    delay: Option<std::time::Duration>,
) -> (
    String,
    std::sync::Arc<(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicUsize,
    )>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts: std::sync::Arc<(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicUsize,
    )> = std::sync::Arc::default();
    let shared = std::sync::Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counts = std::sync::Arc::clone(&shared);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // The whole request: headers, then Content-Length bytes.
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                let now = counts.0.fetch_add(1, SeqCst) + 1;
                counts.1.fetch_max(now, SeqCst);
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
                counts.0.fetch_sub(1, SeqCst);
                let body = r#"{"jsonrpc": "2.0", "id": 1, "result": []}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), counts)
}

#[tokio::test]
async fn calls_in_flight_never_exceed_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, counts) = counting_server(Some(std::time::Duration::from_millis(100))).await;
    let rpc = Rpc::new(
        &endpoint,
        "db",
        Some(&any_ca(dir.path())),
        std::time::Duration::from_secs(10),
        3,
    )
    .unwrap();
    let s = session();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (rpc, s) = (&rpc, &s);
            async move {
                rpc.call(s, &Call::new("stock.picking", "read").ids(vec![i]))
                    .await
            }
        })
        .collect();
    for answer in machine::join_all(calls).await {
        assert_eq!(answer.unwrap(), json!([]));
    }
    let most = counts.1.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 3, "at most 3 calls at once, and the bound is used");
    assert_eq!(rpc.calls(), 12);
}

#[tokio::test]
async fn a_call_without_an_answer_ends_at_the_timeout_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, _) = counting_server(None).await;
    let timeout = std::time::Duration::from_millis(300);
    let rpc = Rpc::new(&endpoint, "db", Some(&any_ca(dir.path())), timeout, 3).unwrap();
    let start = std::time::Instant::now();
    let e = rpc
        .call(
            &session(),
            &Call::new("stock.picking", "button_validate").ids(vec![7]),
        )
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= timeout && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    assert!(matches!(e, OdooError::NoAnswer { .. }), "{e:?}");
    assert_eq!(e.class(), Class::Retry { after: None });
    assert!(e.maybe_applied());
    let text = e.to_string();
    assert!(text.contains("stock.picking.button_validate"), "{text}");
    assert!(text.contains("no answer within 0.3 s"), "{text}");
    assert!(
        text.contains("checked again before anything is repeated"),
        "{text}"
    );
}
