//! Command barcodes, `{prefix}KEYWORD` or `{prefix}KEYWORD:argument`: reading them, and what
//! each does to the workflow (the table in the module documentation of [`super`]).
//!
//! The prefix and the keyword match without regard to ASCII case (`tm:done` is `TM:DONE`); the
//! argument is taken exactly as scanned, and must be UTF-8 text.

use tallyman_protocol::error::escape;
use tallyman_protocol::event::{Location, Quantity, Reference, Timestamp};

use super::{
    End, FeedbackKind, FeedbackResult, Ids, Mode, State, Step, Target, Workflow, WorkflowKind,
    lines,
};

/// A command barcode, its argument not yet validated (the workflow turns it into a
/// [`Location`], a reference or a quantity and reports a bad one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// `RECEIVE`, `TRANSFER`, `CONSUME`.
    Mode(Mode),
    /// `FROM:<location>`.
    From(String),
    /// `TO:<location>`.
    To(String),
    /// `LOC:<location>`: the one location the mode needs.
    Loc(String),
    /// `REF:<reference>`.
    Ref(String),
    /// `QTY:<n>`: the quantity of the next item.
    Qty(String),
    /// `DONE`: commit the session.
    Done,
    /// `CANCEL`: discard the session.
    Cancel,
}

/// What a scan is, seen as a possible command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// It does not start with the prefix: a barcode to decode.
    NotCommand,
    Command(Command),
    /// It starts with the prefix but is not a valid command; the reason says why and what is.
    Invalid(String),
}

/// Keywords that take no argument.
const BARE: [&str; 5] = ["RECEIVE", "TRANSFER", "CONSUME", "DONE", "CANCEL"];
/// Keywords that take one: the keyword, the argument's placeholder and what it is.
const WITH_ARG: [(&str, &str, &str); 5] = [
    ("FROM", "location", "location"),
    ("TO", "location", "location"),
    ("LOC", "location", "location"),
    ("REF", "reference", "reference"),
    ("QTY", "n", "quantity"),
];

/// Every command, written with `prefix`, for messages.
pub(super) fn list(prefix: &str) -> String {
    let mut out: Vec<String> = Vec::with_capacity(BARE.len() + WITH_ARG.len());
    out.extend(
        BARE.iter()
            .take(3)
            .map(|k| format!("{prefix}{k}"))
            .chain(
                WITH_ARG
                    .iter()
                    .map(|(k, a, _)| format!("{prefix}{k}:<{a}>")),
            )
            .chain(BARE.iter().skip(3).map(|k| format!("{prefix}{k}"))),
    );
    out.join(", ")
}

/// Read `data` (the scan without its symbology identifier) as a command with `prefix`. An empty
/// prefix turns commands off.
pub(super) fn parse(data: &[u8], prefix: &str) -> Parsed {
    let p = prefix.as_bytes();
    if p.is_empty() {
        return Parsed::NotCommand;
    }
    match data.get(..p.len()) {
        Some(head) if head.eq_ignore_ascii_case(p) => {}
        _ => return Parsed::NotCommand,
    }
    let rest = data.get(p.len()..).unwrap_or_default();
    let (keyword, arg) = match rest.iter().position(|&b| b == b':') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            Some(rest.get(i + 1..).unwrap_or_default()),
        ),
        None => (rest, None),
    };
    let keyword = keyword.to_ascii_uppercase();
    let shown = escape(&keyword);
    if let Some(bare) = BARE.iter().find(|k| k.as_bytes() == keyword.as_slice()) {
        if arg.is_some() {
            return Parsed::Invalid(format!("{prefix}{bare} takes no argument"));
        }
        let command = match *bare {
            "RECEIVE" => Command::Mode(Mode::Receive),
            "TRANSFER" => Command::Mode(Mode::Transfer),
            "CONSUME" => Command::Mode(Mode::Consume),
            "DONE" => Command::Done,
            _ => Command::Cancel,
        };
        return Parsed::Command(command);
    }
    let Some((name, placeholder, what)) = WITH_ARG
        .iter()
        .find(|(k, _, _)| k.as_bytes() == keyword.as_slice())
    else {
        return Parsed::Invalid(format!(
            "unknown command {prefix}{shown}; the commands are {}",
            list(prefix)
        ));
    };
    let arg = match arg {
        Some(a) if !a.is_empty() => a,
        _ => {
            return Parsed::Invalid(format!(
                "{prefix}{name} needs a {what}: {prefix}{name}:<{placeholder}>"
            ));
        }
    };
    let Ok(text) = std::str::from_utf8(arg) else {
        return Parsed::Invalid(format!(
            "the {what} of {prefix}{name} is not UTF-8 text: \"{}\"",
            escape(arg)
        ));
    };
    let text = text.to_string();
    Parsed::Command(match *name {
        "FROM" => Command::From(text),
        "TO" => Command::To(text),
        "LOC" => Command::Loc(text),
        "REF" => Command::Ref(text),
        _ => Command::Qty(text),
    })
}

