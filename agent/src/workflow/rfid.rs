//! The RFID reader's scan machine: what a source with `decoder = "rfid"` does with reader lines.
//!
//! Architecture invariant: **pure**, like the barcode [`Workflow`](super::Workflow): no I/O, no
//! clock; the caller passes the time of each read. Never panics on any input.
//!
//! Each frame is one reader line (the formats of [`tallyman_protocol::rfid::reader`]: bare hex,
//! `0x` hex, bytes or words with separators, Alien `Tag:… Ant:n`, a PC word in front or a CRC
//! behind). What a read becomes depends on the [`TagMode`]:
//!
//! * [`TagMode::Consume`] — a point-of-use reader (a read pad, a drop slot, a cabinet that sees
//!   an item when it is taken out): each new SGTIN tag is one consumption event at the
//!   location, one line with the GTIN the SGTIN gives, its serial, quantity 1 and the default
//!   unit.
//! * [`TagMode::Portal`] — a dock door: each SGTIN tag passing is one transfer `from` → `to`,
//!   with the same line.
//! * [`TagMode::Passthrough`] — each new read is one `scan` event with the line as read, marked
//!   `decoded: epc` when it decodes. Lines that do not decode are passed through too: nothing
//!   is dropped.
//!
//! In consume and portal mode a tag that is not a trade item (SSCC, SGLN, GRAI, GIAI) is
//! rejected with what it is, and a line that does not decode (a factory `E2…` TID, GID-96, an
//! ISO UII, noise) is rejected with the decoder's reason: kind, offset and escaped value.
//!
//! # De-duplication window
//!
//! A reader reports a tag over and over while it is in its field, from every antenna that sees
//! it. A tag read again within [`TagSettings::dedup_window`] of its **last** read counts once:
//! the repeat gets *noted* feedback ("already read …") and makes no event. The window slides —
//! every repeat restarts it — so a tag lying in front of the reader stays one read for as long
//! as the reader keeps seeing it, and counts again only once it has been out of sight for a
//! whole window. A window of zero turns de-duplication off.
//!
//! What counts as "the same tag" depends on the mode:
//!
//! * consume and portal: the EPC. Stock moves once per tag: a tag seen by two antennas of one
//!   door is still one pass.
//! * passthrough: the EPC **and the antenna**. Which antenna saw a tag is information there
//!   (direction, shelf), so each antenna's first read is passed on.
//!
//! Only reads that made an event are remembered; rejected tags are rejected at every read. A
//! read whose event the spool refused is forgotten ([`Machine::committed`]`(false)`, or
//! [`Machine::not_stored`] for a refusal that comes after the machine went on), so that the
//! tag's next read tries again.
//!
//! The table is bounded by [`MAX_TAGS`]: entries whose window has passed are dropped at every
//! read and at [`Machine::tick`] (at [`Machine::deadline`]), so memory falls back when tags
//! leave; when the table is full of live entries, the tag read longest ago is forgotten first
//! (it would count again if read again). The table is in memory only: after a restart every tag
//! in the field counts as new.
//!
//! Times come from the caller's wall clock. A read timed before the tag's last read (the clock
//! was set back) counts as within the window, so a clock step never turns the tags lying in the
//! field into a burst of events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tallyman_protocol::Date;
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::event::{
    Decoded, Event, EventId, FacilityId, GatewayId, Gtin14, Header, Item, Line, Location, Quantity,
    RawScan, Scan, Serial, SourceName, Timestamp, Uom,
};
use tallyman_protocol::rfid::epc::{Epc, Scheme};
use tallyman_protocol::rfid::{self, reader};

use super::input::describe;
use super::{FEEDBACK_SCAN_BYTES, Feedback, FeedbackKind, FeedbackResult, Ids, Machine, Step};

/// Most tags the de-duplication table remembers.
pub const MAX_TAGS: usize = 65_536;

/// Events whose tag can still be forgotten when the spool refuses them late
/// ([`Machine::not_stored`]): more than a source driver keeps in flight.
pub const RECENT_EVENTS: usize = 1024;

/// What each new tag read becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagMode {
    /// One consumption at `location` per tag.
    Consume { location: Location },
    /// One transfer `from` → `to` per tag passing.
    Portal { from: Location, to: Location },
    /// One raw `scan` event per read.
    Passthrough,
}

/// One RFID source's settings, already validated by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSettings {
    pub facility: FacilityId,
    pub gateway: GatewayId,
    pub source: SourceName,
    /// The unit of every line.
    pub default_uom: Uom,
    /// A tag read again within this time of its last read counts once; zero: every read
    /// counts.
    pub dedup_window: Duration,
    pub mode: TagMode,
}

/// What identifies "the same tag" in the de-duplication table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The EPC as upper-case hex.
    epc: Box<str>,
    /// The antenna, in passthrough only.
    antenna: Option<u16>,
}

