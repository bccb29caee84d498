//! Events → Odoo operations, without I/O (odoo-api.md §2, §3, §4, §5.3).
//!
//! - What differs between versions is in [`Fields`] (the move's `name`, `qty_done` vs
//!   `quantity`, `picked`).
//! - An event becomes a [`Plan`]: a picking (receipt → incoming, transfer → internal,
//!   consumption → internal to the consumption location) whose moves are the event's lines
//!   grouped by product and unit (Odoo merges such moves on confirmation anyway), each line a
//!   move line with its lot; or, for consumption in scrap mode, one scrap per line.
//! - External ids: module [`MODULE`], the picking `evt_<uuid, - → _>`, its moves `…_m1`,
//!   `…_m2`, scraps `…_s1` …; the picking's and scrap's `origin` is the event id.
//! - [`reconcile`] compares the move lines Odoo has with the lines the event wants and returns
//!   only the changes (so repeating it after a crash changes nothing more).
//! - [`wizard_step`] says what to do with what `button_validate` returned.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tallyman_protocol::Date;
use tallyman_protocol::event::{Event, EventId, Item, Kind};

/// The module of every external id the sink creates.
pub const MODULE: &str = "tallyman";

/// What the sink writes differently per version (odoo-api.md §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// `stock.move.name` is required (16–18) — and refused on 19.
    pub move_name: bool,
    /// The move line's done quantity: `qty_done` (16) or `quantity` (17+).
    pub line_qty: &'static str,
    /// Moves must be marked `picked` (17+).
    pub picked: bool,
}

impl Fields {
    /// The fields of a major version (a `saas~N` build is read with N + 1's fields, the next
    /// release it leads to).
    pub fn of(major: u32, saas: bool) -> Fields {
        let major = if saas { major.saturating_add(1) } else { major };
        Fields {
            move_name: major <= 18,
            line_qty: if major <= 16 { "qty_done" } else { "quantity" },
            picked: major >= 17,
        }
    }
}

/// The external id name of an event's picking: `evt_` and the id with `_` for `-`.
pub fn event_xmlid(id: &EventId) -> String {
    format!("evt_{}", id.to_string().replace('-', "_"))
}

/// `module.name`.
pub fn full_xmlid(name: &str) -> String {
    format!("{MODULE}.{name}")
}

/// How a line's item is looked up in Odoo.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    /// A GTIN-14: `product.product.barcode` in its GTIN-14/13/12/8 forms.
    Gtin(String),
    /// An internal code: `product.product.default_code`.
    Code(String),
    /// A HIBC item: `barcode` = labeler code + product code + unit of measure digit, or
    /// labeler code + product code.
    Hibc {
        lic: String,
        pcn: String,
        unit: Option<u8>,
    },
}

impl ItemKey {
    pub fn of(item: &Item) -> ItemKey {
        match item {
            Item::Gtin(g) => ItemKey::Gtin(g.as_str().to_owned()),
            Item::Code(c) => ItemKey::Code(c.as_str().to_owned()),
            Item::Hibc(h) => ItemKey::Hibc {
                lic: h.lic.as_str().to_owned(),
                pcn: h.pcn.as_str().to_owned(),
                unit: h.unit.map(|u| u.get()),
            },
        }
    }

    /// The `barcode` values that mean this item (empty for an internal code).
    pub fn barcodes(&self) -> Vec<String> {
        match self {
            ItemKey::Gtin(g) => gtin_candidates(g),
            ItemKey::Code(_) => Vec::new(),
            ItemKey::Hibc { lic, pcn, unit } => {
                let mut v = Vec::with_capacity(2);
                if let Some(u) = unit {
                    v.push(format!("{lic}{pcn}{u}"));
                }
                v.push(format!("{lic}{pcn}"));
                v
            }
        }
    }

    /// The `default_code` that means this item, if it is an internal code.
    pub fn code(&self) -> Option<&str> {
        match self {
            ItemKey::Code(c) => Some(c),
            _ => None,
        }
    }

    /// Whether a product with this barcode and internal code is this item.
    pub fn matches(&self, barcode: Option<&str>, default_code: Option<&str>) -> bool {
        match self {
            ItemKey::Code(c) => default_code == Some(c.as_str()),
            _ => barcode.is_some_and(|b| self.barcodes().iter().any(|c| c == b)),
        }
    }
}