// ---- applying commands to the workflow -------------------------------------------------------

impl Workflow {
    pub(super) fn command(&mut self, command: Command, now: Timestamp, ids: Ids<'_>) -> Step {
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
    pub(super) fn scanned_location_end(&self) -> Result<End, String> {
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

    pub(super) fn set_location(&mut self, end: End, location: Location) -> Result<String, String> {
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

    pub(super) fn set_reference(&mut self, reference: Reference) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &[u8]) -> Parsed {
        parse(s, "TM:")
    }

    #[test]
    fn keywords_ignore_case_arguments_do_not() {
        assert_eq!(cmd(b"TM:DONE"), Parsed::Command(Command::Done));
        assert_eq!(cmd(b"tm:done"), Parsed::Command(Command::Done));
        assert_eq!(
            cmd(b"Tm:Receive"),
            Parsed::Command(Command::Mode(Mode::Receive))
        );
        assert_eq!(
            cmd(b"tm:to:WH/Stock/Shelf 2"),
            Parsed::Command(Command::To("WH/Stock/Shelf 2".into()))
        );
        assert_eq!(
            cmd(b"TM:REF:po:42"),
            Parsed::Command(Command::Ref("po:42".into()))
        );
        assert_eq!(cmd(b"0109506000134352"), Parsed::NotCommand);
        assert_eq!(cmd(b"TM"), Parsed::NotCommand);
        assert_eq!(parse(b"TM:DONE", ""), Parsed::NotCommand);
        assert_eq!(parse(b"#done", "#"), Parsed::Command(Command::Done));
    }

    #[test]
    fn bad_commands_say_what_is_expected() {
        let Parsed::Invalid(r) = cmd(b"TM:FINISH") else {
            panic!("not invalid")
        };
        assert_eq!(
            r,
            "unknown command TM:FINISH; the commands are TM:RECEIVE, TM:TRANSFER, TM:CONSUME, \
             TM:FROM:<location>, TM:TO:<location>, TM:LOC:<location>, TM:REF:<reference>, \
             TM:QTY:<n>, TM:DONE, TM:CANCEL"
        );
        assert_eq!(
            cmd(b"TM:DONE:now"),
            Parsed::Invalid("TM:DONE takes no argument".into())
        );
        assert_eq!(
            cmd(b"TM:QTY:"),
            Parsed::Invalid("TM:QTY needs a quantity: TM:QTY:<n>".into())
        );
        assert_eq!(
            cmd(b"TM:FROM"),
            Parsed::Invalid("TM:FROM needs a location: TM:FROM:<location>".into())
        );
        assert_eq!(
            cmd(b"TM:REF:\xff"),
            Parsed::Invalid("the reference of TM:REF is not UTF-8 text: \"\\xff\"".into())
        );
        let Parsed::Invalid(r) = cmd(b"TM:\x1d") else {
            panic!("not invalid")
        };
        assert!(r.starts_with("unknown command TM:\\x1d;"), "{r}");
    }
}
