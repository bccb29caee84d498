//! The RFID machine alone: de-duplication window, antennas, modes, rejections, refused appends,
//! the bounded table.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Location, SourceName, Timestamp, Uom,
};

use super::*;
use crate::workflow::FeedbackResult;

/// 2026-11-24T10:00:00Z.
const START_MS: i64 = 1_795_514_400_000;

/// The TDS worked example: SGTIN-96, GTIN 80614141123458, serial 6789.
const TDS: &str = "3074257BF7194E4000001A85";

/// An SGTIN-96 of GTIN 80614141123458 with `serial` (38 bits).
fn sgtin(serial: u64) -> String {
    let base = u128::from_str_radix(TDS, 16).unwrap();
    let mask = (1u128 << 38) - 1;
    format!("{:024X}", (base & !mask) | (u128::from(serial) & mask))
}

fn loc(s: &str) -> Location {
    Location::new(s).unwrap()
}

fn settings(mode: TagMode, window_ms: u64) -> TagSettings {
    TagSettings {
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-north-01").unwrap(),
        source: SourceName::new("cabinet").unwrap(),
        default_uom: Uom::new("Units").unwrap(),
        dedup_window: Duration::from_millis(window_ms),
        mode,
    }
}

fn consume() -> TagMode {
    TagMode::Consume {
        location: loc("WH/Stock/Cabinet 1"),
    }
}

fn portal() -> TagMode {
    TagMode::Portal {
        from: loc("WH/Input"),
        to: loc("WH/Stock"),
    }
}

/// A machine with a clock: `at(ms)` reads at START + ms.
struct Rig {
    m: TagMachine,
    n: u64,
}

impl Rig {
    fn new(mode: TagMode, window_ms: u64) -> Rig {
        Rig {
            m: TagMachine::new(settings(mode, window_ms)),
            n: 0,
        }
    }

    fn with_capacity(mode: TagMode, window_ms: u64, capacity: usize) -> Rig {
        Rig {
            m: TagMachine::with_capacity(settings(mode, window_ms), capacity),
            n: 0,
        }
    }

    /// Read `line` at `ms`; the step's events are reported stored.
    fn at(&mut self, ms: i64, line: &str) -> Step {
        let step = self.read(ms, line);
        self.m.committed(true);
        step
    }

