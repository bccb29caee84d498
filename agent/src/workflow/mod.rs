//! The scan workflow: one state machine per source that turns scans into events (PRODUCT §2).
//!
//! Architecture invariant: **pure**. No I/O, no clock, no randomness, no async runtime. The
//! caller passes the time (`now`), the date (`today`, for expiry and the GS1 century window)
//! and a supply of event ids, and carries out what a [`Step`] asks (see its contract: events to
//! the spool first, feedback after). Never panics on any input.
//!
//! # Workflows
//!
//! * [`WorkflowKind::Session`] — staff build an event from several scans: a mode, locations, a
//!   reference, items, then `DONE`. It starts with **no mode**: an item scanned before a mode
//!   is rejected with what to scan first, so nothing is ever booked as a receipt by accident.
//!   The source's configured `location` fills the one location a mode needs when none was
//!   scanned (receive → `to`, consume → `from`); a transfer always needs both its locations
//!   scanned, because the configured location cannot say which end it is.
//! * [`WorkflowKind::Consume`] — a point-of-use cabinet: every item scan is at once one
//!   consumption event from the source's location (or one set with `FROM`/`LOC`). `QTY`, `REF`,
//!   `FROM`, `LOC` and `CANCEL` work; `DONE` has nothing to do; other modes are refused.
//! * [`WorkflowKind::Passthrough`] — every scan, decodable or not, commands included, becomes
//!   one `scan` event with the raw bytes (and what it decoded as, when it decodes).
//!
//! # Command barcodes (prefix configurable, default `TM:`)
//!
//! The prefix and keyword are matched without regard to ASCII case; the argument exactly. An AIM
//! symbology identifier before the prefix is ignored.
//!
//! | command | effect |
//! |---|---|
//! | `RECEIVE`, `TRANSFER`, `CONSUME` | set the mode. Refused while the session has lines of another mode (finish or cancel first). |
//! | `FROM:<loc>`, `TO:<loc>` | set a location; allowed before the mode. In a transfer, `from` and `to` must differ. In the consume workflow `TO` is refused. |
//! | `LOC:<loc>` | the one location the mode needs: receive → `to`, consume → `from`; refused in a transfer (which end?) and before a mode. |
//! | `REF:<ref>` | the event's reference (replaces an earlier one). |
//! | `QTY:<n>` | the quantity of the **next accepted item** only (a decimal > 0). A rejected item leaves it pending. |
//! | `DONE` | commits the session as one event: receipt (`to`), transfer (`from`, `to`) or consumption (`from`). |
//! | `CANCEL` | discards the session and clears mode, locations, reference and quantity. |
//!
//! Anything else after the prefix is rejected with the list of commands.
//!
//! # GS1 data that is not an item
//!
//! AI 400 is a reference. AI 414 (with 254) is a location named `GLN` or `GLN.extension`, unless
//! [`Settings::gln_locations`] maps that name to a location. A GS1 location label is placed like
//! `LOC`, except in a transfer, where the first one sets `from` and the second `to` (a shelf
//! label cannot say which end it is; `FROM`/`TO` change them later). AI 30/37 in a scan
//! without an item is the quantity of the next item. A GS1 barcode with none of these and no
//! item (an SSCC alone, say) is rejected.
//!
//! # Items
//!
//! GS1 with (01) or (02), a plain GTIN, HIBC primary or concatenated; lot, serial and expiry
//! come from the symbol. The quantity is the pending one (`QTY`, or a (30)/(37) scan), else the
//! symbol's own count (AI 30/37, HIBC quantity), else 1; the unit is [`Settings::default_uom`].
//! In a session, the same item with the same lot and expiry and no serial adds to its line; the
//! same item and serial twice is rejected. At most [`MAX_LINES`] lines per session.
//!
//! An HIBC secondary symbol completes the primary scanned **just before it** when its link
//! character is that primary's check character: the primary's line is taken back and one line
//! with the lot, serial and expiry is added (with the quantity the primary used). If that line
//! is rejected (expired, say), the primary's line stays taken back. A secondary on its own is
//! rejected. In the consume workflow the primary is already an event, so its secondary is
//! rejected with that explanation: point-of-use cabinets need labels that carry both.
//!
//! # Checks at the edge
//!
//! A scan that does not decode is rejected with the decoder's kind, offset and escaped value.
//! An expiry before `today` is rejected, or accepted with [`Flag::Expired`] when
//! [`Settings::expired`] is [`ExpiredPolicy::Flag`] (a lot that expires today is still good
//! today). A GS1 (17) with day 00 gets [`Flag::ExpiryDay00`]; an HIBC month-only date is read as
//! the month's last day without that flag, since the decoder does not report which HIBC date
//! format a symbol used. An item with a serial and a quantity other than 1 is rejected.
//!
//! # Idle timeout
//!
//! Whenever the machine holds anything (a mode, a location, a reference, a pending quantity,
//! lines), [`Workflow::deadline`] is the last scan plus [`Settings::idle_timeout`]. At the
//! deadline [`Workflow::tick`] commits the lines (or discards them, per
//! [`Settings::idle_action`]) and clears everything back to the start: whoever scans next may be
//! someone else. `DONE`, by contrast, keeps mode and locations for the next batch (reference
//! and pending quantity are cleared). A refused idle commit reopens the session and waits one
//! more timeout before trying again, so a full spool never makes it spin.
//!
//! # Feedback
//!
//! Every scan gets exactly one [`Feedback`]: *accepted* exactly when the step has events,
//! *noted* when the scan changed the session without storing anything, *rejected* with a
//! reason otherwise.

