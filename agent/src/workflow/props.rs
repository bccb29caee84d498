//! Property test: random sequences of scans, commands, waits, idle ticks and refused commits.
//!
//! Whatever the sequence: no panic; every scan gets one feedback for that very scan; a tick
//! answers exactly when the deadline has passed; *accepted* goes with events and events with
//! *accepted*; every event validates and survives JSON; and every committed event carries
//! exactly the lines that were scanned into it, per a small model that follows the machine's
//! accept/reject decisions but computes quantities and line identities on its own.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use tallyman_protocol::Date;
use tallyman_protocol::barcode::MAX_SCAN_LEN;
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::event::{Event, Flag, Item, Kind, Location, Timestamp};

use super::tests::{id_source, settings, step_invariants};
use super::*;

const MILLION: u64 = 1_000_000;

/// What the test knows a scan to be, independently of the machine.
#[derive(Debug, Clone)]
enum Meaning {
    /// An item: its line identity, its own count, its HIBC primary check character, whether
    /// it is expired today.
    Item {
        key: String,
        own_qty: Option<u64>,
        link: Option<char>,
        expired: bool,
    },
    /// An HIBC secondary symbol.
    Secondary {
        link: char,
        lot: Option<&'static str>,
        serial: Option<&'static str>,
        expiry: Option<&'static str>,
        own_qty: Option<u64>,
    },
    /// A pending quantity (TM:QTY, AI 30 alone), in millionths.
    Qty(u64),
    Done,
    Cancel,
    /// Anything else: a command or data that changes no line, or junk.
    Other,
}

#[derive(Clone)]
enum Op {
    Scan {
        raw: Vec<u8>,
        meaning: Meaning,
        refuse: bool,
    },
    Wait(i64),
    Tick {
        refuse: bool,
    },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Scan {
                raw,
                meaning,
                refuse,
            } => write!(
                f,
                "scan {:?} {meaning:?}{}",
                escape_bounded(raw, 40),
                if *refuse { " refused" } else { "" }
            ),
            Op::Wait(s) => write!(f, "wait {s}"),
            Op::Tick { refuse } => write!(f, "tick{}", if *refuse { " refused" } else { "" }),
        }
    }
}

fn key(item: &str, lot: Option<&str>, serial: Option<&str>, expiry: Option<&str>) -> String {
    format!(
        "{item}|{}|{}|{}",
        lot.unwrap_or(""),
        serial.unwrap_or(""),
        expiry.unwrap_or("")
    )
}

fn gs1_item() -> impl Strategy<Value = (Vec<u8>, Meaning)> {
    (
        prop::sample::select(vec!["09501101020917", "09506000134352"]),
        prop::option::of(prop::sample::select(vec!["L1", "L2"])),
        prop::sample::select(vec![
            None,
            Some(("271231", "2027-12-31", false)),
            Some(("250131", "2025-01-31", true)),
            Some(("271200", "2027-12-31", false)),
        ]),
        prop::option::of(prop::sample::select(vec!["S1", "S2"])),
        prop::option::of(prop::sample::select(vec![3u64, 0])),
    )
        .prop_map(|(gtin, lot, expiry, serial, qty)| {
            let mut raw = format!("01{gtin}");
            if let Some((yymmdd, _, _)) = expiry {
                raw.push_str(&format!("17{yymmdd}"));
            }
            let mut variable = Vec::new();
            if let Some(lot) = lot {
                variable.push(format!("10{lot}"));
            }
            if let Some(serial) = serial {
                variable.push(format!("21{serial}"));
            }
            if let Some(q) = qty {
                variable.push(format!("30{q}"));
            }
            raw.push_str(&variable.join("\x1d"));
            let meaning = Meaning::Item {
                key: key(gtin, lot, serial, expiry.map(|e| e.1)),
                own_qty: qty.map(|q| q * MILLION),
                link: None,
                expired: expiry.is_some_and(|e| e.2),
            };
            (raw.into_bytes(), meaning)
        })
}

