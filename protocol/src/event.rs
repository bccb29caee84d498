//! The canonical stock event (PRODUCT §3): what every source produces, the spool stores and
//! every sink delivers.
//!
//! Contract:
//! * An [`Event`] is always valid. Its fields are private; it is made by the constructors
//!   ([`Event::receipt`], [`Event::transfer`], [`Event::consumption`], [`Event::raw_scan`]),
//!   by [`Event::from_parts`], or by deserialisation, and all of them run
//!   [`EventParts::validate`]. Every field is a validated type from [`fields`], [`id`] or
//!   [`time`], so JSON and postcard input are checked alike.
//! * The JSON form is the published schema `protocol/schema/event.v1.schema.json`
//!   ([`JSON_SCHEMA_V1`]); `tests/event_schema.rs` proves that schema and types agree. Absent
//!   nullable fields read as `null`, an absent `flags` as `[]`; output always writes every field.
//! * The postcard form (see [`crate::wire`]) is the same serde tree. Nothing here uses
//!   `skip_serializing_if`, `flatten`, `untagged` or internally tagged enums: postcard is not
//!   self-describing. Enum variants are encoded by position, so new variants of [`Flag`] and
//!   [`Decoded`] are only ever appended.
//! * `v` is 1. Any other value is refused with "unsupported event schema version N".

pub mod fields;
pub mod id;
pub mod time;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use fields::{
    FacilityId, FieldError, GatewayId, Gtin14, HibcLic, HibcPcn, HibcUnit, ItemCode, Location, Lot,
    Quantity, RawScan, Reference, Serial, SourceName, Symbology, Uom,
};
pub use id::EventId;
pub use time::Timestamp;

use crate::Date;

/// The JSON Schema (draft 2020-12) of the v1 event, as published with the project.
pub const JSON_SCHEMA_V1: &str = include_str!("../schema/event.v1.schema.json");

/// Most lines in one receipt, transfer or consumption.
pub const MAX_LINES: usize = 1000;

/// The `v` field: the version of the event's schema. Only 1 exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchemaVersion;

impl SchemaVersion {
    /// The one version this crate reads and writes.
    pub const CURRENT: u64 = 1;

    pub fn get(self) -> u64 {
        Self::CURRENT
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(Self::CURRENT)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SchemaVersion, D::Error> {
        let v = u64::deserialize(deserializer)?;
        if v != Self::CURRENT {
            return Err(serde::de::Error::custom(EventError::UnsupportedVersion(v)));
        }
        Ok(SchemaVersion)
    }
}

/// What an event does to stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Goods arrive at `to`.
    Receipt,
    /// Goods move from `from` to `to`.
    Transfer,
    /// Goods are used up at `from`.
    Consumption,
    /// A raw scan passed through as it was read, with no stock effect.
    Scan,
}

impl Kind {
    /// Every kind, in schema order.
    pub const ALL: [Kind; 4] = [Kind::Receipt, Kind::Transfer, Kind::Consumption, Kind::Scan];

    /// The name in JSON and in the `events/{kind}` topic.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receipt => "receipt",
            Kind::Transfer => "transfer",
            Kind::Consumption => "consumption",
            Kind::Scan => "scan",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Kind, FieldError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "event kind",
                    s,
                    "an event kind is receipt, transfer, consumption or scan",
                )
            })
    }
}

/// What a line counts: a product known by its GTIN, its HIBC labeler and product codes, or an
/// internal code. JSON: `{"gtin": "…"}`, `{"hibc": {"lic", "pcn", "unit"}}` or `{"code": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Gtin(Gtin14),
    Hibc(HibcItem),
    Code(ItemCode),
}

/// A product identified by HIBC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HibcItem {
    pub lic: HibcLic,
    pub pcn: HibcPcn,
    pub unit: Option<HibcUnit>,
}

