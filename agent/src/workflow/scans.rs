//! Scans that are not commands: items, HIBC secondaries, GS1 data, and passthrough.

use tallyman_protocol::Date;
use tallyman_protocol::barcode::{self, Content, MAX_SCAN_LEN, gs1, symbology};
use tallyman_protocol::event::{
    Decoded, Event, Flag, Line, Quantity, RawScan, Scan, Symbology, Timestamp,
};

use super::command::{self, Parsed};
use super::input::{self, DataScan, Input, ItemScan, Secondary, describe};
use super::{
    ExpiredPolicy, FeedbackKind, FeedbackResult, Ids, MAX_LINES, Primary, Step, Target, Undo,
    Workflow, WorkflowKind,
};

impl Workflow {
    pub(super) fn stock_scan(
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

    pub(super) fn passthrough(&mut self, raw: &[u8], now: Timestamp, ids: Ids<'_>) -> Step {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_add_as_exact_decimals() {
        let q = |s: &str| Quantity::new(s).unwrap();
        assert_eq!(add_qty(&q("0.1"), &q("0.2")).unwrap().as_str(), "0.3");
        assert_eq!(add_qty(&q("2.5"), &q("2.5")).unwrap().as_str(), "5");
        assert_eq!(
            add_qty(&q("999999999999"), &q("0.999999"))
                .unwrap()
                .as_str(),
            "999999999999.999999"
        );
        assert_eq!(add_qty(&q("999999999999"), &q("1")), None);
        assert_eq!(sub_qty(&q("4.5"), &q("2.5")).unwrap().as_str(), "2");
        assert_eq!(sub_qty(&q("2"), &q("2")), None);
        assert_eq!(sub_qty(&q("1"), &q("2")), None);
    }
}