impl std::fmt::Display for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemKey::Gtin(g) => write!(f, "GTIN {g} (barcode {})", gtin_candidates(g).join(" or ")),
            ItemKey::Code(c) => write!(f, "internal reference {c}"),
            ItemKey::Hibc { .. } => {
                write!(f, "HIBC item (barcode {})", self.barcodes().join(" or "))
            }
        }
    }
}

/// A GTIN-14 and the shorter GTINs it pads: GTIN-13 (one leading zero), GTIN-12 (two),
/// GTIN-8 (six) — the forms a product's `barcode` holds as printed (odoo-api.md §5.3).
pub fn gtin_candidates(gtin14: &str) -> Vec<String> {
    let mut v = vec![gtin14.to_owned()];
    for zeros in [1usize, 2, 6] {
        if gtin14.len() == 14 && gtin14.bytes().take(zeros).all(|b| b == b'0') {
            if let Some(rest) = gtin14.get(zeros..) {
                v.push(rest.to_owned());
            }
        }
    }
    v
}

/// A decimal quantity in millionths as JSON (Odoo's floats).
pub fn qty_value(millionths: u64) -> Value {
    let f = millionths as f64 / 1_000_000.0;
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A quantity in millionths as decimal text, for `load` (`2500000` → `"2.5"`).
pub fn qty_text(millionths: u64) -> String {
    let int = millionths / 1_000_000;
    let frac = millionths % 1_000_000;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Odoo's float quantity in millionths (rounded; negative or not a number → `None`).
pub fn millionths_of(v: &Value) -> Option<u64> {
    let f = v.as_f64()?;
    if !f.is_finite() || !(0.0..=1e15).contains(&f) {
        return None;
    }
    Some((f * 1_000_000.0).round() as u64)
}

/// An expiry date as Odoo's datetime: noon UTC, so that the date shows the same in every
/// time zone from UTC−11 to UTC+11.
pub fn expiry_datetime(d: Date) -> String {
    format!("{d} 12:00:00")
}

/// How a product is tracked in Odoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    None,
    Lot,
    Serial,
}

/// A product as the sink needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub barcode: Option<String>,
    pub default_code: Option<String>,
    pub tracking: Tracking,
    pub uom: Option<i64>,
    pub use_expiry: bool,
}

/// What a product lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductMatch {
    One(Product),
    None,
    /// Several products: their names.
    Many(Vec<String>),
}

/// A stock location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: i64,
    pub name: String,
    pub usage: String,
}

/// An operation type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickingType {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub default_src: Option<(i64, String)>,
    pub default_dest: Option<(i64, String)>,
}

/// `anchor` is `parent` or a location inside it (`WH/Stock/Shelf 1` is inside `WH/Stock`).
fn within(anchor: &str, parent: &str) -> bool {
    anchor == parent
        || (anchor.starts_with(parent)
            && anchor
                .get(parent.len()..)
                .is_some_and(|r| r.starts_with('/')))
}

/// The operation type of `code` for a movement at `anchor` (the destination of a receipt, the
/// source otherwise): the one whose default location (destination for `incoming`, source
/// otherwise) is the anchor or holds it most closely — the anchor's warehouse — else the
/// first of that code.
pub fn choose_type<'a>(
    types: &'a [PickingType],
    code: &str,
    anchor: &str,
) -> Option<&'a PickingType> {
    let of_code = || types.iter().filter(|t| t.code == code);
    let by_location = of_code()
        .filter_map(|t| {
            let default = if code == "incoming" {
                &t.default_dest
            } else {
                &t.default_src
            };
            let (_, name) = default.as_ref()?;
            within(anchor, name).then_some((name.len(), t))
        })
        .max_by_key(|(len, t)| (*len, -t.id))
        .map(|(_, t)| t);
    by_location.or_else(|| of_code().next())
}

/// Everything the lookups found for a batch, keyed as the planner asks.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub products: HashMap<ItemKey, ProductMatch>,
    pub locations: HashMap<String, Location>,
    pub uoms: HashMap<String, i64>,
    /// (product id, lot name) → lot id.
    pub lots: HashMap<(i64, String), i64>,
    pub types: Vec<PickingType>,
    /// The vendors location, for receipts whose operation type has no default source.
    pub supplier: Option<i64>,
}