type Entry = (&'static [u8], Meaning);

fn pick(table: Vec<Entry>) -> impl Strategy<Value = Vec<(Vec<u8>, Meaning)>> {
    prop::sample::select(table).prop_map(|(raw, meaning)| vec![(raw.to_vec(), meaning)])
}

fn modes_and_locations() -> Vec<Entry> {
    [
        &b"TM:RECEIVE"[..],
        b"TM:TRANSFER",
        b"tm:consume",
        b"TM:FROM:A",
        b"TM:FROM:B",
        b"TM:TO:A",
        b"TM:TO:B",
        b"TM:LOC:A",
        b"TM:LOC:B",
        b"4149501101000001",
    ]
    .into_iter()
    .map(|raw| (raw, Meaning::Other))
    .collect()
}

fn ends() -> Vec<Entry> {
    vec![
        (b"TM:DONE", Meaning::Done),
        (b"TM:DONE", Meaning::Done),
        (b"tm:done", Meaning::Done),
        (b"TM:CANCEL", Meaning::Cancel),
    ]
}

fn other_commands_and_data() -> Vec<Entry> {
    vec![
        (b"TM:REF:R1", Meaning::Other),
        (b"TM:QTY:2", Meaning::Qty(2 * MILLION)),
        (b"TM:QTY:0.5", Meaning::Qty(MILLION / 2)),
        (b"TM:QTY:1", Meaning::Qty(MILLION)),
        (b"TM:QTY:0", Meaning::Other),
        (b"TM:BOGUS", Meaning::Other),
        (b"TM:DONE:x", Meaning::Other),
        (b"3003", Meaning::Qty(3 * MILLION)),
        (b"400PO-1", Meaning::Other),
        (b"4149501101000001254SHELF-3", Meaning::Other),
        (b"]C100106141411234567897", Meaning::Other),
        (b"=G12341765432100", Meaning::Other),
        (b"0109506000134353", Meaning::Other),
        (b"", Meaning::Other),
    ]
}

fn primary() -> Entry {
    (
        b"+A123BJC5D6E71G",
        Meaning::Item {
            key: key("A123/BJC5D6E7/1", None, None, None),
            own_qty: None,
            link: Some('G'),
            expired: false,
        },
    )
}

fn secondaries() -> Vec<Entry> {
    let sec = |link, lot, serial, expiry, own_qty| Meaning::Secondary {
        link,
        lot,
        serial,
        expiry,
        own_qty,
    };
    vec![
        (
            b"+$$3271231LOTAGN",
            sec('G', Some("LOTA"), None, Some("2027-12-31"), None),
        ),
        (b"+$+SER9G0", sec('G', None, Some("SER9"), None, None)),
        (
            b"+$$3250101LOTXG$",
            sec('G', Some("LOTX"), None, Some("2025-01-01"), None),
        ),
        (
            b"+$$3271231LOTAX/",
            sec('X', Some("LOTA"), None, Some("2027-12-31"), None),
        ),
        (
            b"+$$8053271231LOTQG9",
            sec(
                'G',
                Some("LOTQ"),
                None,
                Some("2027-12-31"),
                Some(5 * MILLION),
            ),
        ),
    ]
}

fn hibc() -> impl Strategy<Value = Vec<(Vec<u8>, Meaning)>> {
    let concatenated: Entry = (
        b"+H123PART9/$$3271231LOTB%",
        Meaning::Item {
            key: key("H123/PART/9", Some("LOTB"), None, Some("2027-12-31")),
            own_qty: None,
            link: None,
            expired: false,
        },
    );
    let plain: Entry = (
        b"09506000134352",
        Meaning::Item {
            key: key("09506000134352", None, None, None),
            own_qty: None,
            link: None,
            expired: false,
        },
    );
    let mut one = secondaries();
    one.extend([primary(), concatenated, plain]);
    prop_oneof![
        pick(one),
        prop::sample::select(secondaries()).prop_map(|(raw, meaning)| {
            let (p, pm) = primary();
            vec![(p.to_vec(), pm), (raw.to_vec(), meaning)]
        }),
    ]
}

fn scans() -> impl Strategy<Value = Vec<Op>> {
    let junk = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        Just(vec![b'1'; MAX_SCAN_LEN + 1]),
    ]
    .prop_map(|raw| vec![(raw, Meaning::Other)]);
    (
        prop_oneof![
            3 => pick(modes_and_locations()),
            2 => pick(ends()),
            2 => pick(other_commands_and_data()),
            5 => gs1_item().prop_map(|s| vec![s]),
            3 => hibc(),
            1 => junk,
        ],
        prop::bool::weighted(0.15),
    )
        .prop_map(|(scans, refuse)| {
            scans
                .into_iter()
                .map(|(raw, meaning)| Op::Scan {
                    raw,
                    meaning,
                    refuse,
                })
                .collect()
        })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            10 => scans(),
            1 => (0i64..400).prop_map(|s| vec![Op::Wait(s)]),
            2 => prop::bool::weighted(0.3).prop_map(|refuse| vec![Op::Tick { refuse }]),
        ],
        0..60,
    )
    .prop_map(|v| v.concat())
}

