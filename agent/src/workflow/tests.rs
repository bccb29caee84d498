//! Data-driven workflow tests: every `agent/test_data/workflow/*.script` runs through one
//! [`check`] helper.
//!
//! A script is a list of cases; each starts with a `## name` line and a fresh machine:
//!
//! ```text
//! # comment
//! ## receipt with two lines          a new case: default settings, clock at 2026-11-24T10:00:00Z
//! set workflow consume               settings, before the case's first scan: workflow, location,
//!                                    expired, idle (seconds), idle_action, prefix, alias, uom,
//!                                    gln KEY = LOCATION
//! today 2027-01-01                   the date passed to scans (default 2026-11-24)
//! wait 30                            advance the clock by 30 s
//! > SCAN                             one scan; \xNN is a byte (\x1d = GS), \\ a backslash
//! < noted receipt lines=1 "line 1"   its feedback: result, then optionally the kind, the open
//!                                    line count and substrings the reason must contain
//! = {"kind": "receipt", …}           an event of that step: these keys with these values
//!                                    (objects by subset, arrays element by element)
//! refuse                             the spool refused the last step's events
//! < rejected "not stored"            … and the feedback given instead
//! tick                               the idle timeout is checked at the current clock
//! < none                             … and did nothing
//! deadline 300                       seconds from the case's start, or `none`
//! ```
//!
//! Every scan and tick must state its feedback, and every event a step makes must be matched
//! by a `=` line. Steps with events are reported durable unless `refuse` follows.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tallyman_protocol::Date;
use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Location, SourceName, Timestamp, Uom,
};

use super::*;

/// 2026-11-24T10:00:00Z, the clock at the start of every case.
const START_MS: i64 = 1_795_514_400_000;

pub(super) fn settings() -> Settings {
    Settings::new(
        FacilityId::new("north").unwrap(),
        GatewayId::new("gw-north-01").unwrap(),
        SourceName::new("dock-1").unwrap(),
        Uom::new("Units").unwrap(),
    )
}

pub(super) fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// An id generator for tests: UUIDv7 at the given time, a counter in the random bits.
pub(super) fn id_source() -> impl FnMut(Timestamp) -> EventId {
    let mut n: u64 = 0;
    move |t: Timestamp| {
        n += 1;
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&n.to_be_bytes());
        EventId::new_v7(u64::try_from(t.unix_millis()).unwrap_or(0), random)
    }
}

/// Whether `actual` has every key of `expected` with the same value (recursively).
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(ev, av)| matches(ev, av))
        }
        _ => expected == actual,
    }
}

/// The expectation of a `<` line.
struct Expected {
    result: Option<FeedbackResult>,
    kind: Option<String>,
    lines: Option<usize>,
    contains: Vec<String>,
}

