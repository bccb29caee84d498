//! The data of a fresh database with `stock` and `product_expiry` installed, and the seeding
//! helpers of [`super::FakeOdoo`].

use serde_json::{Value, json};

use super::db::{Db, Row, now};
use super::{NewProduct, Tracking, Version};

fn row(pairs: &[(&str, Value)]) -> Row {
    let now = now();
    let mut r: Row = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    r.entry("create_date".into()).or_insert_with(|| json!(now));
    r.entry("write_date".into()).or_insert_with(|| json!(now));
    r
}

fn xmlid(db: &mut Db, full: &str, model: &str, res_id: i64) {
    let (module, name) = full.split_once('.').unwrap_or(("__import__", full));
    db.insert(
        "ir.model.data",
        row(&[
            ("module", json!(module)),
            ("name", json!(name)),
            ("model", json!(model)),
            ("res_id", json!(res_id)),
            ("noupdate", json!(true)),
        ]),
    );
}

/// Fill a fresh database.
pub(crate) fn seed(db: &mut Db, v: Version) {
    let company = db.insert("res.company", row(&[("name", json!("My Company"))]));
    xmlid(db, "base.main_company", "res.company", company);
    for name in ["My Company", "OdooBot", "Administrator", "Edge Bot"] {
        db.insert(
            "res.partner",
            row(&[
                ("name", json!(name)),
                ("active", json!(true)),
                ("company_id", json!(company)),
                ("is_company", json!(name == "My Company")),
            ]),
        );
    }
    for (login, name, partner, active) in [
        ("__system__", "OdooBot", 2, false),
        ("admin", "Administrator", 3, true),
        ("public", "Public user", 1, false),
        ("portaltemplate", "Portal User Template", 1, false),
        ("default", "Default User Template", 1, false),
        ("edgebot", "Edge Bot", 4, true),
    ] {
        db.insert(
            "res.users",
            row(&[
                ("login", json!(login)),
                ("name", json!(name)),
                ("partner_id", json!(partner)),
                ("company_id", json!(company)),
                ("active", json!(active)),
            ]),
        );
    }
    let units = db.insert(
        "uom.uom",
        row(&[
            ("name", json!("Units")),
            ("factor", json!(1.0)),
            ("rounding", json!(0.01)),
            ("active", json!(true)),
        ]),
    );
    xmlid(db, "uom.product_uom_unit", "uom.uom", units);
    let dozens = db.insert(
        "uom.uom",
        row(&[
            ("name", json!("Dozens")),
            ("factor", json!(1.0 / 12.0)),
            ("rounding", json!(0.01)),
            ("active", json!(true)),
        ]),
    );
    xmlid(db, "uom.product_uom_dozen", "uom.uom", dozens);

    let loc = |db: &mut Db, name: &str, parent: Option<i64>, usage: &str, xml: &str| {
        let id = insert_location(db, v, name, parent, usage);
        if !xml.is_empty() {
            xmlid(db, xml, "stock.location", id);
        }
        id
    };
    let physical = loc(
        db,
        "Physical Locations",
        None,
        "view",
        "stock.stock_location_locations",
    );
    let partners = loc(
        db,
        "Partners",
        None,
        "view",
        "stock.stock_location_locations_partner",
    );
    let virtual_ = loc(
        db,
        "Virtual Locations",
        None,
        "view",
        "stock.stock_location_locations_virtual",
    );
    let vendors = loc(
        db,
        "Vendors",
        Some(partners),
        "supplier",
        "stock.stock_location_suppliers",
    );
    let customers = loc(
        db,
        "Customers",
        Some(partners),
        "customer",
        "stock.stock_location_customers",
    );
    let wh = loc(
        db,
        "WH",
        Some(physical),
        "view",
        "stock.warehouse0_view_location",
    );
    let stock = loc(
        db,
        "Stock",
        Some(wh),
        "internal",
        "stock.stock_location_stock",
    );
    loc(db, "Shelf 1", Some(stock), "internal", "");
    loc(db, "Shelf 2", Some(stock), "internal", "");
    loc(
        db,
        "Production",
        Some(virtual_),
        "production",
        "stock.location_production",
    );
    loc(db, "Consumption", Some(virtual_), "production", "");
    loc(
        db,
        "Inventory adjustment",
        Some(virtual_),
        "inventory",
        "stock.location_inventory",
    );
    let scrap = loc(
        db,
        "Scrap",
        Some(virtual_),
        "inventory",
        "stock.stock_location_scrapped",
    );
    if v.has_scrap_location_flag() {
        db.table("stock.location")
            .rows
            .get_mut(&scrap)
            .map(|r| std::sync::Arc::make_mut(r).insert("scrap_location".into(), json!(true)));
    }
    for (id, barcode) in [(stock, "WH-STOCK")] {
        if let Some(r) = db.table("stock.location").rows.get_mut(&id) {
            std::sync::Arc::make_mut(r).insert("barcode".into(), json!(barcode));
        }
    }

    let warehouse = db.insert(
        "stock.warehouse",
        row(&[
            ("name", json!("My Company")),
            ("code", json!("WH")),
            ("lot_stock_id", json!(stock)),
            ("company_id", json!(company)),
            ("active", json!(true)),
        ]),
    );
    xmlid(db, "stock.warehouse0", "stock.warehouse", warehouse);
    let receipt_src = if v >= Version::V18 {
        json!(vendors)
    } else {
        Value::Null
    };
    let delivery_dest = if v >= Version::V18 {
        json!(customers)
    } else {
        Value::Null
    };
    #[allow(clippy::type_complexity)]
    let types: Vec<(&str, &str, &str, i64, Value, Value, bool, bool, bool, &str)> = vec![
        (
            "Receipts",
            "incoming",
            "IN",
            1,
            receipt_src,
            json!(stock),
            true,
            false,
            true,
            "stock.picking_type_in",
        ),
        (
            "Delivery Orders",
            "outgoing",
            "OUT",
            3,
            json!(stock),
            delivery_dest,
            false,
            true,
            true,
            "stock.picking_type_out",
        ),
        (
            "Pick",
            "internal",
            "PICK",
            4,
            json!(stock),
            json!(stock),
            false,
            true,
            false,
            "",
        ),
        (
            "Pack",
            "internal",
            "PACK",
            5,
            json!(stock),
            json!(stock),
            false,
            true,
            false,
            "",
        ),
        (
            "Internal Transfers",
            "internal",
            "INT",
            2,
            json!(stock),
            json!(stock),
            false,
            true,
            true,
            "stock.picking_type_internal",
        ),
    ];
    for (name, code, prefix, sequence, src, dest, create_lots, existing_lots, active, xml) in types
    {
        let id = db.insert(
            "stock.picking.type",
            row(&[
                ("name", json!(name)),
                ("code", json!(code)),
                ("sequence_code", json!(prefix)),
                ("sequence", json!(sequence)),
                ("warehouse_id", json!(warehouse)),
                ("default_location_src_id", src),
                ("default_location_dest_id", dest),
                ("use_create_lots", json!(create_lots)),
                ("use_existing_lots", json!(existing_lots)),
                ("create_backorder", json!("ask")),
                ("reservation_method", json!("at_confirm")),
                ("active", json!(active)),
                ("company_id", json!(company)),
            ]),
        );
        if !xml.is_empty() {
            xmlid(db, xml, "stock.picking.type", id);
        }
    }
    if v == Version::V16 {
        db.insert(
            "stock.picking.type",
            row(&[
                ("name", json!("Returns")),
                ("code", json!("incoming")),
                ("sequence_code", json!("RET")),
                ("sequence", json!(6)),
                ("warehouse_id", json!(warehouse)),
                ("default_location_src_id", Value::Null),
                ("default_location_dest_id", json!(stock)),
                ("use_create_lots", json!(false)),
                ("use_existing_lots", json!(true)),
                ("create_backorder", json!("ask")),
                ("reservation_method", json!("at_confirm")),
                ("active", json!(true)),
                ("company_id", json!(company)),
            ]),
        );
    }
    for (name, gs1) in [
        ("Default Nomenclature", false),
        ("Default GS1 Nomenclature", true),
    ] {
        db.insert(
            "barcode.nomenclature",
            row(&[("name", json!(name)), ("is_gs1_nomenclature", json!(gs1))]),
        );
    }

    let products = [
        ("Gauze", Some("5901234123457"), None, Tracking::Lot, true),
        (
            "Syringe",
            Some("09506000134352"),
            None,
            Tracking::Lot,
            false,
        ),
        (
            "Catheter",
            Some("012345678905"),
            None,
            Tracking::Serial,
            false,
        ),
        ("Gloves", None, Some("GLV-100"), Tracking::None, false),
        ("Mask", Some("96385074"), None, Tracking::None, false),
    ];
    for (name, barcode, code, tracking, expiry) in products {
        add_product(
            db,
            v,
            &NewProduct {
                name: name.to_owned(),
                barcode: barcode.map(str::to_owned),
                default_code: code.map(str::to_owned),
                tracking,
                use_expiration_date: expiry,
                uom: None,
            },
        );
    }
}