fn config() -> impl Strategy<Value = Settings> {
    (
        prop::sample::select(vec![
            WorkflowKind::Session,
            WorkflowKind::Session,
            WorkflowKind::Consume,
            WorkflowKind::Passthrough,
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1u64..120,
    )
        .prop_map(|(workflow, located, flag, discard, idle)| {
            let mut s = settings();
            s.workflow = workflow;
            s.location = located.then(|| Location::new("A").unwrap());
            s.expired = if flag {
                ExpiredPolicy::Flag
            } else {
                ExpiredPolicy::Reject
            };
            s.idle_action = if discard {
                IdleAction::Discard
            } else {
                IdleAction::Commit
            };
            s.idle_timeout = Duration::from_secs(idle);
            s
        })
}

/// The lines the model expects in the open session.
#[derive(Debug, Clone, Default)]
struct Model {
    /// One entry per accepted item scan: line identity and quantity in millionths.
    contributions: Vec<(String, u64)>,
    pending: Option<u64>,
    /// The previous scan, if it was an HIBC primary that made a session line: its link, the
    /// index of its contribution and the pending quantity it used.
    primary: Option<(char, usize, Option<u64>)>,
}

impl Model {
    fn totals(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, q) in &self.contributions {
            *out.entry(k.clone()).or_insert(0) += q;
        }
        out
    }
}

fn line_totals(event: &Event) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in event.lines() {
        let item = match &line.item {
            Item::Gtin(g) => g.to_string(),
            Item::Hibc(h) => format!(
                "{}/{}/{}",
                h.lic,
                h.pcn,
                h.unit.map(|u| u.get().to_string()).unwrap_or_default()
            ),
            Item::Code(c) => c.to_string(),
        };
        let expiry = line.expiry.map(|d| d.to_string());
        let k = key(
            &item,
            line.lot.as_ref().map(|l| l.as_str()),
            line.serial.as_ref().map(|s| s.as_str()),
            expiry.as_deref(),
        );
        *out.entry(k).or_insert(0) += line.qty.millionths();
    }
    out
}

/// Checks of a committed stock event beyond its own validation.
fn event_rules(event: &Event, today: Date, settings: &Settings) -> Result<(), TestCaseError> {
    let mut serials = Vec::new();
    for line in event.lines() {
        let expired = line.expiry.is_some_and(|e| e < today);
        prop_assert_eq!(line.flags.contains(&Flag::Expired), expired);
        if expired {
            prop_assert_eq!(settings.expired, ExpiredPolicy::Flag);
        }
        if let Some(s) = &line.serial {
            prop_assert!(!serials.contains(&(&line.item, s)), "serial twice: {s}");
            serials.push((&line.item, s));
        }
        prop_assert_eq!(&line.uom, &settings.default_uom);
    }
    prop_assert!(event.seq() == 0);
    Ok(())
}

fn run(settings: Settings, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let today = Date::new(2026, 11, 24).unwrap();
    let mut now: i64 = 1_795_514_400_000;
    let mut ids = id_source();
    let mut w = Workflow::new(settings.clone());
    let mut model = Model::default();
    let workflow = settings.workflow;
    for op in ops {
        let ts = Timestamp::from_unix_millis(now).unwrap();
        match op {
            Op::Wait(secs) => now += secs * 1000,
            Op::Tick { refuse } => {
                let due = w.deadline().is_some_and(|d| ts >= d);
                let step = w.tick(ts, &mut ids);
                prop_assert_eq!(step.is_some(), due);
                let Some(step) = step else { continue };
                step_invariants(&step).map_err(TestCaseError::fail)?;
                prop_assert_eq!(step.feedback.scan.as_ref(), None);
                model.primary = None;
                let before = model.clone();
                match step.feedback.result {
                    FeedbackResult::Accepted => {
                        prop_assert_eq!(settings.idle_action, IdleAction::Commit);
                        let ev = &step.events[0];
                        prop_assert_eq!(line_totals(ev), model.totals());
                        event_rules(ev, today, &settings)?;
                    }
                    FeedbackResult::Noted => {
                        prop_assert!(
                            model.contributions.is_empty()
                                || settings.idle_action == IdleAction::Discard
                        );
                    }
                    FeedbackResult::Rejected => {
                        return Err(TestCaseError::fail(format!("idle commit failed: {step:?}")));
                    }
                }
                model = Model::default();
                if !step.events.is_empty() {
                    w.committed(!refuse);
                    if refuse {
                        model = before;
                        prop_assert_eq!(step.refused("full").lines, w.open_lines());
                        // Retried only after another timeout.
                        prop_assert!(w.deadline().is_some_and(|d| d > ts));
                    } else {
                        prop_assert_eq!(w.deadline(), None);
                    }
                }
                prop_assert_eq!(w.open_lines() == 0, model.contributions.is_empty());
            }
            Op::Scan {
                raw,
                meaning,
                refuse,
            } => {
                let step = w.scan(&raw, ts, today, &mut ids);
                step_invariants(&step).map_err(TestCaseError::fail)?;
                prop_assert_eq!(
                    step.feedback.scan.clone(),
                    Some(escape_bounded(&raw, FEEDBACK_SCAN_BYTES))
                );
                prop_assert!(step.events.len() <= 1);
                let result = step.feedback.result;
                let before = model.clone();
                let previous_primary = model.primary.take();
                if workflow == WorkflowKind::Passthrough {
                    if raw.is_empty() || raw.len() > MAX_SCAN_LEN {
                        prop_assert_eq!(result, FeedbackResult::Rejected);
                    } else {
                        prop_assert_eq!(result, FeedbackResult::Accepted);
                        let ev = &step.events[0];
                        prop_assert_eq!(ev.kind(), Kind::Scan);
                        prop_assert_eq!(ev.scan().unwrap().raw.to_bytes(), raw.clone());
                    }
                } else {
                    apply(
                        &mut model,
                        &meaning,
                        &step,
                        previous_primary,
                        workflow,
                        &settings,
                        today,
                    )?;
                }
                if !step.events.is_empty() {
                    w.committed(!refuse);
                    if refuse {
                        model = before;
                        model.primary = None;
                    }
                }
                // Lines merge by identity, but the same identity may be two lines (an expiry
                // written with day 00 and in full).
                let open = w.open_lines();
                prop_assert!(model.totals().len() <= open && open <= model.contributions.len());
                if refuse && !step.events.is_empty() {
                    prop_assert_eq!(step.refused("full").lines, open);
                }
            }
        }
    }
    Ok(())
}