/// How consumption lands in Odoo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumption {
    /// A validated picking to this location (full name).
    Picking { location: Option<String> },
    /// One scrap per line.
    Scrap,
}

/// A lot on a move line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LotPlan {
    /// Untracked product.
    None,
    /// A receipt: Odoo creates the lot or reuses the one of that name (`lot_name`).
    Name(String),
    /// An existing lot (transfers, consumption).
    Id(i64),
}

/// One move line the event wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePlan {
    pub lot: LotPlan,
    pub qty: u64,
    pub expiry: Option<Date>,
    pub location: i64,
    pub location_dest: i64,
}

/// One move: a product in one unit, the sum of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovePlan {
    pub xmlid: String,
    pub product: i64,
    pub product_name: String,
    pub uom: i64,
    pub qty: u64,
    pub lines: Vec<LinePlan>,
}

/// The picking an event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickingPlan {
    pub event: EventId,
    pub kind: Kind,
    pub xmlid: String,
    /// The event id: the picking's Source Document.
    pub origin: String,
    /// The event's reference (PO, ASN), kept in the picking's notes.
    pub reference: Option<String>,
    pub picking_type: i64,
    pub location: i64,
    pub location_dest: i64,
    pub moves: Vec<MovePlan>,
}

/// One scrap of a consumption in scrap mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapPlan {
    pub xmlid: String,
    pub product: i64,
    pub uom: i64,
    pub qty: u64,
    pub lot: Option<i64>,
    pub location: i64,
}

/// The scraps an event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapsPlan {
    pub event: EventId,
    pub origin: String,
    pub scraps: Vec<ScrapPlan>,
}

/// What an event becomes in Odoo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Picking(PickingPlan),
    Scraps(ScrapsPlan),
    /// A raw scan: nothing to record in Odoo.
    Nothing,
}

/// Why an event cannot be mapped. Most are the event's (or Odoo's master data's) fault and
/// dead-letter the event; [`Problem::is_setup`] ones are the Odoo set-up's and are retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("no product in Odoo has the {0}")]
    UnknownProduct(ItemKey),
    #[error("several products in Odoo have the {item}: {products}")]
    AmbiguousProduct { item: ItemKey, products: String },
    #[error(
        "no location \"{0}\" in Odoo (locations are matched by their full name, such as WH/Stock/Shelf 1)"
    )]
    UnknownLocation(String),
    #[error("no unit of measure \"{0}\" in Odoo")]
    UnknownUom(String),
    #[error(
        "{product} is tracked by {tracking} in Odoo, but line {line} has no lot or serial number"
    )]
    NoLot {
        product: String,
        tracking: &'static str,
        line: usize,
    },
    #[error("no lot or serial number \"{lot}\" of {product} in Odoo")]
    UnknownLot { lot: String, product: String },
    #[error(
        "no active operation type of type {code} in Odoo for {location} (internal transfers \
         need the Inventory setting \"Storage Locations\")"
    )]
    NoPickingType {
        code: &'static str,
        location: String,
    },
    #[error("no vendor location (usage supplier) in Odoo for receipts")]
    NoSupplier,
    #[error(
        "consumption events need `consumption_location` in the odoo sink (or consumption_mode = \"scrap\")"
    )]
    NoConsumptionLocation,
}

impl Problem {
    /// A problem of the Odoo set-up or the sink's configuration rather than of the event.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            Problem::NoPickingType { .. } | Problem::NoSupplier | Problem::NoConsumptionLocation
        )
    }
}

fn location<'a>(r: &'a Resolved, name: &str) -> Result<&'a Location, Problem> {
    r.locations
        .get(name)
        .ok_or_else(|| Problem::UnknownLocation(name.to_owned()))
}

fn product<'a>(r: &'a Resolved, item: &Item) -> Result<&'a Product, Problem> {
    let key = ItemKey::of(item);
    match r.products.get(&key) {
        Some(ProductMatch::One(p)) => Ok(p),
        Some(ProductMatch::Many(names)) => Err(Problem::AmbiguousProduct {
            item: key,
            products: names.join(", "),
        }),
        Some(ProductMatch::None) | None => Err(Problem::UnknownProduct(key)),
    }
}