mod command;
mod feedback;
mod input;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use tallyman_protocol::Date;
use tallyman_protocol::barcode::{self, Content, DecodeOptions, MAX_SCAN_LEN, gs1, symbology};
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::event::{
    Decoded, Event, EventId, FacilityId, Flag, GatewayId, Header, Item, Kind, Line, Location,
    MAX_LINES, Quantity, RawScan, Reference, Scan, SourceName, Symbology, Timestamp, Uom,
};

pub use feedback::{Feedback, FeedbackKind, FeedbackResult, Step};

use command::{Command, Parsed};
use input::{DataScan, Input, ItemScan, Secondary, describe};

/// How many bytes of a scan its feedback repeats.
pub const FEEDBACK_SCAN_BYTES: usize = 256;

/// The idle timeout of [`Settings::new`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a source does with its scans (`workflow` in a `[[sources]]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkflowKind {
    Session,
    Consume,
    Passthrough,
}

/// What an idle timeout does with the lines of an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdleAction {
    Commit,
    Discard,
}

/// What an expired lot gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiredPolicy {
    Reject,
    /// Accepted, with [`Flag::Expired`] on its line.
    Flag,
}

/// One source's workflow settings, already validated by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub workflow: WorkflowKind,
    /// The prefix of command barcodes. Empty turns command barcodes off.
    pub command_prefix: String,
    /// The source's own location: `to` of a receipt and `from` of a consumption when none was
    /// scanned.
    pub location: Option<Location>,
    /// Location names for GS1 location labels, keyed by `GLN` or `GLN.extension` (AI 414 +
    /// 254). A label not listed is named by that key.
    pub gln_locations: HashMap<String, Location>,
    pub idle_timeout: Duration,
    pub idle_action: IdleAction,
    pub expired: ExpiredPolicy,
    /// The unit of every line.
    pub default_uom: Uom,
    /// What the scanner sends in place of GS.
    pub gs_aliases: Vec<Vec<u8>>,
    pub facility: FacilityId,
    pub gateway: GatewayId,
    pub source: SourceName,
}

impl Settings {
    /// A session workflow with the defaults: prefix `TM:`, no location, idle timeout
    /// [`DEFAULT_IDLE_TIMEOUT`] committing, expired lots rejected, no GS aliases.
    pub fn new(
        facility: FacilityId,
        gateway: GatewayId,
        source: SourceName,
        default_uom: Uom,
    ) -> Settings {
        Settings {
            workflow: WorkflowKind::Session,
            command_prefix: "TM:".into(),
            location: None,
            gln_locations: HashMap::new(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            idle_action: IdleAction::Commit,
            expired: ExpiredPolicy::Reject,
            default_uom,
            gs_aliases: Vec::new(),
            facility,
            gateway,
            source,
        }
    }
}

/// The modes of a session: which event `DONE` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Receive,
    Transfer,
    Consume,
}

impl Mode {
    pub fn kind(self) -> Kind {
        match self {
            Mode::Receive => Kind::Receipt,
            Mode::Transfer => Kind::Transfer,
            Mode::Consume => Kind::Consumption,
        }
    }

    fn keyword(self) -> &'static str {
        match self {
            Mode::Receive => "RECEIVE",
            Mode::Transfer => "TRANSFER",
            Mode::Consume => "CONSUME",
        }
    }
}

/// Where the event of a ready session goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Receipt { to: Location },
    Transfer { from: Location, to: Location },
    Consumption { from: Location },
}

impl Target {
    fn kind(&self) -> Kind {
        match self {
            Target::Receipt { .. } => Kind::Receipt,
            Target::Transfer { .. } => Kind::Transfer,
            Target::Consumption { .. } => Kind::Consumption,
        }
    }
}

/// How to take back the line an HIBC primary made, when its secondary completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// It added the last line.
    Pop,
    /// It added `qty` to line `index`.
    Subtract { index: usize, qty: Quantity },
    /// It was an event of its own (consume workflow): nothing to take back.
    Consumed,
}

/// An HIBC primary, remembered until the next scan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Primary {
    link: char,
    item: Item,
    /// The pending quantity it used, which its completed line uses too.
    used_pending: Option<Quantity>,
    undo: Undo,
}

/// Everything a source remembers between scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    mode: Option<Mode>,
    from: Option<Location>,
    to: Option<Location>,
    reference: Option<Reference>,
    /// The quantity of the next accepted item.
    next_qty: Option<Quantity>,
    lines: Vec<Line>,
    /// The previous scan, if it was an accepted HIBC primary.
    primary: Option<Primary>,
    last_scan: Option<Timestamp>,
}

impl State {
    /// Whether nothing was set since the start (the HIBC primary only ever pairs with the very
    /// next scan and does not count).
    fn is_clear(&self) -> bool {
        self.mode.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.reference.is_none()
            && self.next_qty.is_none()
            && self.lines.is_empty()
    }
}

