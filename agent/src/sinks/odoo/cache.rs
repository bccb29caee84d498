//! Odoo's master data as the sink needs it — operation types, locations by full name, products
//! by GTIN or internal code, units by name, lots by product and name — looked up for a whole
//! batch at once (one `search_read` per kind of record that is missing) and cached.
//!
//! Refreshed on a miss: only what was found is cached, so a product, location or lot added in
//! Odoo after a miss is found by the next event that needs it; entries older than [`TTL`] are
//! looked up again, so changes in Odoo (a product's tracking, a location's name) reach the
//! sink without a restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyman_protocol::event::{Event, Kind};

use super::error::{Class, OdooError};
use super::mapping::{
    Consumption, ItemKey, Location, PickingType, Product, ProductMatch, Resolved, Tracking,
};
use super::transport::{Call, Caller, answer};

/// How long a cached record is trusted.
pub const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Entry<T> {
    at: Instant,
    value: T,
}

impl<T: Clone> Entry<T> {
    fn new(value: T) -> Entry<T> {
        Entry {
            at: Instant::now(),
            value,
        }
    }

    fn fresh(&self) -> Option<T> {
        (self.at.elapsed() < TTL).then(|| self.value.clone())
    }
}

/// The cached records.
#[derive(Debug, Default)]
pub struct Cache {
    products: HashMap<ItemKey, Entry<Product>>,
    locations: HashMap<String, Entry<Location>>,
    uoms: HashMap<String, Entry<i64>>,
    lots: HashMap<(i64, String), Entry<i64>>,
    types: Option<Entry<Vec<PickingType>>>,
    supplier: Option<Entry<i64>>,
    /// `product_expiry` is not installed (`use_expiration_date` is unknown): expiries are not
    /// written.
    no_expiry: bool,
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the events of a batch need.
#[derive(Debug, Default)]
struct Needs {
    items: BTreeSet<ItemKey>,
    uoms: BTreeSet<String>,
    locations: BTreeSet<String>,
    codes: BTreeSet<&'static str>,
    supplier: bool,
    /// Lots of transfers and consumption, by item and name.
    lots: BTreeSet<(ItemKey, String)>,
}

fn needs(events: &[&Event], consumption: &Consumption) -> Needs {
    let mut n = Needs::default();
    for e in events {
        let kind = e.kind();
        if kind == Kind::Scan {
            continue;
        }
        for loc in [e.from_location(), e.to_location()].into_iter().flatten() {
            n.locations.insert(loc.as_str().to_owned());
        }
        match kind {
            Kind::Receipt => {
                n.codes.insert("incoming");
                n.supplier = true;
            }
            Kind::Transfer => {
                n.codes.insert("internal");
            }
            Kind::Consumption => match consumption {
                Consumption::Picking { location } => {
                    n.codes.insert("internal");
                    n.codes.insert("outgoing");
                    if let Some(l) = location {
                        n.locations.insert(l.clone());
                    }
                }
                Consumption::Scrap => {}
            },
            Kind::Scan => {}
        }
        for line in e.lines() {
            let key = ItemKey::of(&line.item);
            n.uoms.insert(line.uom.as_str().to_owned());
            if kind != Kind::Receipt {
                let names = line.lot.iter().map(|l| l.as_str());
                for lot in names.chain(line.serial.iter().map(|s| s.as_str())) {
                    n.lots.insert((key.clone(), lot.to_owned()));
                }
            }
            n.items.insert(key);
        }
    }
    n
}

/// A lookup failed. A refusal of a lookup is never the events' fault (an add-on missing, a
/// field renamed): it is retried with Odoo's message rather than dead-lettering the batch.
fn lookup_error(e: OdooError) -> OdooError {
    match e.class() {
        Class::Reject | Class::NotFound => OdooError::Protocol {
            call: "looking up products, locations and units".into(),
            detail: format!("{e} (check the Odoo set-up: Inventory with Expiration Dates)"),
        },
        _ => e,
    }
}

/// Everything `events` need, from the cache and, for what is missing, from Odoo.
pub async fn resolve(
    odoo: &dyn Caller,
    cache: &Mutex<Cache>,
    events: &[&Event],
    consumption: &Consumption,
) -> Result<Resolved, OdooError> {
    let needs = needs(events, consumption);
    let mut r = Resolved::default();
    let (missing_items, missing_uoms, missing_locations, types_fresh, supplier, no_expiry) = {
        let c = lock(cache);
        let mut items = Vec::new();
        for key in &needs.items {
            match c.products.get(key).and_then(Entry::fresh) {
                Some(p) => {
                    r.products.insert(key.clone(), ProductMatch::One(p));
                }
                None => items.push(key.clone()),
            }
        }
        let mut uoms = Vec::new();
        for name in &needs.uoms {
            match c.uoms.get(name).and_then(Entry::fresh) {
                Some(id) => {
                    r.uoms.insert(name.clone(), id);
                }
                None => uoms.push(name.clone()),
            }
        }
        let mut locations = Vec::new();
        for name in &needs.locations {
            match c.locations.get(name).and_then(Entry::fresh) {
                Some(l) => {
                    r.locations.insert(name.clone(), l);
                }
                None => locations.push(name.clone()),
            }
        }
        let types = c.types.as_ref().and_then(Entry::fresh);
        let types_fresh = types
            .filter(|t| {
                needs
                    .codes
                    .iter()
                    .filter(|code| **code != "outgoing")
                    .all(|code| t.iter().any(|pt| pt.code == *code))
            })
            .inspect(|t| r.types = t.clone())
            .is_some();
        let supplier = c.supplier.as_ref().and_then(Entry::fresh);
        (items, uoms, locations, types_fresh, supplier, c.no_expiry)
    };

    if !missing_items.is_empty() {
        let found = products(odoo, &missing_items, no_expiry, cache).await?;
        let mut c = lock(cache);
        for key in missing_items {
            let matching: Vec<&Product> = found
                .iter()
                .filter(|p| key.matches(p.barcode.as_deref(), p.default_code.as_deref()))
                .collect();
            let m = match matching.as_slice() {
                [] => ProductMatch::None,
                [one] => {
                    c.products.insert(key.clone(), Entry::new((*one).clone()));
                    ProductMatch::One((*one).clone())
                }
                many => ProductMatch::Many(many.iter().map(|p| p.name.clone()).collect()),
            };
            r.products.insert(key, m);
        }
    }
    if !missing_uoms.is_empty() {
        let call = Call::new("uom.uom", "search_read")
            .arg("domain", json!([["name", "in", missing_uoms]]))
            .kwarg("fields", json!(["name"]));
        let label = call.label();
        let v = odoo.call(call).await.map_err(lookup_error)?;
        let mut c = lock(cache);
        for rec in answer::records(&label, &v)? {
            let id = answer::id(&label, rec)?;
            if let Some(name) = answer::text(rec, "name") {
                if let std::collections::hash_map::Entry::Vacant(slot) = r.uoms.entry(name) {
                    c.uoms.insert(slot.key().clone(), Entry::new(id));
                    slot.insert(id);
                }
            }
        }
    }
    if !missing_locations.is_empty() {
        let call = Call::new("stock.location", "search_read")
            .arg(
                "domain",
                json!([["complete_name", "in", missing_locations]]),
            )
            .kwarg("fields", json!(["complete_name", "usage"]));
        let label = call.label();
        let v = odoo.call(call).await.map_err(lookup_error)?;
        let mut c = lock(cache);
        for rec in answer::records(&label, &v)? {
            let id = answer::id(&label, rec)?;
            if let Some(name) = answer::text(rec, "complete_name") {
                let loc = Location {
                    id,
                    name: name.clone(),
                    usage: answer::text(rec, "usage").unwrap_or_default(),
                };
                if let std::collections::hash_map::Entry::Vacant(slot) = r.locations.entry(name) {
                    c.locations
                        .insert(slot.key().clone(), Entry::new(loc.clone()));
                    slot.insert(loc);
                }
            }
        }
    }
    if !needs.codes.is_empty() && !types_fresh {
        let call = Call::new("stock.picking.type", "search_read")
            .arg(
                "domain",
                json!([["code", "in", ["incoming", "internal", "outgoing"]]]),
            )
            .kwarg(
                "fields",
                json!([
                    "name",
                    "code",
                    "default_location_src_id",
                    "default_location_dest_id"
                ]),
            );
        let label = call.label();
        let v = odoo.call(call).await.map_err(lookup_error)?;
        let mut types = Vec::new();
        for rec in answer::records(&label, &v)? {
            types.push(PickingType {
                id: answer::id(&label, rec)?,
                name: answer::text(rec, "name").unwrap_or_default(),
                code: answer::text(rec, "code").unwrap_or_default(),
                default_src: answer::many2one(rec, "default_location_src_id"),
                default_dest: answer::many2one(rec, "default_location_dest_id"),
            });
        }
        types.sort_by_key(|t| t.id);
        lock(cache).types = Some(Entry::new(types.clone()));
        r.types = types;
    }
    if needs.supplier {
        r.supplier = match supplier {
            Some(id) => Some(id),
            None => {
                let call = Call::new("stock.location", "search_read")
                    .arg("domain", json!([["usage", "=", "supplier"]]))
                    .kwarg("fields", json!(["complete_name"]))
                    .kwarg("limit", json!(1))
                    .kwarg("order", json!("id"));
                let label = call.label();
                let v = odoo.call(call).await.map_err(lookup_error)?;
                let id = match answer::records(&label, &v)?.first() {
                    Some(rec) => Some(answer::id(&label, rec)?),
                    None => None,
                };
                if let Some(id) = id {
                    lock(cache).supplier = Some(Entry::new(id));
                }
                id
            }
        };
    }
    lots(odoo, cache, &needs, &mut r).await?;
    Ok(r)
}

/// Products having any of the keys' barcodes or internal codes.
async fn products(
    odoo: &dyn Caller,
    keys: &[ItemKey],
    no_expiry: bool,
    cache: &Mutex<Cache>,
) -> Result<Vec<Product>, OdooError> {
    let barcodes: Vec<String> = keys.iter().flat_map(ItemKey::barcodes).collect();
    let codes: Vec<&str> = keys.iter().filter_map(ItemKey::code).collect();
    let mut domains = Vec::new();
    if !barcodes.is_empty() {
        domains.push(json!([["barcode", "in", barcodes]]));
    }
    if !codes.is_empty() {
        domains.push(json!([["default_code", "in", codes]]));
    }
    let mut found = Vec::new();
    for domain in domains {
        let mut with_expiry = !no_expiry;
        loop {
            let mut fields = vec!["name", "barcode", "default_code", "tracking", "uom_id"];
            if with_expiry {
                fields.push("use_expiration_date");
            }
            let call = Call::new("product.product", "search_read")
                .arg("domain", domain.clone())
                .kwarg("fields", json!(fields));
            let label = call.label();
            let v = match odoo.call(call).await {
                Ok(v) => v,
                // Without the Expiration Dates add-on the field does not exist: read without
                // it, and write no expiry.
                Err(OdooError::Server { message, .. })
                    if with_expiry && message.contains("use_expiration_date") =>
                {
                    with_expiry = false;
                    lock(cache).no_expiry = true;
                    continue;
                }
                Err(e) => return Err(lookup_error(e)),
            };
            for rec in answer::records(&label, &v)? {
                found.push(Product {
                    id: answer::id(&label, rec)?,
                    name: answer::text(rec, "name").unwrap_or_default(),
                    barcode: answer::text(rec, "barcode"),
                    default_code: answer::text(rec, "default_code"),
                    tracking: match answer::text(rec, "tracking").as_deref() {
                        Some("lot") => Tracking::Lot,
                        Some("serial") => Tracking::Serial,
                        _ => Tracking::None,
                    },
                    uom: answer::many2one(rec, "uom_id").map(|(id, _)| id),
                    use_expiry: with_expiry && answer::flag(rec, "use_expiration_date"),
                });
            }
            break;
        }
    }
    found.sort_by_key(|p| p.id);
    found.dedup_by_key(|p| p.id);
    Ok(found)
}

/// The lots transfers and consumption name, for the products found.
async fn lots(
    odoo: &dyn Caller,
    cache: &Mutex<Cache>,
    needs: &Needs,
    r: &mut Resolved,
) -> Result<(), OdooError> {
    let mut missing: Vec<(i64, String)> = Vec::new();
    {
        let c = lock(cache);
        for (key, name) in &needs.lots {
            let Some(ProductMatch::One(p)) = r.products.get(key) else {
                continue;
            };
            if p.tracking == Tracking::None {
                continue;
            }
            let k = (p.id, name.clone());
            match c.lots.get(&k).and_then(Entry::fresh) {
                Some(id) => {
                    r.lots.insert(k, id);
                }
                None => missing.push(k),
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<&str> = missing.iter().map(|(_, n)| n.as_str()).collect();
    let products: BTreeSet<i64> = missing.iter().map(|(p, _)| *p).collect();
    let call = Call::new("stock.lot", "search_read")
        .arg(
            "domain",
            json!([["name", "in", names], ["product_id", "in", products]]),
        )
        .kwarg("fields", json!(["name", "product_id"]));
    let label = call.label();
    let v: Value = odoo.call(call).await.map_err(lookup_error)?;
    let mut c = lock(cache);
    for rec in answer::records(&label, &v)? {
        let id = answer::id(&label, rec)?;
        let (Some(name), Some((product, _))) = (
            answer::text(rec, "name"),
            answer::many2one(rec, "product_id"),
        ) else {
            continue;
        };
        let k = (product, name);
        if missing.contains(&k) {
            c.lots.insert(k.clone(), Entry::new(id));
            r.lots.insert(k, id);
        }
    }
    Ok(())
}