/// The event's picking or scraps, from what the lookups found.
pub fn plan(event: &Event, r: &Resolved, consumption: &Consumption) -> Result<Plan, Problem> {
    let kind = event.kind();
    let origin = event.id().to_string();
    let xmlid = event_xmlid(&event.id());
    let need = |loc: Option<&tallyman_protocol::event::Location>| -> Result<&Location, Problem> {
        let name = loc.map(|l| l.as_str()).unwrap_or_default();
        location(r, name)
    };
    let (code, src, dest, receipt) = match kind {
        Kind::Scan => return Ok(Plan::Nothing),
        Kind::Receipt => {
            let to = need(event.to_location())?;
            let t = choose_type(&r.types, "incoming", &to.name).ok_or_else(|| {
                Problem::NoPickingType {
                    code: "incoming",
                    location: to.name.clone(),
                }
            })?;
            let src = match &t.default_src {
                Some((id, _)) => *id,
                None => r.supplier.ok_or(Problem::NoSupplier)?,
            };
            (t.id, src, to.id, true)
        }
        Kind::Transfer => {
            let from = need(event.from_location())?;
            let to = need(event.to_location())?;
            let t = choose_type(&r.types, "internal", &from.name).ok_or_else(|| {
                Problem::NoPickingType {
                    code: "internal",
                    location: from.name.clone(),
                }
            })?;
            (t.id, from.id, to.id, false)
        }
        Kind::Consumption => {
            let from = need(event.from_location())?;
            match consumption {
                Consumption::Scrap => return scraps(event, r, from, origin, &xmlid),
                Consumption::Picking { location: dest } => {
                    let dest = dest.as_deref().ok_or(Problem::NoConsumptionLocation)?;
                    let dest = location(r, dest)?;
                    let t = choose_type(&r.types, "internal", &from.name)
                        .or_else(|| choose_type(&r.types, "outgoing", &from.name))
                        .ok_or_else(|| Problem::NoPickingType {
                            code: "internal",
                            location: from.name.clone(),
                        })?;
                    (t.id, from.id, dest.id, false)
                }
            }
        }
    };
    let mut moves: Vec<MovePlan> = Vec::new();
    for (n, line) in event.lines().iter().enumerate() {
        let p = product(r, &line.item)?;
        let uom = *r
            .uoms
            .get(line.uom.as_str())
            .ok_or_else(|| Problem::UnknownUom(line.uom.to_string()))?;
        let lot = lot_of(r, p, line, n + 1, receipt)?;
        let expiry = if receipt && p.use_expiry && lot != LotPlan::None {
            line.expiry
        } else {
            None
        };
        let qty = line.qty.millionths();
        let line_plan = LinePlan {
            lot,
            qty,
            expiry,
            location: src,
            location_dest: dest,
        };
        match moves.iter_mut().find(|m| m.product == p.id && m.uom == uom) {
            Some(m) => {
                m.qty = m.qty.saturating_add(qty);
                m.lines.push(line_plan);
            }
            None => {
                let xmlid = format!("{xmlid}_m{}", moves.len() + 1);
                moves.push(MovePlan {
                    xmlid,
                    product: p.id,
                    product_name: p.name.clone(),
                    uom,
                    qty,
                    lines: vec![line_plan],
                });
            }
        }
    }
    Ok(Plan::Picking(PickingPlan {
        event: event.id(),
        kind,
        xmlid,
        origin,
        reference: event.reference().map(|r| r.to_string()),
        picking_type: code,
        location: src,
        location_dest: dest,
        moves,
    }))
}