    /// Read without reporting the outcome.
    fn read(&mut self, ms: i64, line: &str) -> Step {
        let now = ts(ms);
        let mut n = self.n;
        let mut ids = |t: Timestamp| {
            n += 1;
            EventId::new_v7(u64::try_from(t.unix_millis()).unwrap(), {
                let mut r = [0u8; 10];
                r[..8].copy_from_slice(&n.to_be_bytes());
                r
            })
        };
        let step = Machine::scan(&mut self.m, line.as_bytes(), now, now.date(), &mut ids);
        self.n = n;
        step
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(START_MS + ms).unwrap()
}

fn json(e: &Event) -> Value {
    serde_json::to_value(e).unwrap()
}

#[track_caller]
fn accepted(step: &Step) -> &Event {
    assert_eq!(step.feedback.result, FeedbackResult::Accepted, "{step:?}");
    assert_eq!(step.events.len(), 1, "{step:?}");
    assert_eq!(step.feedback.event_id, Some(step.events[0].id()));
    &step.events[0]
}

#[track_caller]
fn noted(step: &Step) {
    assert_eq!(step.feedback.result, FeedbackResult::Noted, "{step:?}");
    assert!(step.events.is_empty());
    let reason = step.feedback.reason.as_deref().unwrap();
    assert!(reason.starts_with("already read"), "{reason}");
}

#[track_caller]
fn rejected(step: &Step, words: &[&str]) {
    assert_eq!(step.feedback.result, FeedbackResult::Rejected, "{step:?}");
    assert!(step.events.is_empty());
    let reason = step.feedback.reason.as_deref().unwrap();
    for w in words {
        assert!(reason.contains(w), "{reason:?} lacks {w:?}");
    }
}

#[test]
fn consume_makes_one_consumption_with_gtin_and_serial() {
    let mut r = Rig::new(consume(), 2000);
    let step = r.at(0, "3074 257B F719 4E40 0000 1A85");
    let e = json(accepted(&step));
    assert_eq!(e["kind"], "consumption");
    assert_eq!(e["from"], "WH/Stock/Cabinet 1");
    assert_eq!(e["to"], Value::Null);
    assert_eq!(e["source"], "cabinet");
    assert_eq!(e["captured_at"], "2026-11-24T10:00:00.000Z");
    let lines = e["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["item"],
        serde_json::json!({"gtin": "80614141123458"})
    );
    assert_eq!(lines[0]["serial"], "6789");
    assert_eq!(lines[0]["qty"], "1");
    assert_eq!(lines[0]["uom"], "Units");
    assert_eq!(lines[0]["lot"], Value::Null);
    let fb = &step.feedback;
    assert_eq!(fb.kind, Some(FeedbackKind::Consumption));
    assert_eq!(fb.scan.as_deref(), Some("3074 257B F719 4E40 0000 1A85"));
    assert_eq!(fb.lines, 0);
    let reason = fb.reason.as_deref().unwrap();
    assert!(
        reason.contains("consumed at WH/Stock/Cabinet 1")
            && reason.contains("GTIN 80614141123458 serial 6789")
            && reason.contains("urn:epc:id:sgtin:0614141.812345.6789"),
        "{reason}"
    );
}

#[test]
fn sgtin_198_gives_its_alphanumeric_serial() {
    let mut r = Rig::new(consume(), 2000);
    let step = r.at(0, "3674257BF7194E59B2C2BF100000000000000000000000000000");
    let e = json(accepted(&step));
    assert_eq!(e["lines"][0]["serial"], "32a/b");
    assert_eq!(e["lines"][0]["item"]["gtin"], "80614141123458");
}

#[test]
fn repeats_within_the_window_are_noted_and_the_window_slides() {
    let mut r = Rig::new(consume(), 2000);
    accepted(&r.at(0, TDS));
    // Every reader format of the same EPC is the same tag.
    noted(&r.at(100, "0x3074257bf7194e4000001a85"));
    noted(&r.at(1900, "Tag:3074 257B F719 4E40 0000 1A85, Count:3, Ant:1"));
    // 3.8 s after the first read, but 1.9 s after the last: still the same pass.
    noted(&r.at(3800, "30003074257BF7194E4000001A85"));
    let step = r.at(5000, TDS);
    noted(&step);
    let reason = step.feedback.reason.as_deref().unwrap();
    assert!(
        reason.contains("1.2 s ago") && reason.contains("within 2 s"),
        "{reason}"
    );
    // Out of sight for a whole window: counts again.
    let again = r.at(7000, TDS);
    accepted(&again);
    // Another tag is another tag.
    accepted(&r.at(7001, &sgtin(6790)));
    assert_eq!(r.m.remembered(), 2);
}

#[test]
fn the_window_ends_exactly_after_its_length() {
    let mut r = Rig::new(consume(), 2000);
    accepted(&r.at(0, TDS));
    noted(&r.at(1999, TDS));
    accepted(&r.at(3999, TDS));
}

#[test]
fn window_zero_counts_every_read() {
    let mut r = Rig::new(consume(), 0);
    for ms in 0..5 {
        accepted(&r.at(ms, TDS));
    }
    assert_eq!(r.m.remembered(), 0);
    assert_eq!(Machine::deadline(&r.m), None);
}

#[test]
fn a_clock_set_back_does_not_turn_a_tag_into_a_new_read() {
    let mut r = Rig::new(consume(), 2000);
    accepted(&r.at(10_000, TDS));
    // The clock steps back an hour while the tag lies in the field.
    noted(&r.at(10_000 - 3_600_000, TDS));
    // The window restarted at the new time: the entry does not outlive the tag by an hour.
    accepted(&r.at(10_000 - 3_600_000 + 2000, TDS));
}

#[test]
fn portal_makes_one_transfer_whatever_antenna_sees_the_tag() {
    let mut r = Rig::new(portal(), 2000);
    let step = r.at(0, "Tag:3074 257B F719 4E40 0000 1A85, Ant:1");
    let e = json(accepted(&step));
    assert_eq!(e["kind"], "transfer");
    assert_eq!(e["from"], "WH/Input");
    assert_eq!(e["to"], "WH/Stock");
    assert_eq!(e["lines"][0]["item"]["gtin"], "80614141123458");
    assert_eq!(e["lines"][0]["serial"], "6789");
    assert_eq!(step.feedback.kind, Some(FeedbackKind::Transfer));
    assert!(
        step.feedback
            .reason
            .as_deref()
            .unwrap()
            .contains("moved from WH/Input to WH/Stock")
    );
    for (ms, ant) in [(50, 2), (60, 1), (400, 2), (900, 3)] {
        let s = r.at(ms, &format!("Tag:3074 257B F719 4E40 0000 1A85, Ant:{ant}"));
        noted(&s);
        assert_eq!(s.feedback.kind, Some(FeedbackKind::Transfer));
    }
}

#[test]
fn passthrough_keys_on_epc_and_antenna() {
    let mut r = Rig::new(TagMode::Passthrough, 2000);
    let line = "Tag:3074 257B F719 4E40 0000 1A85, Count:1, Ant:1";
    let step = r.at(0, line);
    let e = json(accepted(&step));
    assert_eq!(e["kind"], "scan");
    assert_eq!(e["scan"]["raw"], line);
    assert_eq!(e["scan"]["decoded"], "epc");
    assert_eq!(e["scan"]["symbology"], Value::Null);
    assert_eq!(step.feedback.kind, Some(FeedbackKind::Scan));
    assert!(
        step.feedback
            .reason
            .as_deref()
            .unwrap()
            .contains("on antenna 1")
    );
    noted(&r.at(10, "Tag:3074 257B F719 4E40 0000 1A85, Count:2, Ant:1"));
    // The same tag on another antenna is information: passed on.
    accepted(&r.at(20, "Tag:3074 257B F719 4E40 0000 1A85, Count:1, Ant:2"));
    noted(&r.at(30, "Tag:3074 257B F719 4E40 0000 1A85, Count:2, Ant:2"));
    // No antenna is an antenna of its own.
    accepted(&r.at(40, TDS));
    noted(&r.at(50, TDS));
    assert_eq!(r.m.remembered(), 3);
}

#[test]
fn passthrough_passes_undecodable_reads_and_still_deduplicates_tags() {
    let mut r = Rig::new(TagMode::Passthrough, 2000);
    // A factory TID: the EPC is read but is no GS1 scheme.
    let tid = "E2801160600002054CC2096F";
    let step = r.at(0, tid);
    let e = json(accepted(&step));
    assert_eq!(e["scan"]["raw"], tid);
    assert_eq!(e["scan"]["decoded"], Value::Null);
    let reason = step.feedback.reason.as_deref().unwrap();
    assert!(
        reason.contains("not decoded: unsupported at offset 0"),
        "{reason}"
    );
    noted(&r.at(500, tid));
    // A line that names no tag at all: passed on every time.
    for ms in [600, 700] {
        let step = r.at(ms, "READER OK\\");
        let e = json(accepted(&step));
        assert_eq!(e["scan"]["raw"], "READER OK\\\\");
        assert_eq!(e["scan"]["decoded"], Value::Null);
    }
    // An empty line cannot be a raw scan.
    rejected(&r.at(800, ""), &["empty"]);
}

#[test]
fn tags_that_are_not_trade_items_are_rejected_with_what_they_are() {
    let cases = [
        (
            "3114257BF4499602D2000000",
            "an SSCC-96 tag (urn:epc:id:sscc:0614141.1234567890) is a logistic unit",
        ),
        (
            "3234257BF460720000000190",
            "an SGLN-96 tag (urn:epc:id:sgln:",
        ),
        (
            "3314257BF40C0E400000162E",
            "a GRAI-96 tag (urn:epc:id:grai:0614141.12345.5678) is a returnable asset",
        ),
        (
            "3414257BF400000000BC614E",
            "a GIAI-96 tag (urn:epc:id:giai:",
        ),
    ];
    for mode in [consume(), portal()] {
        let mut r = Rig::new(mode, 2000);
        for (i, (hex, what)) in cases.iter().enumerate() {
            // Rejected at every read: nothing is remembered of them.
            for k in 0..2 {
                let step = r.at(i64::try_from(i * 10 + k).unwrap(), hex);
                rejected(&step, &[what, "not a trade item"]);
                assert_eq!(step.feedback.kind, None);
            }
        }
        assert_eq!(r.m.remembered(), 0);
    }
}

#[test]
fn undecodable_lines_are_rejected_with_the_decoders_reason() {
    let mut r = Rig::new(consume(), 2000);
    rejected(
        &r.at(0, "E2801160600002054CC2096F"),
        &["unsupported at offset 0", "E2"],
    );
    rejected(
        &r.at(1, "350000000000000000000000"),
        &["unsupported", "GID-96"],
    );
    rejected(
        &r.at(2, "Tag:3074 257B F719 4E40 0000 1A8Z, Ant:1"),
        &["invalid_character at offset 32", "\"Z\""],
    );
    rejected(&r.at(3, "3074257BF7194E4000001A"), &["too_short"]);
    rejected(&r.at(4, ""), &["empty"]);
    rejected(&r.at(5, "\u{1b}[0m"), &["invalid_character", "\\x1b"]);
    // The machine goes on.
    accepted(&r.at(6, TDS));
}

#[test]
fn a_refused_read_is_not_remembered() {
    let mut r = Rig::new(consume(), 2000);
    let step = r.read(0, TDS);
    accepted(&step);
    r.m.committed(false);
    let fb = step.refused("the gateway's storage is full");
    assert_eq!(fb.result, FeedbackResult::Rejected);
    assert!(
        fb.reason
            .as_deref()
            .unwrap()
            .contains("next read tries again")
    );
    assert_eq!(r.m.remembered(), 0);
    // The next read tries again, and once stored the tag is remembered.
    accepted(&r.at(100, TDS));
    noted(&r.at(200, TDS));
}

#[test]
fn a_late_refusal_forgets_only_the_refused_events_tag() {
    let mut r = Rig::new(portal(), 2000);
    // Pipelined: each step is reported stored at once, the real outcome comes later.
    let a = accepted(&r.at(0, &sgtin(1))).id();
    accepted(&r.at(1, &sgtin(2)));
    noted(&r.at(2, &sgtin(1)));
    Machine::not_stored(&mut r.m, &[a]);
    accepted(&r.at(3, &sgtin(1)));
    noted(&r.at(4, &sgtin(2)));
    // A refusal of an event whose tag has been counted again since does not forget the newer
    // count.
    let mut r = Rig::new(portal(), 2000);
    let old = accepted(&r.at(0, &sgtin(1))).id();
    accepted(&r.at(5000, &sgtin(1)));
    Machine::not_stored(&mut r.m, &[old]);
    noted(&r.at(5001, &sgtin(1)));
    // Unknown ids are ignored.
    Machine::not_stored(&mut r.m, &[EventId::new_v7(1, [9; 10])]);
    noted(&r.at(5002, &sgtin(1)));
}

#[test]
fn an_outcome_not_reported_before_the_next_read_counts_as_stored() {
    let mut r = Rig::new(consume(), 2000);
    accepted(&r.read(0, TDS));
    noted(&r.read(1, TDS));
    r.m.committed(false);
    // The refusal came after another read: it is about that read, which made no event.
    noted(&r.at(2, TDS));
}

#[test]
fn deadline_and_tick_let_memory_fall_back() {
    let mut r = Rig::new(consume(), 2000);
    assert_eq!(Machine::deadline(&r.m), None);
    for s in 0..1000 {
        accepted(&r.at(i64::try_from(s).unwrap(), &sgtin(s)));
    }
    assert_eq!(r.m.remembered(), 1000);
    // The first tag read leaves first.
    assert_eq!(Machine::deadline(&r.m), Some(ts(2000)));
    // Re-reading it moves it to the back: the next deadline is the second tag's.
    noted(&r.at(1000, &sgtin(0)));
    assert_eq!(Machine::deadline(&r.m), Some(ts(2001)));
    let mut ids = |_: Timestamp| -> EventId { unreachable!("tick makes no event") };
    assert!(Machine::tick(&mut r.m, ts(2500), &mut ids).is_none());
    // Tags 1 to 500 were last read at or before 500 ms: gone; 501 to 999 and tag 0 stay.
    assert_eq!(r.m.remembered(), 500);
    assert!(Machine::tick(&mut r.m, ts(5000), &mut ids).is_none());
    assert_eq!(r.m.remembered(), 0);
    assert_eq!(Machine::deadline(&r.m), None);
}

#[test]
fn a_full_table_forgets_the_tag_read_longest_ago() {
    let mut r = Rig::with_capacity(consume(), 60_000, 3);
    for s in 1..=3 {
        accepted(&r.at(i64::try_from(s).unwrap(), &sgtin(s)));
    }
    noted(&r.at(10, &sgtin(1)));
    // Tag 2 is now the one read longest ago.
    accepted(&r.at(11, &sgtin(4)));
    assert_eq!(r.m.remembered(), 3);
    noted(&r.at(12, &sgtin(1)));
    noted(&r.at(13, &sgtin(3)));
    noted(&r.at(14, &sgtin(4)));
    accepted(&r.at(15, &sgtin(2)));
}

#[test]
fn the_default_table_is_bounded_on_a_stream_of_distinct_tags() {
    let mut r = Rig::new(portal(), 3_600_000);
    let n = u64::try_from(MAX_TAGS).unwrap() + 5000;
    for s in 0..n {
        let step = r.at(i64::try_from(s).unwrap(), &sgtin(s));
        assert_eq!(step.feedback.result, FeedbackResult::Accepted);
        assert!(r.m.remembered() <= MAX_TAGS);
    }
    assert_eq!(r.m.remembered(), MAX_TAGS);
    // The most recent tags are the ones remembered.
    noted(&r.at(i64::try_from(n).unwrap(), &sgtin(n - 1)));
    accepted(&r.at(i64::try_from(n + 1).unwrap(), &sgtin(0)));
}

#[test]
fn the_machine_is_pipelined_without_lines() {
    let r = Rig::new(consume(), 2000);
    assert!(Machine::pipelined(&r.m));
    assert_eq!(Machine::open_lines(&r.m), 0);
    assert_eq!(Machine::source(&r.m).as_str(), "cabinet");
}

#[test]
fn recent_events_cover_what_a_driver_keeps_in_flight() {
    const { assert!(RECENT_EVENTS >= crate::sources::driver::IN_FLIGHT) };
}

/// What a read does, for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Event,
    Repeat,
}