fn parse_expected(s: &str) -> Result<Expected, String> {
    let mut rest = s.trim();
    let mut words = Vec::new();
    let mut contains = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"').ok_or("unterminated quote")?;
            contains.push(after[..end].to_string());
            rest = after[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    let mut words = words.into_iter();
    let result = match words.next() {
        Some("accepted") => Some(FeedbackResult::Accepted),
        Some("noted") => Some(FeedbackResult::Noted),
        Some("rejected") => Some(FeedbackResult::Rejected),
        Some("none") => None,
        other => return Err(format!("a result first, not {other:?}")),
    };
    let mut kind = None;
    let mut lines = None;
    for w in words {
        if let Some(n) = w.strip_prefix("lines=") {
            lines = Some(n.parse().map_err(|_| format!("bad line count {n}"))?);
        } else {
            kind = Some(w.to_string());
        }
    }
    Ok(Expected {
        result,
        kind,
        lines,
        contains,
    })
}

fn check_feedback(fb: Option<&Feedback>, want: &Expected) -> Result<(), String> {
    let Some(fb) = fb else {
        return match want.result {
            None => Ok(()),
            Some(r) => Err(format!("expected {r}, got no feedback")),
        };
    };
    let shown = serde_json::to_string(fb).unwrap();
    let Some(result) = want.result else {
        return Err(format!("expected no feedback, got {shown}"));
    };
    if fb.result != result {
        return Err(format!("expected {result}, got {shown}"));
    }
    if let Some(kind) = &want.kind {
        if fb.kind.map(|k| k.as_str()) != Some(kind.as_str()) {
            return Err(format!("expected kind {kind}, got {shown}"));
        }
    }
    if let Some(n) = want.lines {
        if fb.lines != n {
            return Err(format!("expected lines={n}, got {shown}"));
        }
    }
    for c in &want.contains {
        if !fb.reason.as_deref().unwrap_or("").contains(c.as_str()) {
            return Err(format!("expected the reason to contain {c:?}, got {shown}"));
        }
    }
    Ok(())
}

/// The invariants of every step, whatever the script says.
pub(super) fn step_invariants(step: &Step) -> Result<(), String> {
    let fb = &step.feedback;
    let accepted = fb.result == FeedbackResult::Accepted;
    let has_events = !step.events.is_empty();
    if accepted != has_events {
        return Err(format!(
            "accepted must go with events: {:?} with {} events",
            fb.result,
            step.events.len()
        ));
    }
    if fb.event_id != step.events.first().map(Event::id) {
        return Err("the feedback's event id is not the event's".into());
    }
    if fb.reason.is_none() {
        return Err("every feedback has a sentence".into());
    }
    for ev in &step.events {
        let again = Event::from_parts(ev.clone().into_parts());
        if again.as_ref() != Ok(ev) {
            return Err(format!("an event does not validate: {again:?}"));
        }
        let json = serde_json::to_vec(ev).unwrap();
        if Event::from_json(&json).ok().as_ref() != Some(ev) {
            return Err("an event does not survive JSON".into());
        }
    }
    Ok(())
}

struct Runner {
    settings: Settings,
    machine: Option<Workflow>,
    now: i64,
    today: Date,
    ids: Box<dyn FnMut(Timestamp) -> EventId>,
    /// The last step and the `=` lines matched against it so far.
    last: Option<(Step, usize, usize)>,
    /// The line of the last scan or tick whose feedback is still to be checked.
    unchecked: Option<usize>,
    /// The feedback of the last tick (which may be none).
    tick_feedback: Option<Option<Step>>,
}

impl Runner {
    fn new() -> Runner {
        Runner {
            settings: settings(),
            machine: None,
            now: START_MS,
            today: Date::new(2026, 11, 24).unwrap(),
            ids: Box::new(id_source()),
            last: None,
            unchecked: None,
            tick_feedback: None,
        }
    }

    fn machine(&mut self) -> &mut Workflow {
        let settings = self.settings.clone();
        self.machine.get_or_insert_with(|| Workflow::new(settings))
    }

    fn ts(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.now).unwrap()
    }

    /// Close the last step: all its events must have been matched; report it durable.
    fn settle(&mut self) -> Result<(), String> {
        if let Some(line) = self.unchecked.take() {
            return Err(format!("the step of line {line} has no `<` line"));
        }
        if let Some((step, matched, line)) = self.last.take() {
            if matched != step.events.len() {
                return Err(format!(
                    "the step of line {line} made {} events, {matched} are matched by `=` lines",
                    step.events.len()
                ));
            }
            if !step.events.is_empty() {
                self.machine().committed(true);
            }
        }
        self.tick_feedback = None;
        Ok(())
    }

    fn set(&mut self, args: &str) -> Result<(), String> {
        if self.machine.is_some() {
            return Err("`set` after the first scan".into());
        }
        let (key, value) = args.split_once(' ').unwrap_or((args, ""));
        let s = &mut self.settings;
        match key {
            "workflow" => {
                s.workflow = match value {
                    "session" => WorkflowKind::Session,
                    "consume" => WorkflowKind::Consume,
                    "passthrough" => WorkflowKind::Passthrough,
                    _ => return Err(format!("workflow {value}?")),
                }
            }
            "location" => s.location = Some(Location::new(value).map_err(|e| e.to_string())?),
            "expired" => {
                s.expired = match value {
                    "reject" => ExpiredPolicy::Reject,
                    "flag" => ExpiredPolicy::Flag,
                    _ => return Err(format!("expired {value}?")),
                }
            }
            "idle" => {
                s.idle_timeout =
                    Duration::from_secs(value.parse().map_err(|_| format!("idle {value}?"))?)
            }
            "idle_action" => {
                s.idle_action = match value {
                    "commit" => IdleAction::Commit,
                    "discard" => IdleAction::Discard,
                    _ => return Err(format!("idle_action {value}?")),
                }
            }
            "prefix" => s.command_prefix = value.to_string(),
            "alias" => s.gs_aliases.push(unescape(value)),
            "uom" => s.default_uom = Uom::new(value).map_err(|e| e.to_string())?,
            "gln" => {
                let (k, v) = value.split_once(" = ").ok_or("gln KEY = LOCATION")?;
                s.gln_locations
                    .insert(k.to_string(), Location::new(v).map_err(|e| e.to_string())?);
            }
            _ => return Err(format!("unknown setting {key}")),
        }
        Ok(())
    }

    fn line(&mut self, number: usize, line: &str) -> Result<(), String> {
        if let Some(scan) = line.strip_prefix("> ").or((line == ">").then_some("")) {
            self.settle()?;
            let raw = unescape(scan);
            let now = self.ts();
            let today = self.today;
            let mut ids = std::mem::replace(&mut self.ids, Box::new(id_source()));
            let step = self.machine().scan(&raw, now, today, &mut *ids);
            self.ids = ids;
            step_invariants(&step)?;
            self.last = Some((step, 0, number));
            self.unchecked = Some(number);
        } else if let Some(want) = line.strip_prefix("< ") {
            let want = parse_expected(want)?;
            self.unchecked = None;
            if let Some(tick) = &self.tick_feedback {
                check_feedback(tick.as_ref().map(|s| &s.feedback), &want)?;
            } else {
                let (step, _, _) = self.last.as_ref().ok_or("`<` without a step")?;
                check_feedback(Some(&step.feedback), &want)?;
            }
        } else if let Some(json) = line.strip_prefix("= ") {
            let want: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
            let (step, matched, _) = self.last.as_mut().ok_or("`=` without a step")?;
            let ev = step
                .events
                .get(*matched)
                .ok_or_else(|| format!("the step made only {} events", step.events.len()))?;
            let actual = serde_json::to_value(ev).unwrap();
            if !matches(&want, &actual) {
                return Err(format!("event mismatch:\n  want {want}\n  got  {actual}"));
            }
            *matched += 1;
        } else if line == "refuse" {
            let (step, matched, at) = self.last.take().ok_or("`refuse` without a step")?;
            if step.events.is_empty() {
                return Err("`refuse` after a step without events".into());
            }
            if matched != step.events.len() {
                return Err(format!("the step of line {at} has unmatched events"));
            }
            self.machine().committed(false);
            self.tick_feedback = None;
            let refused = step.refused("the spool is full");
            self.last = Some((
                Step {
                    feedback: refused,
                    events: Vec::new(),
                    if_refused: String::new(),
                    lines_if_refused: 0,
                },
                0,
                number,
            ));
            self.unchecked = Some(number);
        } else if line == "tick" {
            self.settle()?;
            let now = self.ts();
            let mut ids = std::mem::replace(&mut self.ids, Box::new(id_source()));
            let step = self.machine().tick(now, &mut *ids);
            self.ids = ids;
            if let Some(step) = &step {
                step_invariants(step)?;
                self.last = Some((step.clone(), 0, number));
            }
            self.tick_feedback = Some(step);
            self.unchecked = Some(number);
        } else if let Some(secs) = line.strip_prefix("wait ") {
            let secs: i64 = secs.parse().map_err(|_| format!("wait {secs}?"))?;
            self.now += secs * 1000;
        } else if let Some(day) = line.strip_prefix("today ") {
            self.today = day.parse().map_err(|e| format!("{e}"))?;
        } else if let Some(args) = line.strip_prefix("set ") {
            self.set(args)?;
        } else if let Some(want) = line.strip_prefix("deadline ") {
            let got = self
                .machine()
                .deadline()
                .map(|t| (t.unix_millis() - START_MS) / 1000);
            let want = match want {
                "none" => None,
                n => Some(n.parse::<i64>().map_err(|_| format!("deadline {n}?"))?),
            };
            if got != want {
                return Err(format!("deadline: want {want:?}, got {got:?}"));
            }
        } else {
            return Err(format!("unknown directive {line:?}"));
        }
        Ok(())
    }
}

