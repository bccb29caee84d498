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
//! An expiry before `today` is rejected, or accepted with [`Flag::Expired`](tallyman_protocol::event::Flag::Expired) when
//! [`Settings::expired`] is [`ExpiredPolicy::Flag`] (a lot that expires today is still good
//! today). A GS1 (17) with day 00 gets [`Flag::ExpiryDay00`](tallyman_protocol::event::Flag::ExpiryDay00); an HIBC month-only date is read as
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
pub mod rfid;
mod scans;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use tallyman_protocol::Date;
use tallyman_protocol::barcode::DecodeOptions;
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Header, Item, Kind, Line, Location, MAX_LINES, Quantity,
    Reference, SourceName, Timestamp, Uom,
};

pub use feedback::{Feedback, FeedbackKind, FeedbackResult, Step};

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
    /// Accepted, with [`Flag::Expired`](tallyman_protocol::event::Flag::Expired) on its line.
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

/// A source's scan state machine, as the source driver (`sources::driver`) runs it: the barcode
/// [`Workflow`] and the RFID reader's machine are both one. The [`Step`] contract holds for
/// every implementation.
pub trait Machine: Send + 'static {
    /// The source the feedback names.
    fn source(&self) -> &SourceName;
    /// True when no step depends on whether an earlier step's events were stored (there is no
    /// session to reopen): the driver may then keep several appends in flight.
    fn pipelined(&self) -> bool;
    /// One frame, terminator and framing already removed.
    fn scan(&mut self, raw: &[u8], now: Timestamp, today: Date, ids: Ids<'_>) -> Step;
    /// When [`Machine::tick`] has something to do.
    fn deadline(&self) -> Option<Timestamp>;
    /// Time passes: idle timeouts, de-duplication windows.
    fn tick(&mut self, now: Timestamp, ids: Ids<'_>) -> Option<Step>;
    /// The outcome of storing the last step's events (see [`Step`]).
    fn committed(&mut self, ok: bool);
    /// Events of an earlier step that the spool refused after the machine was told they were
    /// stored: the driver reports a pipelined step `committed(true)` at once and its append's
    /// outcome only later. Machines that remember what they counted (the RFID de-duplication
    /// table) forget it here. By default nothing happens.
    fn not_stored(&mut self, _events: &[EventId]) {}
    /// Lines held in an open session, for feedback.
    fn open_lines(&self) -> usize;
}

impl Machine for Box<dyn Machine> {
    fn source(&self) -> &SourceName {
        (**self).source()
    }

    fn pipelined(&self) -> bool {
        (**self).pipelined()
    }

    fn scan(&mut self, raw: &[u8], now: Timestamp, today: Date, ids: Ids<'_>) -> Step {
        (**self).scan(raw, now, today, ids)
    }

    fn deadline(&self) -> Option<Timestamp> {
        (**self).deadline()
    }

    fn tick(&mut self, now: Timestamp, ids: Ids<'_>) -> Option<Step> {
        (**self).tick(now, ids)
    }

    fn committed(&mut self, ok: bool) {
        (**self).committed(ok);
    }

    fn not_stored(&mut self, events: &[EventId]) {
        (**self).not_stored(events);
    }

    fn open_lines(&self) -> usize {
        (**self).open_lines()
    }
}

impl Machine for Workflow {
    fn source(&self) -> &SourceName {
        &self.settings.source
    }

    fn pipelined(&self) -> bool {
        self.settings.workflow != WorkflowKind::Session
    }

    fn scan(&mut self, raw: &[u8], now: Timestamp, today: Date, ids: Ids<'_>) -> Step {
        Workflow::scan(self, raw, now, today, ids)
    }

    fn deadline(&self) -> Option<Timestamp> {
        Workflow::deadline(self)
    }

    fn tick(&mut self, now: Timestamp, ids: Ids<'_>) -> Option<Step> {
        Workflow::tick(self, now, ids)
    }

    fn committed(&mut self, ok: bool) {
        Workflow::committed(self, ok);
    }

    fn open_lines(&self) -> usize {
        Workflow::open_lines(self)
    }
}

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
                spool_full: false,
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