/// Which of the two locations a location scan sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    From,
    To,
}

/// A source of event ids: called once per event with its capture time.
pub type Ids<'a> = &'a mut dyn FnMut(Timestamp) -> EventId;

/// The scan workflow of one source. See the module documentation.
#[derive(Debug)]
pub struct Workflow {
    settings: Settings,
    decode: DecodeOptions,
    state: State,
    /// The state before the last step that made events, to restore if they were refused.
    restore: Option<State>,
}

impl Workflow {
    pub fn new(settings: Settings) -> Workflow {
        let decode = DecodeOptions {
            gs_aliases: settings.gs_aliases.clone(),
            today: Date::UNIX_EPOCH,
        };
        Workflow {
            settings,
            decode,
            state: State::default(),
            restore: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many lines the open session has.
    pub fn open_lines(&self) -> usize {
        self.state.lines.len()
    }

    /// One scan: the bytes of one frame, terminator already stripped. `now` is the capture time,
    /// `today` the local date for expiry checks and the GS1 century window, `ids` gives a fresh
    /// event id for each event made.
    pub fn scan(&mut self, raw: &[u8], now: Timestamp, today: Date, ids: Ids<'_>) -> Step {
        self.restore = None;
        self.decode.today = today;
        self.state.last_scan = Some(now);
        let previous_primary = self.state.primary.take();
        let mut step = match self.settings.workflow {
            WorkflowKind::Passthrough => self.passthrough(raw, now, ids),
            WorkflowKind::Session | WorkflowKind::Consume => {
                self.stock_scan(raw, previous_primary, now, today, ids)
            }
        };
        step.feedback.scan = Some(escape_bounded(raw, FEEDBACK_SCAN_BYTES));
        step
    }

    /// When [`Workflow::tick`] has something to do: the idle deadline, if the machine holds
    /// anything.
    pub fn deadline(&self) -> Option<Timestamp> {
        if self.settings.workflow == WorkflowKind::Passthrough || self.state.is_clear() {
            return None;
        }
        let last = self.state.last_scan?;
        let timeout = i64::try_from(self.settings.idle_timeout.as_millis()).unwrap_or(i64::MAX);
        Some(
            Timestamp::from_unix_millis(last.unix_millis().saturating_add(timeout))
                .unwrap_or(Timestamp::MAX),
        )
    }

    /// Apply the idle timeout if its deadline has passed: commit or discard the open lines and
    /// clear the session. `None` if there is nothing to do yet.
    pub fn tick(&mut self, now: Timestamp, ids: Ids<'_>) -> Option<Step> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        self.restore = None;
        self.state.primary = None;
        let idle = format!("idle for {}", seconds(self.settings.idle_timeout));
        let count = self.state.lines.len();
        let kind = self.mode().map(|m| FeedbackKind::of(m.kind()));
        if count == 0 {
            let what = self.holdings();
            self.state = State::default();
            return Some(self.reply(
                FeedbackResult::Noted,
                None,
                format!("{idle}: cleared {what}"),
            ));
        }
        let noun = self.noun();
        match self.settings.idle_action {
            IdleAction::Discard => {
                self.state = State::default();
                Some(self.reply(
                    FeedbackResult::Noted,
                    kind,
                    format!("{idle}: discarded the {noun} of {}", lines(count)),
                ))
            }
            IdleAction::Commit => {
                let built = self
                    .target()
                    .and_then(|t| self.build(&t, self.state.lines.clone(), now, ids));
                match built {
                    Ok(event) => {
                        let mut snapshot = self.state.clone();
                        // Retried only after one more timeout if the spool refuses it.
                        snapshot.last_scan = Some(now);
                        self.state = State::default();
                        Some(self.accepted(
                            kind,
                            format!("{idle}: committed the {noun} of {}", lines(count)),
                            event,
                            snapshot,
                            format!(
                                "the {noun} of {} stays open: scan {}DONE to try again",
                                lines(count),
                                self.settings.command_prefix
                            ),
                        ))
                    }
                    Err(reason) => {
                        self.state.last_scan = Some(now);
                        Some(self.reply(
                            FeedbackResult::Rejected,
                            kind,
                            format!(
                                "{idle}: could not commit the {noun} of {}: {reason}",
                                lines(count)
                            ),
                        ))
                    }
                }
            }
        }
    }

    /// The outcome of storing the events of the last [`Step`]: `true` once they are durable,
    /// `false` if the spool refused them, which restores the session as it was before that step.
    pub fn committed(&mut self, ok: bool) {
        if let Some(before) = self.restore.take() {
            if !ok {
                self.state = before;
            }
        }
    }

    // ---- scans -------------------------------------------------------------------------------

    fn stock_scan(
        &mut self,
        raw: &[u8],
        previous_primary: Option<Primary>,
        now: Timestamp,
        today: Date,
        ids: Ids<'_>,
    ) -> Step {
        if raw.len() <= MAX_SCAN_LEN {
            let data = match symbology::split(raw) {
                Ok((_, start)) => raw.get(start..).unwrap_or_default(),
                Err(_) => raw,
            };
            match command::parse(data, &self.settings.command_prefix) {
                Parsed::Command(c) => return self.command(c, now, ids),
                Parsed::Invalid(reason) => {
                    return self.reply(
                        FeedbackResult::Rejected,
                        Some(FeedbackKind::Command),
                        reason,
                    );
                }
                Parsed::NotCommand => {}
            }
        }
        let scan = match barcode::decode(raw, &self.decode) {
            Ok(scan) => scan,
            Err(e) => return self.reply(FeedbackResult::Rejected, None, e.to_string()),
        };
        match input::classify(&scan, &self.settings.gln_locations) {
            Err(reason) | Ok(Input::Unused(reason)) => {
                self.reply(FeedbackResult::Rejected, None, reason)
            }
            Ok(Input::Item(item)) => self.item(item, now, today, ids),
            Ok(Input::Secondary(secondary)) => {
                self.secondary(secondary, previous_primary, now, today, ids)
            }
            Ok(Input::Data(data)) => self.data(data),
        }
    }

    fn item(&mut self, item: ItemScan, now: Timestamp, today: Date, ids: Ids<'_>) -> Step {
        let kind = self.item_kind();
        let target = match self.target() {
            Ok(t) => t,
            Err(reason) => return self.reply(FeedbackResult::Rejected, Some(kind), reason),
        };
        let used_pending = self.state.next_qty.clone();
        let qty = used_pending
            .clone()
            .or_else(|| item.qty.clone())
            .unwrap_or_else(Quantity::one);
        match self.record(item, qty, used_pending, &target, now, today, ids) {
            Ok(step) => step,
            Err(reason) => self.reply(FeedbackResult::Rejected, Some(kind), reason),
        }
    }

    /// Record one item line: an event of its own in the consume workflow, a session line
    /// otherwise. Nothing changes on `Err`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        item: ItemScan,
        qty: Quantity,
        used_pending: Option<Quantity>,
        target: &Target,
        now: Timestamp,
        today: Date,
        ids: Ids<'_>,
    ) -> Result<Step, String> {
        let kind = FeedbackKind::of(target.kind());
        let desc = describe(&item.item, item.lot.as_ref(), item.serial.as_ref());
        let (line, note) = self.line(&item, qty.clone(), &desc, today)?;
        let note = note.map(|n| format!("; {n}")).unwrap_or_default();
        if self.settings.workflow == WorkflowKind::Consume {
            let event = self.build(target, vec![line], now, ids)?;
            let snapshot = self.state.clone();
            self.state.next_qty = None;
            if let Some(link) = item.hibc_link {
                self.state.primary = Some(Primary {
                    link,
                    item: item.item,
                    used_pending,
                    undo: Undo::Consumed,
                });
            }
            let at = match target {
                Target::Consumption { from } => format!(" at {from}"),
                _ => String::new(),
            };
            return Ok(self.accepted(
                Some(kind),
                format!("consumed{at}: {desc}, qty {qty}{note}"),
                event,
                snapshot,
                "nothing was recorded: scan the item again".into(),
            ));
        }
        let (number, undo, total) = self.add_line(line, &desc)?;
        self.state.next_qty = None;
        if let Some(link) = item.hibc_link {
            self.state.primary = Some(Primary {
                link,
                item: item.item,
                used_pending,
                undo: undo.clone(),
            });
        }
        let total = match undo {
            Undo::Subtract { .. } => format!(" (line total {total})"),
            Undo::Pop | Undo::Consumed => String::new(),
        };
        Ok(self.reply(
            FeedbackResult::Noted,
            Some(kind),
            format!(
                "{} line {number}: {desc}, qty {qty}{total}{note}",
                self.noun()
            ),
        ))
    }

    /// The line an item makes, after the checks that do not depend on the session.
    fn line(
        &self,
        item: &ItemScan,
        qty: Quantity,
        desc: &str,
        today: Date,
    ) -> Result<(Line, Option<String>), String> {
        if item.serial.is_some() && !qty.is_one() {
            return Err(format!(
                "{desc}: an item with a serial number counts 1, not {qty}"
            ));
        }
        let mut line = Line::new(item.item.clone(), qty, self.settings.default_uom.clone());
        line.lot = item.lot.clone();
        line.serial = item.serial.clone();
        line.expiry = item.expiry;
        let mut note = None;
        if let Some(expiry) = item.expiry {
            if expiry < today {
                match self.settings.expired {
                    ExpiredPolicy::Reject => {
                        return Err(format!("{desc}: expired on {expiry} (today is {today})"));
                    }
                    ExpiredPolicy::Flag => {
                        line = line.with_flag(Flag::Expired);
                        note = Some(format!(
                            "expired on {expiry}, recorded with the flag `expired`"
                        ));
                    }
                }
            }
        }
        if item.day00 {
            line = line.with_flag(Flag::ExpiryDay00);
        }
        line.validate().map_err(|e| format!("{desc}: {e}"))?;
        Ok((line, note))
    }

    /// Add a line to the session, or add its quantity to the same item's line. Returns the
    /// line's number (from 1), how to take it back and the line's quantity now.
    fn add_line(&mut self, line: Line, desc: &str) -> Result<(usize, Undo, Quantity), String> {
        if let Some(serial) = &line.serial {
            if self
                .state
                .lines
                .iter()
                .any(|l| l.item == line.item && l.serial.as_ref() == Some(serial))
            {
                return Err(format!(
                    "{desc}: serial {serial} already scanned in this session"
                ));
            }
        } else if let Some((index, same)) =
            self.state.lines.iter_mut().enumerate().find(|(_, l)| {
                l.serial.is_none()
                    && l.item == line.item
                    && l.lot == line.lot
                    && l.expiry == line.expiry
                    && l.uom == line.uom
                    && l.flags == line.flags
            })
        {
            let total = add_qty(&same.qty, &line.qty).ok_or_else(|| {
                format!(
                    "{desc}: the line would count more than a quantity holds (12 digits before \
                     the decimal point); scan {}DONE, then go on",
                    self.settings.command_prefix
                )
            })?;
            same.qty = total.clone();
            return Ok((
                index + 1,
                Undo::Subtract {
                    index,
                    qty: line.qty,
                },
                total,
            ));
        }
        if self.state.lines.len() >= MAX_LINES {
            return Err(format!(
                "this {} already has {MAX_LINES} lines, the most one event holds: scan {}DONE, \
                 then go on",
                self.noun(),
                self.settings.command_prefix
            ));
        }
        let total = line.qty.clone();
        self.state.lines.push(line);
        Ok((self.state.lines.len(), Undo::Pop, total))
    }

    fn take_back(&mut self, undo: &Undo) {
        match undo {
            Undo::Pop => {
                self.state.lines.pop();
            }
            Undo::Subtract { index, qty } => {
                if let Some(line) = self.state.lines.get_mut(*index) {
                    if let Some(left) = sub_qty(&line.qty, qty) {
                        line.qty = left;
                    }
                }
            }
            Undo::Consumed => {}
        }
    }

    fn secondary(
        &mut self,
        secondary: Secondary,
        previous: Option<Primary>,
        now: Timestamp,
        today: Date,
        ids: Ids<'_>,
    ) -> Step {
        let kind = self.item_kind();
        let primary = match previous {
            Some(p) if p.link == secondary.link => p,
            Some(p) => {
                return self.reply(
                    FeedbackResult::Rejected,
                    Some(kind),
                    format!(
                        "this HIBC secondary label (link {}) does not belong to the primary label \
                         scanned before it (check {}): scan its own primary label, then this one",
                        shown(secondary.link),
                        shown(p.link)
                    ),
                );
            }
            None => {
                return self.reply(
                    FeedbackResult::Rejected,
                    Some(kind),
                    "an HIBC secondary label (lot, serial, expiry) completes its primary label: \
                     scan the primary label, then this one"
                        .into(),
                );
            }
        };
        if primary.undo == Undo::Consumed {
            return self.reply(
                FeedbackResult::Rejected,
                Some(kind),
                "the primary label before it was already recorded as consumed, without lot, \
                 serial or expiry; a consumption point needs labels that carry both \
                 (HIBC concatenated, or GS1)"
                    .into(),
            );
        }
        self.take_back(&primary.undo);
        let qty = primary
            .used_pending
            .clone()
            .or_else(|| secondary.qty.clone())
            .unwrap_or_else(Quantity::one);
        let item = ItemScan {
            item: primary.item,
            lot: secondary.lot,
            serial: secondary.serial,
            expiry: secondary.expiry,
            day00: false,
            qty: secondary.qty,
            hibc_link: None,
        };
        let recorded = self
            .target()
            .and_then(|target| self.record(item, qty, None, &target, now, today, ids));
        match recorded {
            Ok(mut step) => {
                if let Some(reason) = step.feedback.reason.as_mut() {
                    reason.push_str(" (with its primary label)");
                }
                step
            }
            Err(reason) => self.reply(
                FeedbackResult::Rejected,
                Some(kind),
                format!("{reason}; the line of its primary label was taken back too"),
            ),
        }
    }

    fn data(&mut self, data: DataScan) -> Step {
        let kind = if data.location.is_some() {
            FeedbackKind::Location
        } else if data.reference.is_some() {
            FeedbackKind::Reference
        } else {
            FeedbackKind::Quantity
        };
        let mut notes = Vec::new();
        if let Some(location) = data.location {
            let end = match self.scanned_location_end() {
                Ok(end) => end,
                Err(reason) => return self.reply(FeedbackResult::Rejected, Some(kind), reason),
            };
            match self.set_location(end, location) {
                Ok(note) => notes.push(note),
                Err(reason) => return self.reply(FeedbackResult::Rejected, Some(kind), reason),
            }
        }
        if let Some(reference) = data.reference {
            notes.push(self.set_reference(reference));
        }
        if let Some(qty) = data.qty {
            notes.push(format!("quantity {qty} for the next item"));
            self.state.next_qty = Some(qty);
        }
        self.reply(FeedbackResult::Noted, Some(kind), notes.join("; "))
    }

    fn passthrough(&mut self, raw: &[u8], now: Timestamp, ids: Ids<'_>) -> Step {
        let raw_scan = match RawScan::from_bytes(raw) {
            Ok(r) => r,
            Err(e) => {
                let reason = if raw.is_empty() {
                    "an empty scan".to_string()
                } else {
                    e.to_string()
                };
                return self.reply(FeedbackResult::Rejected, Some(FeedbackKind::Scan), reason);
            }
        };
        let scan = barcode::decode(raw, &self.decode);
        let symbology = match &scan {
            Ok(s) => s.symbology.as_ref().map(ToString::to_string),
            Err(_) => symbology::split(raw)
                .ok()
                .and_then(|(id, _)| id)
                .map(|id| id.to_string()),
        }
        .and_then(|s| Symbology::new(s).ok());
        let (decoded, note) = match &scan {
            Ok(s) => {
                let d = match &s.content {
                    Content::Gs1(m) if m.form == gs1::Form::DigitalLink => Decoded::Gs1Dl,
                    Content::Gs1(_) => Decoded::Gs1,
                    Content::Gtin(_) => Decoded::Gtin,
                    Content::Hibc(_) => Decoded::Hibc,
                    Content::Isbt128(_) => Decoded::Isbt128,
                };
                (Some(d), format!("decoded as {}", d.as_str()))
            }
            Err(e) => (None, format!("not decoded: {e}")),
        };
        let event = Event::raw_scan(
            self.header(now, ids),
            Scan {
                raw: raw_scan,
                symbology,
                decoded,
            },
        );
        let snapshot = self.state.clone();
        self.accepted(
            Some(FeedbackKind::Scan),
            format!("scan recorded as read ({note})"),
            event,
            snapshot,
            "nothing was recorded: scan again".into(),
        )
    }

    // ---- commands ----------------------------------------------------------------------------

    fn command(&mut self, command: Command, now: Timestamp, ids: Ids<'_>) -> Step {
        let cmd = Some(FeedbackKind::Command);
        let outcome = match command {
            Command::Mode(mode) => self.set_mode(mode),
            Command::From(text) => Location::new(text)
                .map_err(|e| e.to_string())
                .and_then(|loc| self.set_location(End::From, loc)),
            Command::To(text) => Location::new(text)
                .map_err(|e| e.to_string())
                .and_then(|loc| {
                    if self.settings.workflow == WorkflowKind::Consume {
                        Err(self.consume_has_no_to())
                    } else {
                        self.set_location(End::To, loc)
                    }
                }),
            Command::Loc(text) => Location::new(text)
                .map_err(|e| e.to_string())
                .and_then(|loc| {
                    let end = self.loc_end()?;
                    self.set_location(end, loc)
                }),
            Command::Ref(text) => Reference::new(text)
                .map(|r| self.set_reference(r))
                .map_err(|e| e.to_string()),
            Command::Qty(text) => Quantity::new(text)
                .map(|q| {
                    let note = format!("quantity {q} for the next item");
                    self.state.next_qty = Some(q);
                    note
                })
                .map_err(|e| e.to_string()),
            Command::Done => return self.done(now, ids),
            Command::Cancel => Ok(self.cancel()),
        };
        match outcome {
            Ok(note) => self.reply(FeedbackResult::Noted, cmd, note),
            Err(reason) => self.reply(FeedbackResult::Rejected, cmd, reason),
        }
    }

    fn set_mode(&mut self, mode: Mode) -> Result<String, String> {
        let p = &self.settings.command_prefix;
        if self.settings.workflow == WorkflowKind::Consume {
            if mode == Mode::Consume {
                return Ok("this scanner records every item as consumed when it is scanned".into());
            }
            return Err(format!(
                "this scanner is a consumption point: it records consumption only, not {p}{}",
                mode.keyword()
            ));
        }
        if let Some(current) = self.state.mode {
            if current == mode {
                return Ok(format!(
                    "already in {p}{}; {}",
                    mode.keyword(),
                    self.status()
                ));
            }
            if !self.state.lines.is_empty() {
                return Err(format!(
                    "finish the open {} of {} first: {p}DONE, or {p}CANCEL to discard it",
                    self.noun(),
                    lines(self.state.lines.len())
                ));
            }
        }
        self.state.mode = Some(mode);
        Ok(format!("mode {}; {}", mode.keyword(), self.status()))
    }

    /// Where `LOC` puts its location.
    fn loc_end(&self) -> Result<End, String> {
        let p = &self.settings.command_prefix;
        match self.mode() {
            Some(Mode::Receive) => Ok(End::To),
            Some(Mode::Consume) => Ok(End::From),
            Some(Mode::Transfer) => Err(format!(
                "a transfer has two locations: scan {p}FROM:<location> and {p}TO:<location>"
            )),
            None => Err(format!(
                "{p}LOC sets the location the mode needs: scan the mode first ({p}RECEIVE or \
                 {p}CONSUME), or use {p}FROM:<location> / {p}TO:<location>"
            )),
        }
    }

    /// Where a GS1 location label puts its location: like `LOC`, but in a transfer the first
    /// label sets `from` and the second `to`.
    fn scanned_location_end(&self) -> Result<End, String> {
        let p = &self.settings.command_prefix;
        match self.mode() {
            Some(Mode::Transfer) => match (&self.state.from, &self.state.to) {
                (None, _) => Ok(End::From),
                (Some(_), None) => Ok(End::To),
                (Some(from), Some(to)) => Err(format!(
                    "this transfer has both its locations (from {from}, to {to}): scan \
                     {p}FROM:<location> or {p}TO:<location> to change one"
                )),
            },
            Some(_) => self.loc_end(),
            None => Err(format!(
                "scan the mode first ({p}RECEIVE, {p}TRANSFER or {p}CONSUME): it decides whether \
                 this location is where goods come from or go to"
            )),
        }
    }

    fn set_location(&mut self, end: End, location: Location) -> Result<String, String> {
        if self.mode() == Some(Mode::Transfer) {
            let other = match end {
                End::From => &self.state.to,
                End::To => &self.state.from,
            };
            if other.as_ref() == Some(&location) {
                return Err(format!(
                    "from and to of a transfer must differ, and both would be {location}"
                ));
            }
        }
        let unused = match (self.mode(), end) {
            (Some(Mode::Receive), End::From) => "; a receipt uses only its `to` location",
            (Some(Mode::Consume), End::To) => "; a consumption uses only its `from` location",
            _ => "",
        };
        let (name, slot) = match end {
            End::From => ("from", &mut self.state.from),
            End::To => ("to", &mut self.state.to),
        };
        *slot = Some(location.clone());
        let open = if self.state.lines.is_empty() {
            String::new()
        } else {
            format!(
                " (for the whole {} of {})",
                self.noun(),
                lines(self.state.lines.len())
            )
        };
        Ok(format!(
            "{name} {location}{open}{unused}; {}",
            self.status()
        ))
    }

    fn set_reference(&mut self, reference: Reference) -> String {
        let note = match &self.state.reference {
            Some(old) if *old != reference => format!("reference {reference} (was {old})"),
            _ => format!("reference {reference}"),
        };
        self.state.reference = Some(reference);
        note
    }

    fn consume_has_no_to(&self) -> String {
        let p = &self.settings.command_prefix;
        format!(
            "a consumption has no destination; {p}FROM:<location> or {p}LOC:<location> sets \
             where goods are used"
        )
    }

    fn done(&mut self, now: Timestamp, ids: Ids<'_>) -> Step {
        if self.settings.workflow == WorkflowKind::Consume {
            return self.reply(
                FeedbackResult::Noted,
                Some(FeedbackKind::Command),
                "nothing to commit: this scanner records each item as it is scanned".into(),
            );
        }
        if self.state.lines.is_empty() {
            return self.reply(
                FeedbackResult::Rejected,
                Some(FeedbackKind::Command),
                format!("nothing to commit: no item scanned; {}", self.status()),
            );
        }
        let count = self.state.lines.len();
        let built = self.target().and_then(|t| {
            self.build(&t, self.state.lines.clone(), now, ids)
                .map(|e| (t, e))
        });
        let (target, event) = match built {
            Ok(b) => b,
            Err(reason) => {
                return self.reply(
                    FeedbackResult::Rejected,
                    Some(FeedbackKind::Command),
                    reason,
                );
            }
        };
        let snapshot = self.state.clone();
        self.state.lines.clear();
        self.state.reference = None;
        self.state.next_qty = None;
        let noun = target.kind().as_str();
        let whither = match &target {
            Target::Receipt { to } => format!("to {to}"),
            Target::Transfer { from, to } => format!("from {from} to {to}"),
            Target::Consumption { from } => format!("at {from}"),
        };
        self.accepted(
            Some(FeedbackKind::of(target.kind())),
            format!("{noun} of {} {whither} committed", lines(count)),
            event,
            snapshot,
            format!(
                "the {noun} of {} stays open: scan {}DONE to try again",
                lines(count),
                self.settings.command_prefix
            ),
        )
    }

    fn cancel(&mut self) -> String {
        let count = self.state.lines.len();
        let noun = self.noun();
        let note = if count > 0 {
            format!("cancelled: discarded the {noun} of {}", lines(count))
        } else if self.state.is_clear() {
            "nothing to cancel".to_string()
        } else {
            format!("cancelled: cleared {}", self.holdings())
        };
        self.state = State {
            last_scan: self.state.last_scan,
            ..State::default()
        };
        note
    }

    // ---- state -------------------------------------------------------------------------------

    fn mode(&self) -> Option<Mode> {
        match self.settings.workflow {
            WorkflowKind::Consume => Some(Mode::Consume),
            WorkflowKind::Session | WorkflowKind::Passthrough => self.state.mode,
        }
    }

    /// What the event of the session is called ("receipt"), or "session" before a mode.
    fn noun(&self) -> &'static str {
        self.mode().map_or("session", |m| m.kind().as_str())
    }