/// The lot a line names, for its product's tracking: the serial for serial-tracked products
/// (else the lot), the lot for lot-tracked ones (else the serial), nothing for untracked ones.
fn lot_of(
    r: &Resolved,
    p: &Product,
    line: &tallyman_protocol::event::Line,
    n: usize,
    receipt: bool,
) -> Result<LotPlan, Problem> {
    let lot = line.lot.as_ref().map(|l| l.as_str());
    let serial = line.serial.as_ref().map(|s| s.as_str());
    let (name, tracking) = match p.tracking {
        Tracking::None => return Ok(LotPlan::None),
        Tracking::Lot => (lot.or(serial), "lot"),
        Tracking::Serial => (serial.or(lot), "serial number"),
    };
    let name = name.ok_or_else(|| Problem::NoLot {
        product: p.name.clone(),
        tracking,
        line: n,
    })?;
    if receipt {
        return Ok(LotPlan::Name(name.to_owned()));
    }
    r.lots
        .get(&(p.id, name.to_owned()))
        .map(|id| LotPlan::Id(*id))
        .ok_or_else(|| Problem::UnknownLot {
            lot: name.to_owned(),
            product: p.name.clone(),
        })
}

fn scraps(
    event: &Event,
    r: &Resolved,
    from: &Location,
    origin: String,
    xmlid: &str,
) -> Result<Plan, Problem> {
    let mut scraps = Vec::with_capacity(event.lines().len());
    for (n, line) in event.lines().iter().enumerate() {
        let p = product(r, &line.item)?;
        let uom = *r
            .uoms
            .get(line.uom.as_str())
            .ok_or_else(|| Problem::UnknownUom(line.uom.to_string()))?;
        let lot = match lot_of(r, p, line, n + 1, false)? {
            LotPlan::Id(id) => Some(id),
            LotPlan::None | LotPlan::Name(_) => None,
        };
        scraps.push(ScrapPlan {
            xmlid: format!("{xmlid}_s{}", n + 1),
            product: p.id,
            uom,
            qty: line.qty.millionths(),
            lot,
            location: from.id,
        });
    }
    Ok(Plan::Scraps(ScrapsPlan {
        event: event.id(),
        origin,
        scraps,
    }))
}

/// The columns and rows of one `stock.picking.load` creating `plans` with their moves: one
/// row per move, the picking's columns filled on its first row only (odoo-api.md §4.3).
pub fn picking_load(
    plans: &[&PickingPlan],
    fields: Fields,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut columns = vec![
        "id",
        "picking_type_id/.id",
        "location_id/.id",
        "location_dest_id/.id",
        "origin",
        "note",
        "move_ids/id",
        "move_ids/product_id/.id",
        "move_ids/product_uom_qty",
        "move_ids/product_uom/.id",
        "move_ids/location_id/.id",
        "move_ids/location_dest_id/.id",
    ];
    if fields.move_name {
        columns.push("move_ids/name");
    }
    let mut rows = Vec::new();
    for p in plans {
        for (i, m) in p.moves.iter().enumerate() {
            let mut row = if i == 0 {
                vec![
                    full_xmlid(&p.xmlid),
                    p.picking_type.to_string(),
                    p.location.to_string(),
                    p.location_dest.to_string(),
                    p.origin.clone(),
                    p.reference
                        .as_ref()
                        .map(|r| format!("Reference: {r}"))
                        .unwrap_or_default(),
                ]
            } else {
                vec![String::new(); 6]
            };
            row.extend([
                full_xmlid(&m.xmlid),
                m.product.to_string(),
                qty_text(m.qty),
                m.uom.to_string(),
                p.location.to_string(),
                p.location_dest.to_string(),
            ]);
            if fields.move_name {
                row.push(m.product_name.clone());
            }
            rows.push(row);
        }
    }
    (columns, rows)
}

/// The columns and rows of one `stock.scrap.load` creating `scraps` (each with `origin`).
pub fn scrap_load(scraps: &[(&str, &ScrapPlan)]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let columns = vec![
        "id",
        "product_id/.id",
        "product_uom_id/.id",
        "scrap_qty",
        "lot_id/.id",
        "location_id/.id",
        "origin",
    ];
    let rows = scraps
        .iter()
        .map(|(origin, s)| {
            vec![
                full_xmlid(&s.xmlid),
                s.product.to_string(),
                s.uom.to_string(),
                qty_text(s.qty),
                s.lot.map(|l| l.to_string()).unwrap_or_default(),
                s.location.to_string(),
                (*origin).to_owned(),
            ]
        })
        .collect();
    (columns, rows)
}

