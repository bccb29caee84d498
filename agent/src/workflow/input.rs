//! What a decoded barcode means to the workflow: an item, the secondary half of an HIBC label,
//! data that is not an item (a location, a reference, a count), or nothing the workflow uses.

use std::collections::HashMap;

use tallyman_protocol::Date;
use tallyman_protocol::barcode::hibc::{Hibc, HibcForm};
use tallyman_protocol::barcode::{Content, Scan, gs1};
use tallyman_protocol::event::{
    FieldError, Gtin14, HibcItem, HibcLic, HibcPcn, HibcUnit, Item, Location, Lot, Quantity,
    Reference, Serial,
};

/// A decoded scan, as the workflow sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    Item(ItemScan),
    /// An HIBC secondary symbol on its own: it completes the primary scanned just before.
    Secondary(Secondary),
    /// GS1 data that is not an item.
    Data(DataScan),
    /// Decoded, but nothing a stock workflow counts; the reason says why.
    Unused(String),
}

/// An item as one barcode gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ItemScan {
    pub item: Item,
    pub lot: Option<Lot>,
    pub serial: Option<Serial>,
    pub expiry: Option<Date>,
    /// The expiry was written with day 00 (GS1 AI 17): month only.
    pub day00: bool,
    /// The count the symbol carries (GS1 AI 30/37, HIBC quantity).
    pub qty: Option<Quantity>,
    /// For an HIBC primary symbol: its check character, which a secondary symbol repeats as
    /// its link character.
    pub hibc_link: Option<char>,
}

/// The data of an HIBC secondary symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Secondary {
    pub link: char,
    pub lot: Option<Lot>,
    pub serial: Option<Serial>,
    pub expiry: Option<Date>,
    pub qty: Option<Quantity>,
}

/// GS1 data that sets something for the session. At least one field is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataScan {
    /// AI 414 (+ 254).
    pub location: Option<Location>,
    /// AI 400.
    pub reference: Option<Reference>,
    /// AI 30 or 37: the count of the next item.
    pub qty: Option<Quantity>,
}

/// Classify a decoded scan. A value the event cannot carry (a quantity of 0, say) is an
/// `Err` with the reason.
pub(super) fn classify(
    scan: &Scan,
    gln_locations: &HashMap<String, Location>,
) -> Result<Input, String> {
    let field = |e: FieldError| e.to_string();
    match &scan.content {
        Content::Gs1(m) => gs1_input(m, gln_locations).map_err(field),
        Content::Gtin(g) => Ok(Input::Item(ItemScan {
            item: Item::Gtin(Gtin14::new(g.as_str()).map_err(field)?),
            lot: None,
            serial: None,
            expiry: None,
            day00: false,
            qty: None,
            hibc_link: None,
        })),
        Content::Hibc(h) => hibc_input(h).map_err(field),
        Content::Isbt128(_) => Ok(Input::Unused(
            "an ISBT 128 code (blood, cells, tissue) is not a stock item here; a passthrough \
             source records it as it is"
                .into(),
        )),
    }
}

fn opt<T>(
    v: Option<&str>,
    make: impl FnOnce(String) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    v.map(|s| make(s.to_string())).transpose()
}

fn gs1_input(
    m: &gs1::Message,
    gln_locations: &HashMap<String, Location>,
) -> Result<Input, FieldError> {
    let qty = m.quantity().map(Quantity::new).transpose()?;
    if let Some(gtin) = m.gtin() {
        return Ok(Input::Item(ItemScan {
            item: Item::Gtin(Gtin14::new(gtin)?),
            lot: opt(m.lot(), Lot::new)?,
            serial: opt(m.serial(), Serial::new)?,
            expiry: m.expiry(),
            // `expiry()` prefers (17): DD is its fifth and sixth digit.
            day00: m.get("17").and_then(|v| v.get(4..6)) == Some("00"),
            qty,
            hibc_link: None,
        }));
    }
    let location = match m.gln() {
        Some(gln) => {
            let name = match m.get("254") {
                Some(ext) => format!("{gln}.{ext}"),
                None => gln.to_string(),
            };
            match gln_locations.get(&name) {
                Some(loc) => Some(loc.clone()),
                None => Some(Location::new(name)?),
            }
        }
        None => None,
    };
    let reference = opt(m.get("400"), Reference::new)?;
    if location.is_none() && reference.is_none() && qty.is_none() {
        let ais: Vec<String> = m.elements().iter().map(|e| format!("({})", e.ai)).collect();
        return Ok(Input::Unused(format!(
            "this GS1 barcode has no item (01)/(02), location (414), order number (400) or \
             count (30)/(37); it carries {}",
            ais.join("")
        )));
    }
    Ok(Input::Data(DataScan {
        location,
        reference,
        qty,
    }))
}