/// Something the edge noticed about a line and accepted anyway. Variants are only appended
/// (postcard stores the position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Flag {
    /// The lot had expired when it was scanned; accepted because the expiry policy is "flag".
    #[serde(rename = "expired")]
    Expired,
    /// The barcode gave the expiry with day 00 (month only): `expiry` is the last day of that
    /// month.
    #[serde(rename = "expiry_day_00")]
    ExpiryDay00,
}

impl Flag {
    /// Every flag, in schema order.
    pub const ALL: [Flag; 2] = [Flag::Expired, Flag::ExpiryDay00];

    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Expired => "expired",
            Flag::ExpiryDay00 => "expiry_day_00",
        }
    }

    /// Whether the flag speaks about `expiry`, which must then be present.
    pub fn needs_expiry(self) -> bool {
        matches!(self, Flag::Expired | Flag::ExpiryDay00)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One item line: what, which lot or serial, how many.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub item: Item,
    pub lot: Option<Lot>,
    pub serial: Option<Serial>,
    pub expiry: Option<Date>,
    pub qty: Quantity,
    pub uom: Uom,
    #[serde(default)]
    pub flags: Vec<Flag>,
}

impl Line {
    /// A line of `qty` `uom` of `item`, with no lot, serial, expiry or flag.
    pub fn new(item: Item, qty: Quantity, uom: Uom) -> Line {
        Line {
            item,
            lot: None,
            serial: None,
            expiry: None,
            qty,
            uom,
            flags: Vec::new(),
        }
    }

    pub fn with_lot(mut self, lot: Lot) -> Line {
        self.lot = Some(lot);
        self
    }

    pub fn with_serial(mut self, serial: Serial) -> Line {
        self.serial = Some(serial);
        self
    }

    pub fn with_expiry(mut self, expiry: Date) -> Line {
        self.expiry = Some(expiry);
        self
    }

    /// Add a flag (once).
    pub fn with_flag(mut self, flag: Flag) -> Line {
        if !self.flags.contains(&flag) {
            self.flags.push(flag);
        }
        self
    }

    /// The line's own rules: a serial-tracked line counts exactly 1; a flag appears at most
    /// once; a flag about the expiry needs an expiry.
    pub fn validate(&self) -> Result<(), LineError> {
        if self.serial.is_some() && !self.qty.is_one() {
            return Err(LineError::SerialQuantity(self.qty.clone()));
        }
        for (i, flag) in self.flags.iter().enumerate() {
            if self.flags.get(..i).is_some_and(|seen| seen.contains(flag)) {
                return Err(LineError::DuplicateFlag(*flag));
            }
            if flag.needs_expiry() && self.expiry.is_none() {
                return Err(LineError::FlagNeedsExpiry(*flag));
            }
        }
        Ok(())
    }
}

/// What a barcode or tag was decoded as (the `kind` of `tallyman decode`). Variants are only
/// appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decoded {
    Gs1,
    Gs1Dl,
    Gtin,
    Hibc,
    Isbt128,
    Epc,
}

impl Decoded {
    pub const ALL: [Decoded; 6] = [
        Decoded::Gs1,
        Decoded::Gs1Dl,
        Decoded::Gtin,
        Decoded::Hibc,
        Decoded::Isbt128,
        Decoded::Epc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decoded::Gs1 => "gs1",
            Decoded::Gs1Dl => "gs1_dl",
            Decoded::Gtin => "gtin",
            Decoded::Hibc => "hibc",
            Decoded::Isbt128 => "isbt128",
            Decoded::Epc => "epc",
        }
    }
}

/// The raw scan a `scan` event passes through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    /// The bytes as read, escaped.
    pub raw: RawScan,
    /// The AIM symbology identifier, if the scanner sent one.
    pub symbology: Option<Symbology>,
    /// What the scan decoded as; `null` if it was not decoded.
    pub decoded: Option<Decoded>,
}

/// Who captured an event, where and when: the part every event has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub id: EventId,
    pub facility: FacilityId,
    pub gateway: GatewayId,
    pub source: SourceName,
    /// The gateway's sequence number for this event.
    pub seq: u64,
    pub captured_at: Timestamp,
}