/// Run one script; every failure is reported as `file:line: message`.
fn check(name: &str, text: &str) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut runner: Option<(Runner, String)> = None;
    let mut broken = false;
    let finish = |runner: Option<(Runner, String)>, failures: &mut Vec<String>, broken: bool| {
        if let Some((mut r, case)) = runner {
            if !broken {
                if let Err(e) = r.settle() {
                    failures.push(format!("{name}: {case}: {e}"));
                }
            }
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim_end();
        if line.is_empty() || (line.starts_with('#') && !line.starts_with("## ")) {
            continue;
        }
        if let Some(case) = line.strip_prefix("## ") {
            finish(runner.take(), &mut failures, broken);
            runner = Some((Runner::new(), case.to_string()));
            broken = false;
            cases += 1;
            continue;
        }
        let Some((r, case)) = runner.as_mut() else {
            failures.push(format!(
                "{name}:{number}: a directive before the first `## case`"
            ));
            continue;
        };
        if broken {
            continue;
        }
        if let Err(e) = r.line(number, line) {
            failures.push(format!("{name}:{number}: [{case}] {e}"));
            broken = true;
        }
    }
    finish(runner, &mut failures, broken);
    (cases, failures)
}

#[test]
fn scripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data/workflow");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "script"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut report = String::new();
    let mut total = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let (cases, failures) = check(&name, &text);
        assert!(cases > 0, "{name} has no case");
        total += cases;
        for f in failures {
            writeln!(report, "{f}").unwrap();
        }
    }
    assert!(report.is_empty(), "workflow script failures:\n{report}");
    assert!(total >= 10, "only {total} cases");
}