/// A move line as Odoo has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingLine {
    pub id: i64,
    pub move_id: i64,
    pub lot_id: Option<i64>,
    pub lot_name: Option<String>,
    pub qty: u64,
    pub location: i64,
    pub location_dest: i64,
}

/// A move of a picking as Odoo has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingMove {
    pub id: i64,
    pub picking: i64,
    pub product: i64,
    pub uom: Option<i64>,
    pub state: String,
    pub picked: bool,
}

/// What must change in Odoo's move lines for a picking to hold exactly the event's lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChanges {
    /// Existing lines to rewrite: the same values for every id of an entry.
    pub writes: Vec<(Vec<i64>, Value)>,
    /// New lines (`stock.move.line.create` values).
    pub creates: Vec<Value>,
    /// Lines that must go.
    pub unlinks: Vec<i64>,
}

impl LineChanges {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.creates.is_empty() && self.unlinks.is_empty()
    }

    /// Another picking's changes after these.
    pub fn extend(&mut self, other: LineChanges) {
        for (ids, vals) in other.writes {
            self.add_write(ids, vals);
        }
        self.creates.extend(other.creates);
        self.unlinks.extend(other.unlinks);
    }

    fn add_write(&mut self, ids: Vec<i64>, vals: Value) {
        match self.writes.iter_mut().find(|(_, v)| *v == vals) {
            Some((existing, _)) => existing.extend(ids),
            None => self.writes.push((ids, vals)),
        }
    }
}

/// One `load` import: its columns and its rows of text cells.
pub type Import = (Vec<String>, Vec<Vec<String>>);

impl LineChanges {
    /// Rewrites and creations as `stock.move.line.load` imports, when there are several: one
    /// import per set of columns (an empty cell would clear a field, so rows only share an
    /// import when they set the same fields). A rewrite names its line by database id
    /// (`.id`); relational values are database ids (`field/.id`); every value is text, as in
    /// a CSV import. `None` for a single change (a plain `write` or `create` says it best).
    pub fn as_loads(&self) -> Option<Vec<Import>> {
        let rows: Vec<(Option<i64>, &Map<String, Value>)> = self
            .writes
            .iter()
            .flat_map(|(ids, vals)| ids.iter().map(move |id| (Some(*id), vals)))
            .chain(self.creates.iter().map(|vals| (None, vals)))
            .filter_map(|(id, vals)| vals.as_object().map(|v| (id, v)))
            .collect();
        if rows.len() < 2 {
            return None;
        }
        let mut loads: Vec<Import> = Vec::new();
        for (id, vals) in rows {
            let mut columns: Vec<String> = Vec::with_capacity(vals.len() + 1);
            let mut cells: Vec<String> = Vec::with_capacity(vals.len() + 1);
            if let Some(id) = id {
                columns.push(".id".into());
                cells.push(id.to_string());
            }
            for (field, value) in vals {
                let relational = field.ends_with("_id");
                columns.push(if relational {
                    format!("{field}/.id")
                } else {
                    field.clone()
                });
                cells.push(match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => i.to_string(),
                        None => millionths_of(value).map(qty_text).unwrap_or_default(),
                    },
                    Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
                    Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
                });
            }
            match loads.iter_mut().find(|(c, _)| *c == columns) {
                Some((_, data)) => data.push(cells),
                None => loads.push((columns, vec![cells])),
            }
        }
        Some(loads)
    }
}

fn line_matches(want: &LinePlan, have: &ExistingLine) -> bool {
    let lot_ok = match &want.lot {
        LotPlan::None => true,
        LotPlan::Name(n) => have.lot_name.as_deref() == Some(n.as_str()),
        LotPlan::Id(id) => have.lot_id == Some(*id),
    };
    lot_ok
        && have.qty == want.qty
        && have.location == want.location
        && have.location_dest == want.location_dest
}

fn line_vals(want: &LinePlan, fields: Fields) -> Map<String, Value> {
    let mut vals = Map::new();
    match &want.lot {
        LotPlan::None => {}
        LotPlan::Name(n) => {
            vals.insert("lot_name".into(), json!(n));
        }
        LotPlan::Id(id) => {
            vals.insert("lot_id".into(), json!(id));
        }
    }
    vals.insert(fields.line_qty.into(), qty_value(want.qty));
    vals.insert("location_id".into(), json!(want.location));
    vals.insert("location_dest_id".into(), json!(want.location_dest));
    if let Some(d) = want.expiry {
        vals.insert("expiration_date".into(), json!(expiry_datetime(d)));
    }
    vals
}