/// Why a set of event fields is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unsupported event schema version {0}")]
    UnsupportedVersion(u64),
    #[error("a {kind} needs a `{field}` location")]
    MissingLocation { kind: Kind, field: &'static str },
    #[error("a transfer needs two different locations, but from and to are both \"{0}\"")]
    SameLocation(String),
    #[error("a {kind} has 1 to {MAX_LINES} lines, this one has {count}")]
    LineCount { kind: Kind, count: usize },
    #[error("a scan event has no lines, this one has {0}")]
    ScanWithLines(usize),
    #[error("a scan event needs its `scan` object")]
    MissingScan,
    #[error("only a scan event has a `scan` object, not a {0}")]
    UnexpectedScan(Kind),
    /// A line breaks a rule; `line` counts from 1.
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: LineError },
}

/// Why a line is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("an item with a serial number counts one unit, so its quantity must be 1, not {0}")]
    SerialQuantity(Quantity),
    #[error("the flag `{0}` appears twice")]
    DuplicateFlag(Flag),
    #[error("the flag `{0}` needs an expiry date")]
    FlagNeedsExpiry(Flag),
}

/// The fields of an event, public and not yet checked together: the shape deserialisation
/// reads before [`EventParts::validate`] turns it into an [`Event`]. Field order is the
/// postcard order and must match [`Event`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParts {
    pub v: SchemaVersion,
    pub id: EventId,
    pub facility: FacilityId,
    pub gateway: GatewayId,
    pub source: SourceName,
    pub seq: u64,
    pub captured_at: Timestamp,
    pub kind: Kind,
    pub reference: Option<Reference>,
    pub from: Option<Location>,
    pub to: Option<Location>,
    pub lines: Vec<Line>,
    pub scan: Option<Scan>,
}

impl EventParts {
    /// The rules that tie fields together:
    /// * `receipt` needs `to`; `transfer` needs `from` and `to`, and they differ;
    ///   `consumption` needs `from`. (A location a kind does not need is carried as it is.)
    /// * `receipt`, `transfer` and `consumption` have 1 to [`MAX_LINES`] lines and no `scan`;
    ///   `scan` has no lines and a `scan` object.
    /// * every line passes [`Line::validate`].
    pub fn validate(&self) -> Result<(), EventError> {
        let kind = self.kind;
        if kind == Kind::Scan {
            if !self.lines.is_empty() {
                return Err(EventError::ScanWithLines(self.lines.len()));
            }
            if self.scan.is_none() {
                return Err(EventError::MissingScan);
            }
            return Ok(());
        }
        if self.scan.is_some() {
            return Err(EventError::UnexpectedScan(kind));
        }
        fn need<'a>(
            loc: &'a Option<Location>,
            kind: Kind,
            field: &'static str,
        ) -> Result<&'a Location, EventError> {
            loc.as_ref()
                .ok_or(EventError::MissingLocation { kind, field })
        }
        match kind {
            Kind::Receipt => {
                need(&self.to, kind, "to")?;
            }
            Kind::Transfer => {
                let from = need(&self.from, kind, "from")?;
                let to = need(&self.to, kind, "to")?;
                if from == to {
                    return Err(EventError::SameLocation(from.to_string()));
                }
            }
            Kind::Consumption => {
                need(&self.from, kind, "from")?;
            }
            Kind::Scan => {}
        }
        let count = self.lines.len();
        if count == 0 || count > MAX_LINES {
            return Err(EventError::LineCount { kind, count });
        }
        for (i, line) in self.lines.iter().enumerate() {
            line.validate().map_err(|problem| EventError::Line {
                line: i + 1,
                problem,
            })?;
        }
        Ok(())
    }
}

/// A valid canonical event. See the module documentation for the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "EventParts")]
pub struct Event {
    v: SchemaVersion,
    id: EventId,
    facility: FacilityId,
    gateway: GatewayId,
    source: SourceName,
    seq: u64,
    captured_at: Timestamp,
    kind: Kind,
    reference: Option<Reference>,
    from: Option<Location>,
    to: Option<Location>,
    lines: Vec<Line>,
    scan: Option<Scan>,
}