#[test]
fn the_runner_fails_on_a_wrong_expectation() {
    let script = "## a\n> TM:RECEIVE\n< rejected\n## b\n> TM:DONE\n## c\nset location X\n> TM:RECEIVE\n< noted\n> 09506000134352\n< noted\n> TM:DONE\n< accepted\n";
    let (cases, failures) = check("self", script);
    assert_eq!(cases, 3);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures[0].contains("expected rejected"), "{}", failures[0]);
    assert!(failures[1].contains("no `<` line"), "{}", failures[1]);
    assert!(
        failures[2].contains("are matched by `=` lines"),
        "{}",
        failures[2]
    );
}

// ---- API details the scripts do not show ----------------------------------------------------

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(START_MS + secs * 1000).unwrap()
}

fn today() -> Date {
    Date::new(2026, 11, 24).unwrap()
}

#[test]
fn a_step_not_reported_counts_as_stored() {
    let mut s = settings();
    s.location = Some(Location::new("WH/Stock").unwrap());
    let mut w = Workflow::new(s);
    let mut ids = id_source();
    let _ = w.scan(b"TM:RECEIVE", at(0), today(), &mut ids);
    let _ = w.scan(b"09506000134352", at(1), today(), &mut ids);
    let done = w.scan(b"TM:DONE", at(2), today(), &mut ids);
    assert_eq!(done.events.len(), 1);
    // No `committed` call; the next scan goes on from the committed state.
    let next = w.scan(b"TM:DONE", at(3), today(), &mut ids);
    assert_eq!(next.feedback.result, FeedbackResult::Rejected);
    w.committed(false);
    assert_eq!(w.open_lines(), 0);
}

#[test]
fn a_refused_commit_restores_the_whole_session() {
    let mut w = Workflow::new(settings());
    let mut ids = id_source();
    for scan in [
        &b"TM:TRANSFER"[..],
        b"TM:FROM:A",
        b"TM:TO:B",
        b"TM:REF:PO1",
        b"09506000134352",
        b"TM:QTY:3",
    ] {
        let step = w.scan(scan, at(0), today(), &mut ids);
        assert_ne!(step.feedback.result, FeedbackResult::Rejected, "{step:?}");
    }
    let before = w.state.clone();
    let done = w.scan(b"TM:DONE", at(5), today(), &mut ids);
    assert_eq!(done.events[0].reference().unwrap().as_str(), "PO1");
    w.committed(false);
    let mut want = before;
    want.last_scan = Some(at(5));
    assert_eq!(w.state, want);
    let refused = done.refused("disk full");
    assert_eq!(refused.result, FeedbackResult::Rejected);
    assert_eq!(refused.lines, 1);
    assert_eq!(refused.event_id, None);
    assert_eq!(
        refused.reason.as_deref(),
        Some(
            "not stored (disk full): the transfer of 1 line stays open: scan TM:DONE to try again"
        )
    );
    let again = w.scan(b"TM:DONE", at(6), today(), &mut ids);
    assert_eq!(again.events.len(), 1);
    assert_ne!(again.events[0].id(), done.events[0].id());
    w.committed(true);
    assert_eq!(w.open_lines(), 0);
}