/// The full name of a location as Odoo computes it: the parent's full name and the name,
/// except for view locations and locations without a parent.
pub(crate) fn complete_name(db: &Db, name: &str, parent: Option<i64>, usage: &str) -> String {
    match parent {
        Some(p) if usage != "view" => {
            let parent_name = db
                .row("stock.location", p)
                .and_then(|r| r.get("complete_name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{parent_name}/{name}")
        }
        _ => name.to_owned(),
    }
}

fn insert_location(db: &mut Db, v: Version, name: &str, parent: Option<i64>, usage: &str) -> i64 {
    let full = complete_name(db, name, parent, usage);
    let mut r = row(&[
        ("name", json!(name)),
        ("complete_name", json!(full)),
        ("location_id", parent.map_or(Value::Null, |p| json!(p))),
        ("usage", json!(usage)),
        ("active", json!(true)),
        (
            "company_id",
            if usage == "view" && parent.is_none() {
                Value::Null
            } else {
                json!(1)
            },
        ),
    ]);
    if v.has_scrap_location_flag() {
        r.insert("scrap_location".into(), json!(false));
    }
    db.insert("stock.location", r)
}

pub(crate) fn location_by_name(db: &Db, complete_name: &str) -> Option<i64> {
    db.tables.get("stock.location").and_then(|t| {
        t.rows
            .iter()
            .find(|(_, r)| r.get("complete_name").and_then(Value::as_str) == Some(complete_name))
            .map(|(id, _)| *id)
    })
}

/// Add a location by its full name; missing parents become view locations.
pub(crate) fn add_location(db: &mut Db, v: Version, complete: &str, usage: &str) -> i64 {
    if let Some(id) = location_by_name(db, complete) {
        return id;
    }
    let (parent, name) = match complete.rsplit_once('/') {
        Some((p, n)) => (Some(add_location(db, v, p, "view")), n),
        None => (None, complete),
    };
    insert_location(db, v, name, parent, usage)
}

pub(crate) fn add_product(db: &mut Db, v: Version, p: &NewProduct) -> i64 {
    let uom = p.uom.unwrap_or(1);
    let mut r = row(&[
        ("name", json!(p.name)),
        (
            "barcode",
            p.barcode.as_ref().map_or(Value::Null, |b| json!(b)),
        ),
        (
            "default_code",
            p.default_code.as_ref().map_or(Value::Null, |b| json!(b)),
        ),
        ("tracking", json!(p.tracking.as_str())),
        ("uom_id", json!(uom)),
        ("use_expiration_date", json!(p.use_expiration_date)),
        (
            "expiration_time",
            json!(if p.use_expiration_date { 730 } else { 0 }),
        ),
        ("active", json!(true)),
        ("list_price", json!(1.0)),
        ("standard_price", json!(0.0)),
    ]);
    if v <= Version::V18 {
        r.insert("uom_po_id".into(), json!(uom));
    }
    if v.has_is_storable() {
        r.insert("type".into(), json!("consu"));
        r.insert("is_storable".into(), json!(true));
    } else {
        r.insert("detailed_type".into(), json!("product"));
    }
    db.insert("product.product", r)
}

/// Put `qty` on hand (a quant), of a lot by name created if missing.
pub(crate) fn add_stock(
    db: &mut Db,
    _v: Version,
    product: i64,
    location: i64,
    lot: Option<(&str, Option<&str>)>,
    qty: f64,
) {
    let lot_id = lot.map(|(name, expiry)| {
        let existing = db.tables.get("stock.lot").and_then(|t| {
            t.rows
                .iter()
                .find(|(_, r)| {
                    r.get("name").and_then(Value::as_str) == Some(name)
                        && r.get("product_id").and_then(Value::as_i64) == Some(product)
                })
                .map(|(id, _)| *id)
        });
        existing.unwrap_or_else(|| {
            db.insert(
                "stock.lot",
                row(&[
                    ("name", json!(name)),
                    ("product_id", json!(product)),
                    ("company_id", json!(1)),
                    ("expiration_date", expiry.map_or(Value::Null, |e| json!(e))),
                    ("removal_date", expiry.map_or(Value::Null, |e| json!(e))),
                ]),
            )
        })
    });
    let now = now();
    db.insert(
        "stock.quant",
        row(&[
            ("product_id", json!(product)),
            ("location_id", json!(location)),
            ("lot_id", lot_id.map_or(Value::Null, |l| json!(l))),
            ("quantity", json!(qty)),
            ("reserved_quantity", json!(0.0)),
            ("inventory_quantity", json!(0.0)),
            ("inventory_quantity_set", json!(false)),
            ("in_date", json!(now)),
            ("company_id", json!(1)),
        ]),
    );
}