    fn item_kind(&self) -> FeedbackKind {
        self.mode()
            .map_or(FeedbackKind::Item, |m| FeedbackKind::of(m.kind()))
    }

    /// Where the event goes, or what to scan first.
    fn target(&self) -> Result<Target, String> {
        let p = &self.settings.command_prefix;
        let configured = self.settings.location.as_ref();
        let Some(mode) = self.mode() else {
            return Err(format!(
                "scan a mode first: {p}RECEIVE, {p}TRANSFER or {p}CONSUME"
            ));
        };
        match mode {
            Mode::Receive => match self.state.to.as_ref().or(configured) {
                Some(to) => Ok(Target::Receipt { to: to.clone() }),
                None => Err(format!(
                    "scan where the goods are received first: {p}TO:<location>, \
                     {p}LOC:<location> or a GS1 location label"
                )),
            },
            Mode::Consume => match self.state.from.as_ref().or(configured) {
                Some(from) => Ok(Target::Consumption { from: from.clone() }),
                None => Err(format!(
                    "scan where the goods are used first: {p}FROM:<location>, \
                     {p}LOC:<location> or a GS1 location label"
                )),
            },
            Mode::Transfer => match (&self.state.from, &self.state.to) {
                (None, _) => Err(format!(
                    "scan where the goods come from first: {p}FROM:<location> or a GS1 location \
                     label"
                )),
                (Some(_), None) => Err(format!(
                    "scan where the goods go first: {p}TO:<location> or a GS1 location label"
                )),
                (Some(from), Some(to)) if from == to => Err(format!(
                    "from and to are both {from}: scan {p}TO:<location> with another location"
                )),
                (Some(from), Some(to)) => Ok(Target::Transfer {
                    from: from.clone(),
                    to: to.clone(),
                }),
            },
        }
    }