#[test]
fn deadlines_saturate_and_ticks_before_them_do_nothing() {
    let mut s = settings();
    s.idle_timeout = Duration::from_secs(u64::MAX);
    let mut w = Workflow::new(s);
    let mut ids = id_source();
    assert_eq!(w.deadline(), None);
    assert!(w.tick(Timestamp::MAX, &mut ids).is_none());
    let _ = w.scan(b"TM:RECEIVE", at(0), today(), &mut ids);
    assert_eq!(w.deadline(), Some(Timestamp::MAX));
    assert!(w.tick(at(1_000_000), &mut ids).is_none());
    let step = w.tick(Timestamp::MAX, &mut ids).unwrap();
    assert_eq!(step.feedback.result, FeedbackResult::Noted);
    assert_eq!(step.feedback.scan, None);
    assert_eq!(w.deadline(), None);
}

#[test]
fn feedback_serialises_as_the_stdin_json_line() {
    let mut s = settings();
    s.location = Some(Location::new("WH/Stock").unwrap());
    let mut w = Workflow::new(s);
    let mut ids = id_source();
    let step = w.scan(b"TM:NOPE", at(0), today(), &mut ids);
    let json = serde_json::to_value(&step.feedback).unwrap();
    assert_eq!(json["source"], "dock-1");
    assert_eq!(json["scan"], "TM:NOPE");
    assert_eq!(json["result"], "rejected");
    assert_eq!(json["kind"], "command");
    assert_eq!(json["event_id"], Value::Null);
    let long = vec![b'\x1d'; 1000];
    let step = w.scan(&long, at(0), today(), &mut ids);
    assert!(step.feedback.scan.unwrap().ends_with('…'));
}

#[test]
fn a_session_holds_at_most_max_lines() {
    let mut s = settings();
    s.location = Some(Location::new("WH/Stock").unwrap());
    let mut w = Workflow::new(s);
    let mut ids = id_source();
    let mut scan = |w: &mut Workflow, raw: &[u8]| {
        let step = w.scan(raw, at(0), today(), &mut ids);
        step_invariants(&step).unwrap();
        step
    };
    assert_eq!(
        scan(&mut w, b"TM:RECEIVE").feedback.result,
        FeedbackResult::Noted
    );
    assert_eq!(scan(&mut w, b"09506000134352").feedback.lines, 1);
    for n in 1..MAX_LINES {
        let step = scan(&mut w, format!("010950110102091721S{n}").as_bytes());
        assert_eq!(step.feedback.result, FeedbackResult::Noted, "{step:?}");
    }
    assert_eq!(w.open_lines(), MAX_LINES);
    let full = scan(&mut w, b"010950110102091721S-LAST");
    assert_eq!(full.feedback.result, FeedbackResult::Rejected);
    assert_eq!(
        full.feedback.reason.as_deref(),
        Some(
            "this receipt already has 1000 lines, the most one event holds: scan TM:DONE, then \
             go on"
        )
    );
    // Adding to an existing line is still possible.
    let more = scan(&mut w, b"09506000134352");
    assert_eq!(more.feedback.result, FeedbackResult::Noted);
    let done = scan(&mut w, b"TM:DONE");
    assert_eq!(done.events[0].lines().len(), MAX_LINES);
    assert_eq!(done.events[0].lines()[0].qty.as_str(), "2");
    w.committed(true);
    assert_eq!(
        scan(&mut w, b"010950110102091721S-LAST").feedback.result,
        FeedbackResult::Noted
    );
}