/// Follow one stock scan in the model, and check what only the model knows.
fn apply(
    model: &mut Model,
    meaning: &Meaning,
    step: &Step,
    previous_primary: Option<(char, usize, Option<u64>)>,
    workflow: WorkflowKind,
    settings: &Settings,
    today: Date,
) -> Result<(), TestCaseError> {
    let result = step.feedback.result;
    let consume = workflow == WorkflowKind::Consume;
    let good = if consume {
        FeedbackResult::Accepted
    } else {
        FeedbackResult::Noted
    };
    match meaning {
        Meaning::Item {
            key,
            own_qty,
            link,
            expired,
        } => {
            if *expired && settings.expired == ExpiredPolicy::Reject {
                prop_assert_eq!(result, FeedbackResult::Rejected);
            }
            if result == FeedbackResult::Rejected {
                return Ok(());
            }
            prop_assert_eq!(result, good);
            let used = model.pending.take();
            let qty = used.or(*own_qty).unwrap_or(MILLION);
            if consume {
                let ev = &step.events[0];
                prop_assert_eq!(ev.kind(), Kind::Consumption);
                prop_assert_eq!(line_totals(ev), BTreeMap::from([(key.clone(), qty)]));
                event_rules(ev, today, settings)?;
            } else {
                model.contributions.push((key.clone(), qty));
                if let Some(l) = link {
                    model.primary = Some((*l, model.contributions.len() - 1, used));
                }
            }
        }
        Meaning::Secondary {
            link,
            lot,
            serial,
            expiry,
            own_qty,
        } => {
            let paired = previous_primary.filter(|p| p.0 == *link);
            if consume || paired.is_none() {
                prop_assert_eq!(result, FeedbackResult::Rejected);
                return Ok(());
            }
            let Some((_, index, used)) = paired else {
                return Ok(());
            };
            let (item, _) = model.contributions.remove(index);
            if result == FeedbackResult::Rejected {
                return Ok(());
            }
            prop_assert_eq!(result, FeedbackResult::Noted);
            let base = item.split('|').next().unwrap_or_default().to_string();
            let qty = used.or(*own_qty).unwrap_or(MILLION);
            model
                .contributions
                .push((key(&base, *lot, *serial, *expiry), qty));
        }
        Meaning::Qty(q) => {
            if result == FeedbackResult::Noted {
                model.pending = Some(*q);
            }
        }
        Meaning::Done => {
            if result == FeedbackResult::Accepted {
                prop_assert!(!consume);
                let ev = &step.events[0];
                prop_assert_eq!(line_totals(ev), model.totals());
                event_rules(ev, today, settings)?;
                model.contributions.clear();
                model.pending = None;
            } else if !consume {
                // Items are only taken when the session is ready, and stays ready.
                prop_assert_eq!(result, FeedbackResult::Rejected);
                prop_assert!(model.contributions.is_empty());
            }
        }
        Meaning::Cancel => {
            prop_assert_eq!(result, FeedbackResult::Noted);
            model.contributions.clear();
            model.pending = None;
        }
        Meaning::Other => {
            prop_assert!(result != FeedbackResult::Accepted);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_keep_every_rule(
        settings in config(),
        ops in ops(),
    ) {
        run(settings, ops)?;
    }
}