/// The changes that make the lines of `moves` (each planned move with the id of Odoo's move)
/// exactly the planned lines: lines that already match are left alone, the others are
/// rewritten, missing ones created, surplus ones (a reservation of other lots or places)
/// removed. Repeating it on its own result gives no change.
pub fn reconcile(
    picking: i64,
    moves: &[(i64, &MovePlan)],
    existing: &[ExistingLine],
    fields: Fields,
) -> LineChanges {
    let mut changes = LineChanges::default();
    for (move_id, plan) in moves {
        let mut have: Vec<&ExistingLine> =
            existing.iter().filter(|l| l.move_id == *move_id).collect();
        have.sort_by_key(|l| l.id);
        let mut missing: Vec<&LinePlan> = Vec::new();
        for want in &plan.lines {
            match have.iter().position(|h| line_matches(want, h)) {
                Some(i) => {
                    have.remove(i);
                }
                None => missing.push(want),
            }
        }
        let mut spare = have.into_iter();
        for want in missing {
            let vals = line_vals(want, fields);
            match spare.next() {
                Some(line) => changes.add_write(vec![line.id], Value::Object(vals)),
                None => {
                    let mut vals = vals;
                    vals.insert("move_id".into(), json!(move_id));
                    vals.insert("picking_id".into(), json!(picking));
                    vals.insert("product_id".into(), json!(plan.product));
                    vals.insert("product_uom_id".into(), json!(plan.uom));
                    changes.creates.push(Value::Object(vals));
                }
            }
        }
        changes.unlinks.extend(spare.map(|l| l.id));
    }
    changes
}

/// The context `button_validate` is called with: no backorder (the rest of the demand is
/// cancelled), no immediate-transfer (16), expiry or SMS wizard (odoo-api.md §3.4).
pub fn validate_context(ids: &[i64]) -> Value {
    json!({
        "skip_backorder": true,
        "picking_ids_not_to_backorder": ids,
        "skip_immediate": true,
        "skip_expired": true,
        "skip_sms": true,
    })
}

/// What to do with the answer of `button_validate` (or of a wizard's button).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WizardStep {
    /// `true`, or an action that is not a confirmation (a report to print): read the state.
    Done,
    /// A confirmation wizard: create it with the action's context and press this button.
    Process {
        model: String,
        button: &'static str,
        context: Value,
    },
    /// A confirmation the sink does not know how to answer.
    Unknown { model: String, name: String },
}

/// The button that answers each known confirmation wizard so that the picking is validated
/// without a backorder (odoo-api.md §3.4, §3.3).
pub fn wizard_button(model: &str) -> Option<&'static str> {
    match model {
        "stock.immediate.transfer" => Some("process"),
        "stock.backorder.confirmation" => Some("process_cancel_backorder"),
        "expiry.picking.confirmation" => Some("process"),
        "confirm.stock.sms" => Some("dont_send_sms"),
        "stock.warn.insufficient.qty.scrap" => Some("action_done"),
        _ => None,
    }
}

pub fn wizard_step(answer: &Value) -> WizardStep {
    let Some(action) = answer.as_object() else {
        return WizardStep::Done;
    };
    let Some(model) = action.get("res_model").and_then(Value::as_str) else {
        return WizardStep::Done;
    };
    let is_dialog = action.get("target").and_then(Value::as_str) == Some("new");
    match wizard_button(model) {
        Some(button) => WizardStep::Process {
            model: model.to_owned(),
            button,
            context: action.get("context").cloned().unwrap_or_else(|| json!({})),
        },
        None if is_dialog => WizardStep::Unknown {
            model: crate::sinks::odoo::error::bounded(model, 128),
            name: action
                .get("name")
                .and_then(Value::as_str)
                .map(|n| crate::sinks::odoo::error::bounded(n, 256))
                .unwrap_or_default(),
        },
        None => WizardStep::Done,
    }
}