/// A remembered tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// Its last read, Unix milliseconds.
    last: i64,
    /// Its place in [`Table::order`].
    stamp: u64,
    /// The event its counted read made.
    event: EventId,
}

/// The de-duplication table: tags by key, and the same keys from the least recently read.
#[derive(Debug)]
struct Table {
    seen: HashMap<Key, Seen>,
    order: BTreeMap<u64, Key>,
    next_stamp: u64,
    capacity: usize,
    /// The window, in milliseconds; 0 = the table stays empty.
    window: i64,
}

impl Table {
    fn new(window: Duration, capacity: usize) -> Table {
        Table {
            seen: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            capacity: capacity.max(1),
            window: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn stamp(&mut self) -> u64 {
        let s = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        s
    }

    /// When the least recently read tag's window ends.
    fn first_expiry(&self) -> Option<i64> {
        let (_, key) = self.order.first_key_value()?;
        let seen = self.seen.get(key)?;
        Some(seen.last.saturating_add(self.window))
    }

    /// Whether a read at `at` of a tag last read at `last` is within the window.
    fn live(&self, last: i64, at: i64) -> bool {
        at.saturating_sub(last) < self.window
    }

    /// If `key` was read within the window, refresh it (the window slides) and say how long
    /// ago its last read was, in milliseconds.
    fn repeat(&mut self, key: &Key, at: i64) -> Option<i64> {
        let seen = *self.seen.get(key)?;
        if !self.live(seen.last, at) {
            return None;
        }
        let stamp = self.stamp();
        self.order.remove(&seen.stamp);
        self.order.insert(stamp, key.clone());
        // A read timed before the last one (the clock was set back) restarts the window at
        // the new time, so that the entry does not outlive the tag by the size of the step.
        self.seen.insert(
            key.clone(),
            Seen {
                last: at,
                stamp,
                event: seen.event,
            },
        );
        Some(at.saturating_sub(seen.last).max(0))
    }

    /// Remember a counted read; the least recently read tag goes if the table is full.
    fn insert(&mut self, key: Key, at: i64, event: EventId) {
        if self.window == 0 {
            return;
        }
        self.remove(&key);
        self.prune(at);
        while self.seen.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
        }
        let stamp = self.stamp();
        self.order.insert(stamp, key.clone());
        self.seen.insert(
            key,
            Seen {
                last: at,
                stamp,
                event,
            },
        );
    }

    /// Drop the tags whose window has ended by `at`, least recently read first.
    fn prune(&mut self, at: i64) {
        while let Some((_, key)) = self.order.first_key_value() {
            if self
                .seen
                .get(key)
                .is_some_and(|s| s.last.saturating_add(self.window) > at)
            {
                break;
            }
            if let Some((_, key)) = self.order.pop_first() {
                self.seen.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(seen) = self.seen.remove(key) {
            self.order.remove(&seen.stamp);
        }
    }

    /// Forget `key` if its counted read made `event`.
    fn forget(&mut self, key: &Key, event: EventId) {
        if self.seen.get(key).is_some_and(|s| s.event == event) {
            self.remove(key);
        }
    }
}

/// Where the event of a stock mode goes.
#[derive(Debug)]
enum Stock {
    Consume(Location),
    Portal(Location, Location),
}

/// The RFID reader's scan machine. See the module documentation.
#[derive(Debug)]
pub struct TagMachine {
    settings: TagSettings,
    table: Table,
    /// The tags of the latest events, to forget if the spool refuses them.
    recent: VecDeque<(EventId, Key)>,
    /// The event of the last step, until its outcome is reported.
    last_event: Option<EventId>,
}

impl TagMachine {
    pub fn new(settings: TagSettings) -> TagMachine {
        TagMachine::with_capacity(settings, MAX_TAGS)
    }

    /// A machine whose de-duplication table holds at most `capacity` tags (at least 1).
    pub fn with_capacity(settings: TagSettings, capacity: usize) -> TagMachine {
        let table = Table::new(settings.dedup_window, capacity);
        TagMachine {
            settings,
            table,
            recent: VecDeque::new(),
            last_event: None,
        }
    }

    pub fn settings(&self) -> &TagSettings {
        &self.settings
    }

    /// How many tags the de-duplication table holds.
    pub fn remembered(&self) -> usize {
        self.table.seen.len()
    }

    /// One reader line at `now`.
    pub fn read(&mut self, line: &[u8], now: Timestamp, ids: Ids<'_>) -> Step {
        self.last_event = None;
        let at = now.unix_millis();
        self.table.prune(at);
        let mut step = match self.settings.mode.clone() {
            TagMode::Passthrough => self.passthrough(line, now, ids),
            TagMode::Consume { location } => self.stock(line, Stock::Consume(location), now, ids),
            TagMode::Portal { from, to } => self.stock(line, Stock::Portal(from, to), now, ids),
        };
        step.feedback.scan = Some(escape_bounded(line, FEEDBACK_SCAN_BYTES));
        step
    }

    /// When the least recently read tag leaves the table.
    pub fn deadline(&self) -> Option<Timestamp> {
        let expiry = self.table.first_expiry()?;
        Some(Timestamp::from_unix_millis(expiry).unwrap_or(Timestamp::MAX))
    }

    /// Forget the tags whose window has ended. Never gives feedback.
    pub fn tick(&mut self, now: Timestamp) {
        self.last_event = None;
        self.table.prune(now.unix_millis());
    }

    /// The outcome of storing the last step's events: a refusal forgets the tag, so that its
    /// next read tries again.
    pub fn committed(&mut self, ok: bool) {
        if let Some(event) = self.last_event.take() {
            if !ok {
                self.not_stored(&[event]);
            }
        }
    }

    /// Events the spool refused, after the machine went on: their tags are forgotten.
    pub fn not_stored(&mut self, events: &[EventId]) {
        for event in events {
            if let Some(i) = self.recent.iter().position(|(e, _)| e == event) {
                if let Some((_, key)) = self.recent.remove(i) {
                    self.table.forget(&key, *event);
                }
            }
        }
    }

    // ---- the modes ---------------------------------------------------------------------------

    fn kind(&self) -> FeedbackKind {
        match self.settings.mode {
            TagMode::Consume { .. } => FeedbackKind::Consumption,
            TagMode::Portal { .. } => FeedbackKind::Transfer,
            TagMode::Passthrough => FeedbackKind::Scan,
        }
    }

    fn stock(&mut self, line: &[u8], target: Stock, now: Timestamp, ids: Ids<'_>) -> Step {
        let (read, epc) = match rfid::decode_line(line) {
            Ok(decoded) => decoded,
            Err(e) => return self.reply(FeedbackResult::Rejected, None, e.to_string()),
        };
        let item = match trade_item(&epc, &self.settings.default_uom) {
            Ok(item) => item,
            Err(reason) => return self.reply(FeedbackResult::Rejected, None, reason),
        };
        let desc = format!(
            "{} ({})",
            describe(&item.item, None, item.serial.as_ref()),
            epc.pure_identity
        );
        let key = Key {
            epc: read.epc_hex.into_boxed_str(),
            antenna: None,
        };
        if let Some(ago) = self.table.repeat(&key, now.unix_millis()) {
            return self.repeat(ago, &desc);
        }
        let header = self.header(now, ids);
        let (event, done) = match target {
            Stock::Consume(location) => {
                let done = format!("consumed at {location}");
                (Event::consumption(header, location, vec![item]), done)
            }
            Stock::Portal(from, to) => {
                let done = format!("moved from {from} to {to}");
                (Event::transfer(header, from, to, vec![item]), done)
            }
        };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                return self.reply(
                    FeedbackResult::Rejected,
                    Some(self.kind()),
                    format!("the event is not valid: {e}"),
                );
            }
        };
        let note = warnings(&epc);
        self.accepted(key, now, event, format!("{done}: {desc}{note}"))
    }

    fn passthrough(&mut self, line: &[u8], now: Timestamp, ids: Ids<'_>) -> Step {
        let raw = match RawScan::from_bytes(line) {
            Ok(r) => r,
            Err(e) => {
                let reason = if line.is_empty() {
                    "an empty line".to_string()
                } else {
                    e.to_string()
                };
                return self.reply(FeedbackResult::Rejected, Some(FeedbackKind::Scan), reason);
            }
        };
        let decoded = rfid::decode_line(line);
        // A line that names a tag is de-duplicated even when its EPC does not decode.
        let read = match &decoded {
            Ok((read, _)) => Some(read.clone()),
            Err(_) => reader::parse_line(line).ok(),
        };
        let key = read.map(|r| Key {
            epc: r.epc_hex.into_boxed_str(),
            antenna: r.antenna,
        });
        let (what, note) = match &decoded {
            Ok((_, epc)) => (
                epc.pure_identity.clone(),
                format!("decoded as epc{}", warnings(epc)),
            ),
            Err(e) => (
                key.as_ref().map_or_else(
                    || escape_bounded(line, FEEDBACK_SCAN_BYTES),
                    |k| format!("EPC {}", k.epc),
                ),
                format!("not decoded: {e}"),
            ),
        };
        let antenna = key
            .as_ref()
            .and_then(|k| k.antenna)
            .map(|a| format!(" on antenna {a}"))
            .unwrap_or_default();
        if let Some(key) = &key {
            if let Some(ago) = self.table.repeat(key, now.unix_millis()) {
                return self.repeat(ago, &format!("{what}{antenna}"));
            }
        }
        let event = Event::raw_scan(
            self.header(now, ids),
            Scan {
                raw,
                symbology: None,
                decoded: decoded.is_ok().then_some(Decoded::Epc),
            },
        );
        let reason = format!("tag read recorded as read{antenna} ({note})");
        match key {
            Some(key) => self.accepted(key, now, event, reason),
            None => {
                let mut step = self.reply(FeedbackResult::Accepted, Some(self.kind()), reason);
                step.feedback.event_id = Some(event.id());
                step.events.push(event);
                step
            }
        }
    }

    // ---- events and replies ------------------------------------------------------------------

    fn header(&self, now: Timestamp, ids: Ids<'_>) -> Header {
        Header {
            id: ids(now),
            facility: self.settings.facility.clone(),
            gateway: self.settings.gateway.clone(),
            source: self.settings.source.clone(),
            // The spool numbers events in the order it accepts them.
            seq: 0,
            captured_at: now,
        }
    }

    fn repeat(&self, ago_ms: i64, what: &str) -> Step {
        self.reply(
            FeedbackResult::Noted,
            Some(self.kind()),
            format!(
                "already read {} ago: {what}; a tag read again within {} counts once",
                millis(ago_ms),
                millis(self.table.window)
            ),
        )
    }

    fn reply(&self, result: FeedbackResult, kind: Option<FeedbackKind>, reason: String) -> Step {
        Step {
            feedback: Feedback {
                source: self.settings.source.clone(),
                scan: None,
                result,
                event_id: None,
                kind,
                reason: Some(reason),
                lines: 0,
                spool_full: false,
            },
            events: Vec::new(),
            if_refused: "nothing was recorded; the tag's next read tries again".into(),
            lines_if_refused: 0,
        }
    }

    /// A step with `event`, the counted read of `key`.
    fn accepted(&mut self, key: Key, now: Timestamp, event: Event, reason: String) -> Step {
        let id = event.id();
        self.table.insert(key.clone(), now.unix_millis(), id);
        if self.table.window > 0 {
            if self.recent.len() >= RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back((id, key));
        }
        self.last_event = Some(id);
        let mut step = self.reply(FeedbackResult::Accepted, Some(self.kind()), reason);
        step.feedback.event_id = Some(id);
        step.events.push(event);
        step
    }
}

impl Machine for TagMachine {
    fn source(&self) -> &SourceName {
        &self.settings.source
    }