impl TryFrom<EventParts> for Event {
    type Error = EventError;

    fn try_from(parts: EventParts) -> Result<Event, EventError> {
        parts.validate()?;
        let EventParts {
            v,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind,
            reference,
            from,
            to,
            lines,
            scan,
        } = parts;
        Ok(Event {
            v,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind,
            reference,
            from,
            to,
            lines,
            scan,
        })
    }
}

impl Event {
    fn with_header(
        header: Header,
        kind: Kind,
        from: Option<Location>,
        to: Option<Location>,
        lines: Vec<Line>,
        scan: Option<Scan>,
    ) -> EventParts {
        let Header {
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
        } = header;
        EventParts {
            v: SchemaVersion,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind,
            reference: None,
            from,
            to,
            lines,
            scan,
        }
    }

    /// Goods received at `to`.
    pub fn receipt(header: Header, to: Location, lines: Vec<Line>) -> Result<Event, EventError> {
        Event::from_parts(Self::with_header(
            header,
            Kind::Receipt,
            None,
            Some(to),
            lines,
            None,
        ))
    }

    /// Goods moved from `from` to `to`.
    pub fn transfer(
        header: Header,
        from: Location,
        to: Location,
        lines: Vec<Line>,
    ) -> Result<Event, EventError> {
        Event::from_parts(Self::with_header(
            header,
            Kind::Transfer,
            Some(from),
            Some(to),
            lines,
            None,
        ))
    }

    /// Goods used up at `from`.
    pub fn consumption(
        header: Header,
        from: Location,
        lines: Vec<Line>,
    ) -> Result<Event, EventError> {
        Event::from_parts(Self::with_header(
            header,
            Kind::Consumption,
            Some(from),
            None,
            lines,
            None,
        ))
    }

    /// A raw scan passed through (always valid).
    pub fn raw_scan(header: Header, scan: Scan) -> Event {
        let Header {
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
        } = header;
        Event {
            v: SchemaVersion,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind: Kind::Scan,
            reference: None,
            from: None,
            to: None,
            lines: Vec::new(),
            scan: Some(scan),
        }
    }

    /// The same event with a business reference (which no rule depends on).
    pub fn with_reference(mut self, reference: Option<Reference>) -> Event {
        self.reference = reference;
        self
    }

    /// An event from its fields, if they pass [`EventParts::validate`].
    pub fn from_parts(parts: EventParts) -> Result<Event, EventError> {
        Event::try_from(parts)
    }

    /// The event's fields, to change and validate again.
    pub fn into_parts(self) -> EventParts {
        let Event {
            v,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind,
            reference,
            from,
            to,
            lines,
            scan,
        } = self;
        EventParts {
            v,
            id,
            facility,
            gateway,
            source,
            seq,
            captured_at,
            kind,
            reference,
            from,
            to,
            lines,
            scan,
        }
    }