fn hibc_input(h: &Hibc) -> Result<Input, FieldError> {
    let qty = h
        .quantity
        .map(|q| Quantity::from_int(u64::from(q)))
        .transpose()?;
    let lot = opt(h.lot.as_deref(), Lot::new)?;
    let serial = opt(h.serial.as_deref(), Serial::new)?;
    if h.form == HibcForm::Secondary {
        let Some(link) = h.link else {
            return Ok(Input::Unused(
                "an HIBC secondary symbol without a link character".into(),
            ));
        };
        return Ok(Input::Secondary(Secondary {
            link,
            lot,
            serial,
            expiry: h.expiry,
            qty,
        }));
    }
    let (Some(lic), Some(pcn)) = (h.lic.as_deref(), h.pcn.as_deref()) else {
        return Ok(Input::Unused(
            "an HIBC symbol without labeler and product codes".into(),
        ));
    };
    let item = Item::Hibc(HibcItem {
        lic: HibcLic::new(lic)?,
        pcn: HibcPcn::new(pcn)?,
        unit: h.unit.map(HibcUnit::new).transpose()?,
    });
    Ok(Input::Item(ItemScan {
        item,
        lot,
        serial,
        expiry: h.expiry,
        day00: false,
        qty,
        hibc_link: (h.form == HibcForm::Primary).then_some(h.check),
    }))
}

/// How an item is named in feedback: `09506000134352`, `HIBC A123/BJC5D6E7/1`, then the lot,
/// serial and expiry when present.
pub(super) fn describe(item: &Item, lot: Option<&Lot>, serial: Option<&Serial>) -> String {
    let mut out = match item {
        Item::Gtin(g) => format!("GTIN {g}"),
        Item::Hibc(h) => match h.unit {
            Some(u) => format!("HIBC {}/{}/{}", h.lic, h.pcn, u.get()),
            None => format!("HIBC {}/{}", h.lic, h.pcn),
        },
        Item::Code(c) => format!("item {c}"),
    };
    if let Some(lot) = lot {
        out.push_str(&format!(" lot {lot}"));
    }
    if let Some(serial) = serial {
        out.push_str(&format!(" serial {serial}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tallyman_protocol::barcode::{DecodeOptions, decode};

    fn input(raw: &[u8]) -> Result<Input, String> {
        let opts = DecodeOptions {
            gs_aliases: vec![],
            today: Date::new(2026, 11, 24).unwrap(),
        };
        let mut names = HashMap::new();
        names.insert(
            "9501101000001.SHELF-3".to_string(),
            Location::new("WH/Stock/Shelf 3").unwrap(),
        );
        classify(&decode(raw, &opts).unwrap(), &names)
    }

    #[test]
    fn gs1_items_carry_lot_serial_expiry_and_count() {
        let Ok(Input::Item(it)) = input(b"]d2010950110102091717271200\x1d10L1\x1d3012") else {
            panic!()
        };
        assert_eq!(it.lot.unwrap().as_str(), "L1");
        assert_eq!(it.expiry, Date::new(2027, 12, 31));
        assert!(it.day00);
        assert_eq!(it.qty.unwrap().as_str(), "12");
        assert_eq!(it.hibc_link, None);
        let Ok(Input::Item(it)) = input(b"0109501101020917172712311012345\x1d21SER0001") else {
            panic!()
        };
        assert!(!it.day00);
        assert_eq!(it.serial.unwrap().as_str(), "SER0001");
    }

    #[test]
    fn gs1_data_that_is_not_an_item() {
        let Ok(Input::Data(d)) = input(b"4149501101000001254SHELF-3") else {
            panic!()
        };
        assert_eq!(d.location.unwrap().as_str(), "WH/Stock/Shelf 3");
        let Ok(Input::Data(d)) = input(b"4149501101000001") else {
            panic!()
        };
        assert_eq!(d.location.unwrap().as_str(), "9501101000001");
        let Ok(Input::Data(d)) = input(b"400PO-42\x1d3024") else {
            panic!()
        };
        assert_eq!(d.reference.unwrap().as_str(), "PO-42");
        assert_eq!(d.qty.unwrap().as_str(), "24");
        assert!(
            matches!(input(b"]C100106141411234567897"), Ok(Input::Unused(r)) if r.contains("(00)"))
        );
        let e = input(b"300").unwrap_err();
        assert!(e.contains("greater than zero"), "{e}");
    }

    #[test]
    fn hibc_forms() {
        let Ok(Input::Item(it)) = input(b"+A123BJC5D6E71G") else {
            panic!()
        };
        assert_eq!(it.hibc_link, Some('G'));
        assert_eq!(describe(&it.item, None, None), "HIBC A123/BJC5D6E7/1");
        let Ok(Input::Secondary(s)) = input(b"+$$52001510X3GD") else {
            panic!()
        };
        assert_eq!((s.link, s.lot.unwrap().as_str()), ('G', "10X3"));
        let Ok(Input::Item(it)) = input(b"+A99912345/$$52001510X33") else {
            panic!()
        };
        assert_eq!(it.hibc_link, None);
        assert_eq!(it.lot.unwrap().as_str(), "10X3");
        assert!(matches!(input(b"=G12341765432100"), Ok(Input::Unused(_))));
    }
}
