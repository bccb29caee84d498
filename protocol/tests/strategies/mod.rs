//! Proptest strategies for arbitrary valid events, shared by the schema and wire tests. Every
//! field ranges over its whole rule: any non-control character in free text, lengths up to the
//! maximum, every kind, item form, flag and decoded kind, the full timestamp and date range.
// Test support: a panic is how a strategy reports a broken assumption.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tallyman_protocol::Date;
use tallyman_protocol::event::*;

fn free_text(max: usize) -> impl Strategy<Value = String> {
    // Mostly short values, sometimes up to the maximum.
    let len = prop_oneof![4 => 1..=8usize.min(max), 1 => 1..=max];
    len.prop_flat_map(|n| {
        proptest::collection::vec(any::<char>().prop_filter("no Cc", |c| !c.is_control()), n)
    })
    .prop_map(String::from_iter)
}

pub fn facility() -> impl Strategy<Value = FacilityId> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| FacilityId::new(s).unwrap())
}

pub fn gateway() -> impl Strategy<Value = GatewayId> {
    "[A-Za-z0-9_-]{1,64}"
        .prop_filter("not all", |s| !s.eq_ignore_ascii_case("all"))
        .prop_map(|s| GatewayId::new(s).unwrap())
}

pub fn source() -> impl Strategy<Value = SourceName> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| SourceName::new(s).unwrap())
}

pub fn location() -> impl Strategy<Value = Location> {
    free_text(Location::MAX_CHARS).prop_map(|s| Location::new(s).unwrap())
}

pub fn reference() -> impl Strategy<Value = Reference> {
    free_text(Reference::MAX_CHARS).prop_map(|s| Reference::new(s).unwrap())
}

pub fn lot() -> impl Strategy<Value = Lot> {
    free_text(Lot::MAX_CHARS).prop_map(|s| Lot::new(s).unwrap())
}

pub fn serial() -> impl Strategy<Value = Serial> {
    free_text(Serial::MAX_CHARS).prop_map(|s| Serial::new(s).unwrap())
}

pub fn uom() -> impl Strategy<Value = Uom> {
    free_text(Uom::MAX_CHARS).prop_map(|s| Uom::new(s).unwrap())
}

pub fn gtin() -> impl Strategy<Value = Gtin14> {
    "[0-9]{13}".prop_map(|body| {
        let check = tallyman_protocol::barcode::check::gs1_mod10(body.as_bytes()).unwrap();
        Gtin14::new(format!("{body}{}", char::from(check))).unwrap()
    })
}

pub fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        gtin().prop_map(Item::Gtin),
        (
            "[A-Z][A-Z0-9]{3}",
            "[A-Z0-9]{1,18}",
            proptest::option::of(0u8..=9)
        )
            .prop_map(|(lic, pcn, unit)| Item::Hibc(HibcItem {
                lic: HibcLic::new(lic).unwrap(),
                pcn: HibcPcn::new(pcn).unwrap(),
                unit: unit.map(|u| HibcUnit::new(u).unwrap()),
            })),
        free_text(ItemCode::MAX_CHARS).prop_map(|s| Item::Code(ItemCode::new(s).unwrap())),
    ]
}

/// Any quantity text the rule accepts, leading and trailing zeros included (the value is
/// normalised on construction).
pub fn quantity() -> impl Strategy<Value = Quantity> {
    "[0-9]{1,12}(\\.[0-9]{1,6})?".prop_filter_map("zero", |s| Quantity::new(s).ok())
}

pub fn date() -> impl Strategy<Value = Date> {
    // 0001-01-01 ..= 9999-12-31
    (-719_162i64..=2_932_896).prop_map(|d| Date::from_unix_days(d).unwrap())
}

pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    (Timestamp::MIN.unix_millis()..=Timestamp::MAX.unix_millis())
        .prop_map(|ms| Timestamp::from_unix_millis(ms).unwrap())
}

pub fn event_id() -> impl Strategy<Value = EventId> {
    (any::<u64>(), any::<[u8; 10]>()).prop_map(|(ms, r)| EventId::new_v7(ms, r))
}

pub fn line() -> impl Strategy<Value = Line> {
    (
        item(),
        proptest::option::of(lot()),
        proptest::option::of(serial()),
        proptest::option::of(date()),
        quantity(),
        uom(),
        proptest::sample::subsequence(Flag::ALL.to_vec(), 0..=Flag::ALL.len()),
    )
        .prop_map(|(item, lot, serial, expiry, qty, uom, flags)| {
            let qty = if serial.is_some() {
                Quantity::one()
            } else {
                qty
            };
            let flags = if expiry.is_some() { flags } else { Vec::new() };
            Line {
                item,
                lot,
                serial,
                expiry,
                qty,
                uom,
                flags,
            }
        })
}

pub fn scan() -> impl Strategy<Value = Scan> {
    (
        proptest::collection::vec(any::<u8>(), 1..80),
        proptest::option::of("\\][A-Za-z][0-9A-Za-z]{1,10}"),
        proptest::option::of(proptest::sample::select(Decoded::ALL.to_vec())),
    )
        .prop_map(|(raw, symbology, decoded)| Scan {
            raw: RawScan::from_bytes(&raw).unwrap(),
            symbology: symbology.map(|s| Symbology::new(s).unwrap()),
            decoded,
        })
}

pub fn header() -> impl Strategy<Value = Header> {
    (
        event_id(),
        facility(),
        gateway(),
        source(),
        any::<u64>(),
        timestamp(),
    )
        .prop_map(|(id, facility, gateway, source, seq, captured_at)| Header {
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
        })
}

/// Any valid event: every kind, with the locations its kind needs (and sometimes the one it
/// does not), 1 to 4 lines or a scan.
pub fn event() -> impl Strategy<Value = Event> {
    (
        header(),
        proptest::sample::select(Kind::ALL.to_vec()),
        proptest::option::of(reference()),
        (location(), any::<bool>(), location(), any::<bool>()),
        proptest::collection::vec(line(), 1..=4),
        scan(),
    )
        .prop_filter_map(
            "transfer from == to",
            |(header, kind, reference, (from, from_extra, to, to_extra), lines, scan)| {
                let needs_from = matches!(kind, Kind::Transfer | Kind::Consumption);
                let needs_to = matches!(kind, Kind::Receipt | Kind::Transfer);
                let is_scan = kind == Kind::Scan;
                let parts = Event::raw_scan(header, scan.clone()).into_parts();
                let parts = EventParts {
                    kind,
                    reference,
                    from: (needs_from || from_extra).then_some(from),
                    to: (needs_to || to_extra).then_some(to),
                    lines: if is_scan { Vec::new() } else { lines },
                    scan: is_scan.then_some(scan),
                    ..parts
                };
                Event::from_parts(parts).ok()
            },
        )
}