proptest! {
    /// Against a model without a capacity limit: a read is an event exactly when its key was
    /// not counted or refreshed within the window before it.
    #[test]
    fn matches_a_model_of_the_sliding_window(
        reads in proptest::collection::vec((0u64..6, 0u16..3, 0i64..1500, any::<bool>()), 1..120),
        window_ms in prop_oneof![Just(0u64), 1u64..3000],
        passthrough in any::<bool>(),
    ) {
        let mode = if passthrough { TagMode::Passthrough } else { consume() };
        let mut r = Rig::new(mode, window_ms);
        let window = i64::try_from(window_ms).unwrap();
        let mut model: HashMap<(u64, Option<u16>), i64> = HashMap::new();
        let mut t = 0i64;
        for (serial, antenna, gap, stored) in reads {
            t += gap;
            let line = format!("Tag:{}, Ant:{antenna}", sgtin(serial));
            let key = (serial, passthrough.then_some(antenna));
            let expect = match model.get(&key) {
                Some(&last) if t - last < window => Outcome::Repeat,
                _ => Outcome::Event,
            };
            let step = r.read(t, &line);
            r.m.committed(stored);
            let got = match step.feedback.result {
                FeedbackResult::Accepted => Outcome::Event,
                FeedbackResult::Noted => Outcome::Repeat,
                FeedbackResult::Rejected => panic!("{step:?}"),
            };
            prop_assert_eq!(got, expect, "read of {:?} at {}", key, t);
            match (expect, stored) {
                (Outcome::Repeat, _) => { model.insert(key, t); }
                (Outcome::Event, true) if window > 0 => { model.insert(key, t); }
                (Outcome::Event, _) => { model.remove(&key); }
            }
            prop_assert!(r.m.remembered() <= model.len());
        }
    }

    /// A stream of distinct tags never grows the table past its capacity.
    #[test]
    fn distinct_tags_stay_within_capacity(
        serials in proptest::collection::vec(any::<u64>(), 1..400),
        capacity in 1usize..50,
        gaps in proptest::collection::vec(0i64..100, 400),
    ) {
        let mut r = Rig::with_capacity(portal(), 1000, capacity);
        let mut t = 0;
        for (serial, gap) in serials.iter().zip(gaps) {
            t += gap;
            let _ = r.at(t, &sgtin(*serial));
            prop_assert!(r.m.remembered() <= capacity);
            if let Some(d) = Machine::deadline(&r.m) {
                prop_assert!(d > ts(t), "an expired tag is left in the table");
            }
        }
    }

    /// Any bytes: never a panic, exactly one feedback, an event only when accepted.
    #[test]
    fn never_panics(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..20),
        mode in 0u8..3,
    ) {
        let mode = match mode { 0 => consume(), 1 => portal(), _ => TagMode::Passthrough };
        let mut r = Rig::new(mode, 500);
        for (i, line) in lines.iter().enumerate() {
            let now = ts(i64::try_from(i).unwrap() * 100);
            let mut ids = |t: Timestamp| EventId::new_v7(u64::try_from(t.unix_millis()).unwrap(), [1; 10]);
            let step = Machine::scan(&mut r.m, line, now, now.date(), &mut ids);
            prop_assert_eq!(
                step.feedback.result == FeedbackResult::Accepted,
                !step.events.is_empty()
            );
        }
    }
}