    /// No session: a refused append only forgets its tag.
    fn pipelined(&self) -> bool {
        true
    }

    fn scan(&mut self, raw: &[u8], now: Timestamp, _today: Date, ids: Ids<'_>) -> Step {
        self.read(raw, now, ids)
    }

    fn deadline(&self) -> Option<Timestamp> {
        TagMachine::deadline(self)
    }

    fn tick(&mut self, now: Timestamp, _ids: Ids<'_>) -> Option<Step> {
        TagMachine::tick(self, now);
        None
    }

    fn committed(&mut self, ok: bool) {
        TagMachine::committed(self, ok);
    }

    fn not_stored(&mut self, events: &[EventId]) {
        TagMachine::not_stored(self, events);
    }

    fn open_lines(&self) -> usize {
        0
    }
}

/// The line an SGTIN tag stands for, or why the tag is not a trade item.
fn trade_item(epc: &Epc, uom: &Uom) -> Result<Line, String> {
    let what = match epc.scheme {
        Scheme::Sgtin96 | Scheme::Sgtin198 => {
            let gtin = epc
                .gtin
                .as_deref()
                .ok_or_else(|| format!("the SGTIN {} gives no GTIN", epc.pure_identity))
                .and_then(|g| Gtin14::new(g).map_err(|e| e.to_string()))?;
            let mut line = Line::new(Item::Gtin(gtin), Quantity::one(), uom.clone());
            if let Some(serial) = &epc.serial {
                line = line.with_serial(Serial::new(serial.clone()).map_err(|e| e.to_string())?);
            }
            return Ok(line);
        }
        Scheme::Sscc96 => ("an SSCC-96", "is a logistic unit (a pallet or a case)"),
        Scheme::Sgln96 => ("an SGLN-96", "names a location"),
        Scheme::Grai96 => ("a GRAI-96", "is a returnable asset"),
        Scheme::Giai96 => ("a GIAI-96", "is an individual asset"),
    };
    let (a_scheme, is) = what;
    Err(format!(
        "{a_scheme} tag ({}) {is}, not a trade item",
        epc.pure_identity
    ))
}

/// The decoder's warnings, as a note after the feedback's sentence.
fn warnings(epc: &Epc) -> String {
    epc.warnings.iter().map(|w| format!("; {w}")).collect()
}

/// Milliseconds as people read them: `250 ms`, `2 s`, `1.25 s`.
fn millis(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{} s", ms / 1000, frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
#[path = "rfid_tests.rs"]
mod tests;