    /// The session in a few words, with what to scan next.
    fn status(&self) -> String {
        let p = &self.settings.command_prefix;
        match self.target() {
            Err(next) => next,
            Ok(target) => {
                let whither = match &target {
                    Target::Receipt { to } => format!("receipt to {to}"),
                    Target::Transfer { from, to } => format!("transfer from {from} to {to}"),
                    Target::Consumption { from } => format!("consumption at {from}"),
                };
                let reference = self
                    .state
                    .reference
                    .as_ref()
                    .map(|r| format!(", reference {r}"))
                    .unwrap_or_default();
                if self.settings.workflow == WorkflowKind::Consume {
                    return format!("{whither}{reference}: scan items");
                }
                format!(
                    "{whither}{reference}, {}: scan items, then {p}DONE",
                    lines(self.state.lines.len())
                )
            }
        }
    }

    /// What the machine holds besides lines, for "cleared …" messages.
    fn holdings(&self) -> String {
        let s = &self.state;
        let mut parts = Vec::new();
        if let Some(mode) = s.mode {
            parts.push(format!("mode {}", mode.keyword()));
        }
        if let Some(from) = &s.from {
            parts.push(format!("from {from}"));
        }
        if let Some(to) = &s.to {
            parts.push(format!("to {to}"));
        }
        if let Some(r) = &s.reference {
            parts.push(format!("reference {r}"));
        }
        if let Some(q) = &s.next_qty {
            parts.push(format!("quantity {q}"));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
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

    fn build(
        &self,
        target: &Target,
        lines: Vec<Line>,
        now: Timestamp,
        ids: Ids<'_>,
    ) -> Result<Event, String> {
        let header = self.header(now, ids);
        let event = match target.clone() {
            Target::Receipt { to } => Event::receipt(header, to, lines),
            Target::Transfer { from, to } => Event::transfer(header, from, to, lines),
            Target::Consumption { from } => Event::consumption(header, from, lines),
        };
        event
            .map(|e| e.with_reference(self.state.reference.clone()))
            .map_err(|e| format!("the event is not valid: {e}"))
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
                lines: self.state.lines.len(),
            },
            events: Vec::new(),
            if_refused: String::new(),
            lines_if_refused: self.state.lines.len(),
        }
    }