    /// Read an event from its JSON form. A document whose `v` is not 1 is refused as
    /// "unsupported event schema version N" whatever else it contains.
    pub fn from_json(json: &[u8]) -> Result<Event, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            v: Option<serde_json::Value>,
        }
        if let Ok(Probe { v: Some(v) }) = serde_json::from_slice::<Probe>(json) {
            if let Some(n) = v.as_u64().filter(|n| *n != SchemaVersion::CURRENT) {
                return Err(serde::de::Error::custom(EventError::UnsupportedVersion(n)));
            }
        }
        serde_json::from_slice(json)
    }

    pub fn header(&self) -> Header {
        Header {
            id: self.id,
            facility: self.facility.clone(),
            gateway: self.gateway.clone(),
            source: self.source.clone(),
            seq: self.seq,
            captured_at: self.captured_at,
        }
    }

    pub fn version(&self) -> SchemaVersion {
        self.v
    }

    pub fn id(&self) -> EventId {
        self.id
    }

    pub fn facility(&self) -> &FacilityId {
        &self.facility
    }

    pub fn gateway(&self) -> &GatewayId {
        &self.gateway
    }

    pub fn source(&self) -> &SourceName {
        &self.source
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The same event with the gateway's sequence number set: the spool numbers events in
    /// the order it accepts them. Any `u64` is valid.
    pub fn with_seq(mut self, seq: u64) -> Event {
        self.seq = seq;
        self
    }

    pub fn captured_at(&self) -> Timestamp {
        self.captured_at
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn reference(&self) -> Option<&Reference> {
        self.reference.as_ref()
    }

    pub fn from_location(&self) -> Option<&Location> {
        self.from.as_ref()
    }

    pub fn to_location(&self) -> Option<&Location> {
        self.to.as_ref()
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    pub fn scan(&self) -> Option<&Scan> {
        self.scan.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            id: EventId::parse("01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11").unwrap(),
            facility: FacilityId::new("north").unwrap(),
            gateway: GatewayId::new("gw-north-01").unwrap(),
            source: SourceName::new("dock-1").unwrap(),
            seq: 1042,
            captured_at: Timestamp::parse("2026-11-24T10:15:03.120Z").unwrap(),
        }
    }

    fn line() -> Line {
        Line::new(
            Item::Gtin(Gtin14::new("09506000134352").unwrap()),
            Quantity::new("5").unwrap(),
            Uom::new("Units").unwrap(),
        )
        .with_lot(Lot::new("A1B2").unwrap())
        .with_expiry(Date::new(2027, 12, 31).unwrap())
    }

    fn loc(s: &str) -> Location {
        Location::new(s).unwrap()
    }

    #[test]
    fn the_product_example_reads_and_writes_back() {
        let json = r#"{
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
             "expiry": "2027-12-31", "qty": "5", "uom": "Units"}
          ]
        }"#;
        let ev = Event::from_json(json.as_bytes()).unwrap();
        let built = Event::receipt(header(), loc("WH/Stock"), vec![line()])
            .unwrap()
            .with_reference(Some(Reference::new("PO00042").unwrap()));
        assert_eq!(ev, built);
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            concat!(
                r#"{"v":1,"id":"01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11","facility":"north","#,
                r#""gateway":"gw-north-01","source":"dock-1","seq":1042,"#,
                r#""captured_at":"2026-11-24T10:15:03.120Z","kind":"receipt","#,
                r#""reference":"PO00042","from":null,"to":"WH/Stock","lines":[{"item":"#,
                r#"{"gtin":"09506000134352"},"lot":"A1B2","serial":null,"expiry":"2027-12-31","#,
                r#""qty":"5","uom":"Units","flags":[]}],"scan":null}"#
            )
        );
    }

    #[test]
    fn kind_rules() {
        let h = header;
        assert_eq!(
            Event::transfer(h(), loc("A"), loc("A"), vec![line()]).unwrap_err(),
            EventError::SameLocation("A".into())
        );
        assert!(Event::transfer(h(), loc("A"), loc("B"), vec![line()]).is_ok());
        assert_eq!(
            Event::receipt(h(), loc("A"), vec![]).unwrap_err(),
            EventError::LineCount {
                kind: Kind::Receipt,
                count: 0
            }
        );
        assert!(Event::consumption(h(), loc("A"), vec![line(); MAX_LINES]).is_ok());
        assert!(Event::consumption(h(), loc("A"), vec![line(); MAX_LINES + 1]).is_err());
        let mut parts = Event::consumption(h(), loc("A"), vec![line()])
            .unwrap()
            .into_parts();
        parts.from = None;
        let e = Event::from_parts(parts.clone()).unwrap_err();
        assert_eq!(e.to_string(), "a consumption needs a `from` location");
        parts.from = Some(loc("A"));
        parts.kind = Kind::Scan;
        assert_eq!(
            Event::from_parts(parts.clone()).unwrap_err(),
            EventError::ScanWithLines(1)
        );
        parts.lines.clear();
        assert_eq!(
            Event::from_parts(parts.clone()).unwrap_err(),
            EventError::MissingScan
        );
        let scan = Scan {
            raw: RawScan::from_bytes(b"]d2\x1d01").unwrap(),
            symbology: None,
            decoded: None,
        };
        parts.scan = Some(scan.clone());
        assert!(Event::from_parts(parts.clone()).is_ok());
        parts.kind = Kind::Receipt;
        parts.lines = vec![line()];
        assert_eq!(
            Event::from_parts(parts).unwrap_err(),
            EventError::UnexpectedScan(Kind::Receipt)
        );
        assert_eq!(Event::raw_scan(h(), scan).kind(), Kind::Scan);
    }

    #[test]
    fn line_rules() {
        let serial = line().with_serial(Serial::new("S1").unwrap());
        let mut two = serial.clone();
        two.qty = Quantity::new("2").unwrap();
        let e = Event::receipt(header(), loc("A"), vec![line(), two]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: an item with a serial number counts one unit, so its quantity must be 1, not 2"
        );
        let mut one = serial;
        one.qty = Quantity::new("1.000").unwrap();
        assert!(Event::receipt(header(), loc("A"), vec![one]).is_ok());
        let mut dup = line().with_flag(Flag::Expired);
        dup.flags.push(Flag::Expired);
        assert_eq!(dup.validate(), Err(LineError::DuplicateFlag(Flag::Expired)));
        let mut no_expiry = line().with_flag(Flag::ExpiryDay00);
        no_expiry.expiry = None;
        assert_eq!(
            no_expiry.validate(),
            Err(LineError::FlagNeedsExpiry(Flag::ExpiryDay00))
        );
    }

    #[test]
    fn version_errors_are_clear() {
        let e = Event::from_json(br#"{"id": "x", "v": 2, "future": true}"#).unwrap_err();
        assert_eq!(e.to_string(), "unsupported event schema version 2");
        let e = serde_json::from_str::<Event>(r#"{"v": 7}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unsupported event schema version 7"),
            "{e}"
        );
    }

    #[test]
    fn absent_nullable_fields_read_as_null() {
        let json = r#"{"v":1,"id":"01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11","facility":"north",
          "gateway":"gw-north-01","source":"dock-1","seq":1,"captured_at":"2026-11-24T10:15:03Z",
          "kind":"consumption","from":"Cabinet 3","lines":[{"item":{"code":"GLOVE-M"},
          "qty":"2","uom":"Box"}]}"#;
        let ev = Event::from_json(json.as_bytes()).unwrap();
        assert_eq!(ev.to_location(), None);
        assert_eq!(ev.lines().first().map(|l| l.flags.len()), Some(0));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const EXAMPLE: &str = r#"{"v":1,"id":"01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11","facility":"north","gateway":"gw-north-01","source":"dock-1","seq":1042,"captured_at":"2026-11-24T10:15:03.120Z","kind":"transfer","reference":"PO00042","from":"WH/Dock","to":"WH/Stock","lines":[{"item":{"hibc":{"lic":"A123","pcn":"X1","unit":1}},"lot":"A1B2","serial":"S1","expiry":"2027-12-31","qty":"1","uom":"Units","flags":["expired"]}],"scan":null}"#;

        proptest! {
            #[test]
            fn from_json_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..256)) {
                let _ = Event::from_json(&b);
            }

            #[test]
            fn from_json_never_panics_on_mutated_events(
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
            ) {
                prop_assert!(Event::from_json(EXAMPLE.as_bytes()).is_ok());
                let mut bytes = EXAMPLE.as_bytes().to_vec();
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                if let Ok(ev) = Event::from_json(&bytes) {
                    let again = serde_json::to_vec(&ev).unwrap();
                    prop_assert_eq!(Event::from_json(&again).unwrap(), ev);
                }
            }
        }
    }

    #[test]
    fn the_embedded_schema_is_json() {
        let v: serde_json::Value = serde_json::from_str(JSON_SCHEMA_V1).unwrap();
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
}
