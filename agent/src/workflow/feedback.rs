//! What a source tells the person at the scanner (and the displays on `feedback/{source}`).

use std::fmt;

use serde::Serialize;
use tallyman_protocol::event::{Event, EventId, Kind, SourceName};

/// The outcome of one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackResult {
    /// The scan made an event, and that event is durable. A [`Step`] with events carries this
    /// result, but the glue gives it only after the spool accepted the events.
    Accepted,
    /// Understood and taken into the session (an item line, a mode, a location, a quantity…);
    /// nothing is stored yet.
    Noted,
    /// Refused; `reason` says why and what to scan instead.
    Rejected,
}

impl FeedbackResult {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackResult::Accepted => "accepted",
            FeedbackResult::Noted => "noted",
            FeedbackResult::Rejected => "rejected",
        }
    }

    /// Whether the scanner should give its good-read signal.
    pub fn is_good(self) -> bool {
        !matches!(self, FeedbackResult::Rejected)
    }
}

impl fmt::Display for FeedbackResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scan was understood as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// An item or a commit of a receipt (or of a transfer, a consumption): the kind of event it
    /// belongs to.
    Receipt,
    Transfer,
    Consumption,
    /// A raw scan passed through.
    Scan,
    /// An item scanned while no mode says which event it belongs to.
    Item,
    /// A command barcode other than a commit.
    Command,
    /// A location barcode (GS1 AI 414).
    Location,
    /// A reference barcode (GS1 AI 400).
    Reference,
    /// A count on its own (GS1 AI 30/37).
    Quantity,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Receipt => "receipt",
            FeedbackKind::Transfer => "transfer",
            FeedbackKind::Consumption => "consumption",
            FeedbackKind::Scan => "scan",
            FeedbackKind::Item => "item",
            FeedbackKind::Command => "command",
            FeedbackKind::Location => "location",
            FeedbackKind::Reference => "reference",
            FeedbackKind::Quantity => "quantity",
        }
    }

    pub(super) fn of(kind: Kind) -> FeedbackKind {
        match kind {
            Kind::Receipt => FeedbackKind::Receipt,
            Kind::Transfer => FeedbackKind::Transfer,
            Kind::Consumption => FeedbackKind::Consumption,
            Kind::Scan => FeedbackKind::Scan,
        }
    }
}

impl fmt::Display for FeedbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to one scan, or to an idle timeout. Serialised, it is the stdin source's JSON line
/// (PRODUCT §2) plus `lines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    pub source: SourceName,
    /// The scan as read, escaped (`\x1d` for GS) and bounded to [`super::FEEDBACK_SCAN_BYTES`]
    /// bytes; `None` for an idle timeout.
    pub scan: Option<String>,
    pub result: FeedbackResult,
    /// The event the scan made (with [`FeedbackResult::Accepted`]).
    pub event_id: Option<EventId>,
    pub kind: Option<FeedbackKind>,
    /// Why a scan was rejected, or what a noted scan did, in one sentence for people.
    pub reason: Option<String>,
    /// How many lines the open session has after this scan.
    pub lines: usize,
    /// Rejected because the spool is full: a scanner gives its *full* signal rather than
    /// *bad*. Not in the JSON line (`reason` says it for people).
    #[serde(skip)]
    pub spool_full: bool,
}

/// What one scan (or one idle timeout) did: exactly one feedback, and the events to store.
///
/// The contract with the caller:
/// * No events: give `feedback` as it is.
/// * Events: append them to the spool. Once they are durable, call
///   [`Workflow::committed(true)`](super::Workflow::committed) and give `feedback`
///   (*accepted*, with the event id). If the spool refuses them (full, an error), call
///   [`Workflow::committed(false)`](super::Workflow::committed) — the machine reopens the
///   session as it was, so no scanned line is lost — and give [`Step::refused`] instead.
/// * Report the outcome before the next [`scan`](super::Workflow::scan) or
///   [`tick`](super::Workflow::tick); one that is not reported by then counts as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a step carries feedback for the scanner and events for the spool"]
pub struct Step {
    pub feedback: Feedback,
    pub events: Vec<Event>,
    /// What to tell the staff if the events cannot be stored.
    pub(super) if_refused: String,
    /// How many lines the session has again if the events cannot be stored.
    pub(super) lines_if_refused: usize,
}

impl Step {
    /// The feedback to give instead of [`Step::feedback`] when the spool refused the events;
    /// `why` is the spool's reason ("the spool is full").
    pub fn refused(&self, why: &str) -> Feedback {
        Feedback {
            result: FeedbackResult::Rejected,
            event_id: None,
            reason: Some(format!("not stored ({why}): {}", self.if_refused)),
            lines: self.lines_if_refused,
            ..self.feedback.clone()
        }
    }
}