    /// A step with an event; `before` is the state to restore if the spool refuses it.
    fn accepted(
        &mut self,
        kind: Option<FeedbackKind>,
        reason: String,
        event: Event,
        before: State,
        if_refused: String,
    ) -> Step {
        let lines_if_refused = before.lines.len();
        self.restore = Some(before);
        let mut step = self.reply(FeedbackResult::Accepted, kind, reason);
        step.feedback.event_id = Some(event.id());
        step.events.push(event);
        step.if_refused = if_refused;
        step.lines_if_refused = lines_if_refused;
        step
    }
}

/// `1 line`, `3 lines`.
fn lines(n: usize) -> String {
    if n == 1 {
        "1 line".into()
    } else {
        format!("{n} lines")
    }
}

/// A duration as people read it: `300 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

/// An HIBC check or link character in a message (a space is invisible).
fn shown(c: char) -> String {
    if c == ' ' {
        "a space".into()
    } else {
        format!("'{c}'")
    }
}

/// Quantities add as exact decimals (millionths); `None` past 12 integer digits.
fn add_qty(a: &Quantity, b: &Quantity) -> Option<Quantity> {
    from_millionths(a.millionths().checked_add(b.millionths())?)
}

/// `a - b`, if it is more than zero.
fn sub_qty(a: &Quantity, b: &Quantity) -> Option<Quantity> {
    from_millionths(a.millionths().checked_sub(b.millionths())?)
}

fn from_millionths(m: u64) -> Option<Quantity> {
    Quantity::new(format!("{}.{:06}", m / 1_000_000, m % 1_000_000)).ok()
}
