//! The Odoo sink end to end: the real `tallyman` binary (stdin source, session workflow, odoo
//! sink) against the fake Odoo (`tallyman_tests::odoo`) of each version, 16 to 19, over real
//! HTTP. Every scenario runs once per version.
//!
//! - Receipts with lots, expiry dates, serial numbers and untracked items, a transfer and a
//!   consumption (picking mode) of a lot a receipt of the same batch brought in, in one batch:
//!   each event exactly one validated picking, lots created once (and reused) with their
//!   expiry, the quants right; an unknown GTIN and a receipt Odoo refuses (3 units of a
//!   serial-tracked product) are dead letters, the second with Odoo's own message, and do not
//!   hold back the rest of the batch. A missing API key file stops the sink (health red) until
//!   the file appears.
//! - Consumption in scrap mode: one validated scrap per line, the lot's quant reduced.
//! - The agent killed with SIGKILL at every step of the state machine (the step's call is
//!   committed by the fake, its answer held back, the agent killed), then started again: every
//!   event exactly once in Odoo (pickings, moves, quants). The steps are those the sink really
//!   calls, taken from an undisturbed run: for a group of events and for one event alone, and
//!   for scraps.
//! - Lost answers, serialization and lock conflicts, a proxy's 502 on every step: retried,
//!   nothing twice, nothing dead-lettered.
//! - Key rotation without a restart: the old key refused → the sink stops, health red,
//!   nothing dead-lettered; the new key written to the file → events flow, health green.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::Agent;
use tallyman_tests::hub::Pki;
use tallyman_tests::odoo::{Call, FakeOdoo, Fault, FaultKind, Stock, Version};
use tallyman_tests::tallyman_bin;

const WAIT: Duration = Duration::from_secs(60);

// GTIN-14 forms of the fake's seeded products (odoo-api.md §5.3: Odoo holds them as printed).
/// "Gauze": EAN-13 5901234123457, lot-tracked, with expiration dates.
const GAUZE: &str = "05901234123457";
/// "Syringe": GTIN-14 09506000134352, lot-tracked.
const SYRINGE: &str = "09506000134352";
/// "Catheter": UPC-A 012345678905, serial-tracked.
const CATHETER: &str = "00012345678905";
/// "Mask": EAN-8 96385074, untracked.
const MASK: &str = "00000096385074";
/// No product has it.
const UNKNOWN: &str = "04012345123456";

const STOCK: &str = "WH/Stock";
const SHELF_1: &str = "WH/Stock/Shelf 1";
const CONSUMPTION: &str = "Virtual Locations/Consumption";

/// A GS1 item scan: GTIN, expiry 2035-12-31, a lot.
fn lot(gtin: &str, lot: &str) -> String {
    format!("01{gtin}17351231" /* expiry */) + &format!("10{lot}")
}

/// A GS1 item scan: GTIN and a serial number.
fn serial(gtin: &str, serial: &str) -> String {
    format!("01{gtin}21{serial}")
}

/// A GS1 item scan: GTIN only.
fn item(gtin: &str) -> String {
    format!("01{gtin}")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Picking,
    Scrap,
}

/// Files and configuration of one test.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    key: PathBuf,
}

impl Setup {
    fn new(odoo: &FakeOdoo, mode: Mode) -> Setup {
        Setup::with(odoo, mode, "timeout_secs = 20\n")
    }

    /// With more settings of the sink (`key = value` lines).
    fn with(odoo: &FakeOdoo, mode: Mode, sink: &str) -> Setup {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let data = dir.path().join("data");
        let key = dir.path().join("odoo.key");
        write_key(&key, &odoo.bot_key());
        let text = format!(
            r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

[log]
level = "info,tallyman_agent::sinks::odoo=debug"

[health]
interval_secs = 1

[[sources]]
name = "stdin"
type = "stdin"
workflow = "session"
location = "WH/Stock"

[[sinks]]
name = "odoo"
type = "odoo"
endpoint = "{endpoint}"
database = "{database}"
login = "{login}"
api_key_file = "{key}"
kinds = ["receipt", "transfer", "consumption"]
consumption_mode = "{mode}"
consumption_location = "{CONSUMPTION}"
batch_size = 50
retry = {{ initial_ms = 20, max_ms = 200 }}
{sink}"#,
            data = data.display(),
            endpoint = odoo.url(),
            database = odoo.database(),
            login = odoo.bot_login(),
            key = key.display(),
            mode = match mode {
                Mode::Picking => "picking",
                Mode::Scrap => "scrap",
            },
        );
        let config = dir.path().join("tallyman.toml");
        std::fs::write(&config, text).unwrap();
        Setup {
            log: dir.path().join("agent.log"),
            dir,
            config,
            key,
        }
    }

    fn start(&self) -> Agent {
        Agent::start(&self.config, &self.log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The sink halts until the key file appears: events sent meanwhile wait in the spool
    /// and are delivered in one batch.
    fn hold(&self) {
        std::fs::remove_file(&self.key).unwrap();
    }

    fn release(&self, odoo: &FakeOdoo) {
        write_key(&self.key, &odoo.bot_key());
    }

    /// Wait until `health.json` satisfies `cond`; the report then.
    fn wait_health(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let path = self.data().join("health.json");
        let deadline = Instant::now() + WAIT;
        loop {
            let report = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if let Some(r) = report.as_ref().filter(|r| cond(r)) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "health.json never showed {what}; it is:\n{report:#?}\nagent log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// End of input, then SIGTERM: the agent stops cleanly (exit 0).
    fn stop(&self, mut agent: Agent) {
        agent.close_stdin();
        let (status, _) = agent.terminate(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", self.log());
    }

    /// Wait until the log, from byte `from` on, contains `needle`.
    fn wait_log(&self, from: usize, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().get(from..).unwrap_or_default().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `tallyman spool --data-dir DATA dlq list` (the agent stopped): `(event id, reason)`.
    fn dead_letters(&self) -> Vec<(String, String)> {
        let out = Command::new(tallyman_bin())
            .args(["spool", "--data-dir"])
            .arg(self.data())
            .args(["dlq", "list"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dlq list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let id = v["event_id"].as_str().unwrap().to_owned();
                (id, v["reason"].as_str().unwrap().to_owned())
            })
            .collect()
    }
}

fn write_key(path: &Path, key: &str) {
    // Written in place, as an operator's editor or `echo >` would.
    std::fs::write(path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Send one session (its scans, then `TM:DONE`) and wait until it is accepted; the event id.
fn session(agent: &mut Agent, scans: &[String]) -> String {
    let before = agent.feedback_len();
    let mut all: Vec<String> = scans.to_vec();
    all.push("TM:DONE".into());
    agent.send(&all).unwrap();
    assert!(
        agent.wait_feedback(WAIT, |fb| fb.lines.len() >= before + all.len()),
        "not every scan got feedback"
    );
    let lines = agent.feedback_lines();
    for line in &lines[before..before + all.len() - 1] {
        assert_eq!(line["result"], "noted", "{line}");
    }
    let done = &lines[before + all.len() - 1];
    assert_eq!(done["result"], "accepted", "{done}");
    done["event_id"].as_str().unwrap().to_owned()
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// Wait until the fake's stock satisfies `cond`; the stock then.
fn wait_stock(odoo: &FakeOdoo, setup: &Setup, what: &str, cond: impl Fn(&Stock) -> bool) -> Stock {
    let deadline = Instant::now() + WAIT;
    loop {
        let stock = odoo.snapshot();
        if cond(&stock) {
            return stock;
        }
        assert!(
            Instant::now() < deadline,
            "the fake Odoo never showed {what}; agent log:\n{}",
            setup.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the fake has seen a call of `model.method` after the first `from` calls.
fn wait_call(odoo: &FakeOdoo, setup: &Setup, from: usize, model: &str, method: &str) {
    let deadline = Instant::now() + WAIT;
    while !odoo
        .calls()
        .iter()
        .skip(from)
        .any(|c| c.model == model && c.method == method)
    {
        assert!(
            Instant::now() < deadline,
            "the sink never called {model}.{method}; agent log:\n{}",
            setup.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The event's one picking, done.
fn done(stock: &Stock, event: &str) -> bool {
    let p = stock.pickings_with_origin(event);
    p.len() == 1 && p[0].state == "done"
}

/// The event's scraps, `n` of them, all done.
fn scrapped(stock: &Stock, event: &str, n: usize) -> bool {
    let s = stock.scraps_with_origin(event);
    s.len() == n && s.iter().all(|s| s.state == "done")
}

struct Ids {
    gauze: i64,
    syringe: i64,
    catheter: i64,
    mask: i64,
    stock: i64,
    shelf_1: i64,
    consumption: i64,
}

fn ids(odoo: &FakeOdoo) -> Ids {
    let s = odoo.snapshot();
    Ids {
        gauze: s.product_id(&GAUZE[1..]).unwrap(),
        syringe: s.product_id(SYRINGE).unwrap(),
        catheter: s.product_id(&CATHETER[2..]).unwrap(),
        mask: s.product_id(&MASK[6..]).unwrap(),
        stock: s.location_id(STOCK).unwrap(),
        shelf_1: s.location_id(SHELF_1).unwrap(),
        consumption: s.location_id(CONSUMPTION).unwrap(),
    }
}

/// The moves of the event's picking: `(product, demand)`, sorted.
fn moves(stock: &Stock, event: &str) -> Vec<(i64, f64)> {
    let p = stock.pickings_with_origin(event);
    assert_eq!(p.len(), 1, "one picking for {event}");
    let mut m: Vec<(i64, f64)> = stock
        .moves_of(p[0].id)
        .iter()
        .map(|m| (m.product_id, m.product_uom_qty))
        .collect();
    m.sort_by(|a, b| a.partial_cmp(b).unwrap());
    m
}

macro_rules! per_version {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;
            #[test]
            fn v16() {
                super::$scenario(Version::V16);
            }
            #[test]
            fn v17() {
                super::$scenario(Version::V17);
            }
            #[test]
            fn v18() {
                super::$scenario(Version::V18);
            }
            #[test]
            fn v19() {
                super::$scenario(Version::V19);
            }
        }
    };
}

// ------------------------------------------------------------------------------------------

per_version!(receipts_transfers_and_consumption_land_once);

fn receipts_transfers_and_consumption_land_once(v: Version) {
    let odoo = FakeOdoo::start(v);
    let ids = ids(&odoo);
    let setup = Setup::new(&odoo, Mode::Picking);
    setup.hold();
    let mut agent = setup.start();
    let receipt = session(
        &mut agent,
        &[
            s("TM:RECEIVE"),
            s("TM:TO:WH/Stock"),
            s("TM:REF:PO-7"),
            s("TM:QTY:5"),
            lot(GAUZE, "GF1"),
            s("TM:QTY:2"),
            lot(SYRINGE, "S1"),
            serial(CATHETER, "SN1"),
            serial(CATHETER, "SN2"),
            s("TM:QTY:10"),
            item(MASK),
        ],
    );
    let too_many_serials = session(
        &mut agent,
        &[
            s("TM:RECEIVE"),
            s("TM:TO:WH/Stock"),
            s("TM:QTY:3"),
            lot(CATHETER, "SNX"),
        ],
    );
    let unknown = session(
        &mut agent,
        &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(UNKNOWN, "U1")],
    );
    let transfer = session(
        &mut agent,
        &[
            s("TM:TRANSFER"),
            format!("TM:TO:{SHELF_1}"),
            s("TM:FROM:WH/Stock"),
            s("TM:QTY:2"),
            lot(GAUZE, "GF1"),
        ],
    );
    let consumption = session(
        &mut agent,
        &[
            s("TM:CONSUME"),
            format!("TM:LOC:{SHELF_1}"),
            lot(GAUZE, "GF1"),
        ],
    );
    // (A session keeps its places: this receipt names its own.)
    let again = session(
        &mut agent,
        &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(GAUZE, "GF1")],
    );
    let good = [&receipt, &transfer, &consumption, &again];
    // No key file: the sink stops, red, and says which file it needs; the events wait.
    let red = setup.wait_health("the sink stopped", |r| {
        r["sinks"]["odoo"]["state"] == "stopped"
    });
    assert_eq!(red["state"], "red");
    let why = red["sinks"]["odoo"]["last_error"].as_str().unwrap();
    assert!(why.contains(&setup.key.display().to_string()), "{why}");
    assert!(odoo.calls().is_empty());

    setup.release(&odoo);
    let stock = wait_stock(&odoo, &setup, "every good event done", |st| {
        good.iter().all(|e| done(st, e))
    });
    setup.wait_health("the sink green again", |r| {
        r["state"] == "green" && r["sinks"]["odoo"]["dead_letters"] == 2
    });
    setup.stop(agent);

    // The pickings: one per event, of the right type and places.
    let picking = |e: &str| stock.pickings_with_origin(e)[0].clone();
    assert_eq!(picking(&receipt).picking_type_code, "incoming");
    assert_eq!(picking(&receipt).location_dest_id, ids.stock);
    assert_eq!(picking(&transfer).picking_type_code, "internal");
    assert_eq!(
        (
            picking(&transfer).location_id,
            picking(&transfer).location_dest_id
        ),
        (ids.stock, ids.shelf_1)
    );
    assert_eq!(
        (
            picking(&consumption).location_id,
            picking(&consumption).location_dest_id
        ),
        (ids.shelf_1, ids.consumption)
    );
    // One move per product (the two serials of the catheter are one move of 2).
    let mut want = vec![
        (ids.gauze, 5.0),
        (ids.syringe, 2.0),
        (ids.catheter, 2.0),
        (ids.mask, 10.0),
    ];
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(moves(&stock, &receipt), want);
    assert_eq!(moves(&stock, &transfer), vec![(ids.gauze, 2.0)]);
    assert_eq!(moves(&stock, &consumption), vec![(ids.gauze, 1.0)]);
    assert_eq!(moves(&stock, &again), vec![(ids.gauze, 1.0)]);
    // The event can be found by its external id too.
    let xmlid = format!("tallyman.evt_{}", receipt.replace('-', "_"));
    assert_eq!(
        stock.xmlid(&xmlid),
        Some(("stock.picking", picking(&receipt).id))
    );

    // Lots: created once (the second receipt reused GF1), with the expiry where the product
    // keeps one.
    let gf1: Vec<_> = stock
        .lots
        .iter()
        .filter(|l| l.product_id == ids.gauze)
        .collect();
    assert_eq!(gf1.len(), 1, "{gf1:?}");
    assert_eq!(gf1[0].name, "GF1");
    assert!(
        gf1[0]
            .expiration_date
            .as_deref()
            .is_some_and(|d| d.starts_with("2035-12-31")),
        "{gf1:?}"
    );
    for sn in ["SN1", "SN2"] {
        assert!(stock.lot(ids.catheter, sn).is_some(), "serial {sn}");
    }

    // Quants: GF1 5 + 1 in, 2 to the shelf, 1 consumed there.
    assert_eq!(stock.quantity(ids.gauze, ids.stock, Some("GF1")), 4.0);
    assert_eq!(stock.quantity(ids.gauze, ids.shelf_1, Some("GF1")), 1.0);
    assert_eq!(stock.quantity(ids.gauze, ids.consumption, Some("GF1")), 1.0);
    assert_eq!(stock.quantity(ids.syringe, ids.stock, Some("S1")), 2.0);
    assert_eq!(stock.quantity(ids.catheter, ids.stock, Some("SN1")), 1.0);
    assert_eq!(stock.quantity(ids.catheter, ids.stock, Some("SN2")), 1.0);
    assert_eq!(stock.quantity(ids.mask, ids.stock, None), 10.0);

    // The refused receipt: its picking is left open in Odoo for someone to look at, nothing
    // received; the unknown item: nothing at all.
    let open = stock.pickings_with_origin(&too_many_serials);
    assert_eq!(open.len(), 1);
    assert_ne!(open[0].state, "done");
    assert!(stock.lot(ids.catheter, "SNX").is_none());
    assert!(stock.pickings_with_origin(&unknown).is_empty());

    // Dead letters: those two, with Odoo's own message / the GTIN that is unknown.
    let dead = setup.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reason = |id: &str| {
        dead.iter()
            .find(|(e, _)| e == id)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no dead letter for {id}: {dead:?}"))
    };
    let r = reason(&too_many_serials);
    assert!(
        r.contains("You can only process 1.0 Units of products with unique serial number."),
        "{r}"
    );
    let r = reason(&unknown);
    assert!(r.contains(UNKNOWN), "{r}");

    // The refused receipt was validated together with the good one; Odoo refused that call,
    // and each went on alone (found by its external id).
    let calls = odoo.calls();
    let refused = calls
        .iter()
        .position(|c| c.method == "button_validate" && c.error.is_some())
        .expect("a refused validation");
    let alone = calls[refused..]
        .iter()
        .filter(|c| c.method == "check_object_reference")
        .count();
    assert_eq!(alone, 2, "{calls:#?}");
}

per_version!(consumption_in_scrap_mode_scraps_each_line_once);

fn consumption_in_scrap_mode_scraps_each_line_once(v: Version) {
    let odoo = FakeOdoo::start(v);
    let ids = ids(&odoo);
    odoo.add_stock(
        ids.gauze,
        ids.stock,
        Some(("GS1", Some("2035-12-31 12:00:00"))),
        10.0,
    );
    odoo.add_stock(ids.syringe, ids.stock, Some(("SS1", None)), 10.0);
    odoo.add_stock(ids.mask, ids.stock, None, 5.0);
    let setup = Setup::new(&odoo, Mode::Scrap);
    setup.hold();
    let mut agent = setup.start();
    let first = session(
        &mut agent,
        &[
            s("TM:CONSUME"),
            s("TM:LOC:WH/Stock"),
            s("TM:QTY:2"),
            lot(GAUZE, "GS1"),
            lot(SYRINGE, "SS1"),
            item(MASK),
        ],
    );
    let second = session(
        &mut agent,
        &[s("TM:CONSUME"), s("TM:LOC:WH/Stock"), lot(GAUZE, "GS1")],
    );
    // A receipt still becomes a picking.
    let receipt = session(
        &mut agent,
        &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(SYRINGE, "SS2")],
    );
    setup.wait_health("the sink stopped", |r| {
        r["sinks"]["odoo"]["state"] == "stopped"
    });
    setup.release(&odoo);
    let stock = wait_stock(&odoo, &setup, "the scraps done", |st| {
        scrapped(st, &first, 3) && scrapped(st, &second, 1) && done(st, &receipt)
    });
    setup.stop(agent);
    assert!(setup.dead_letters().is_empty());

    let mut lines: Vec<(i64, Option<i64>, f64, i64)> = stock
        .scraps_with_origin(&first)
        .iter()
        .map(|s| (s.product_id, s.lot_id, s.scrap_qty, s.location_id))
        .collect();
    lines.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let lot_id = |p: i64, name: &str| stock.lot(p, name).map(|l| l.id);
    let mut want = vec![
        (ids.gauze, lot_id(ids.gauze, "GS1"), 2.0, ids.stock),
        (ids.syringe, lot_id(ids.syringe, "SS1"), 1.0, ids.stock),
        (ids.mask, None, 1.0, ids.stock),
    ];
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(lines, want);
    assert!(stock.pickings_with_origin(&first).is_empty());
    assert_eq!(stock.quantity(ids.gauze, ids.stock, Some("GS1")), 7.0);
    assert_eq!(stock.quantity(ids.syringe, ids.stock, Some("SS1")), 9.0);
    assert_eq!(stock.quantity(ids.mask, ids.stock, None), 4.0);
    assert_eq!(stock.quantity(ids.syringe, ids.stock, Some("SS2")), 1.0);
}

// ------------------------------------------------------------------------------------------
// Crashes and faults at every step

/// Whether a call only looks up master data (products, units, places, operation types, lots)
/// or logs in: not a step of an event's state machine.
fn is_lookup(c: &Call) -> bool {
    c.model == "common"
        || c.method == "context_get"
        || (c.method == "search_read"
            && matches!(
                c.model.as_str(),
                "product.product"
                    | "uom.uom"
                    | "stock.location"
                    | "stock.picking.type"
                    | "stock.lot"
            ))
}

/// The steps of the state machine the sink called, `(model, method)` in first-call order.
fn steps(calls: &[Call]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for c in calls.iter().filter(|c| !is_lookup(c)) {
        let step = (c.model.clone(), c.method.clone());
        if !out.contains(&step) {
            out.push(step);
        }
    }
    out
}

/// What a run of the crash scenario sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// A receipt (two lots, one with an expiry), a transfer and a consumption of lots on hand,
    /// delivered as one batch: the grouped path.
    Group,
    /// The receipt alone: the one-event path.
    Alone,
    /// Two consumption events in scrap mode (four scraps), one batch.
    Scraps,
    /// One consumption event in scrap mode (three scraps) alone.
    ScrapsAlone,
}

/// The events of run `k` and the checks that each landed exactly once.
struct Round {
    k: usize,
    events: Vec<(&'static str, String)>,
}

fn send_round(agent: &mut Agent, odoo: &FakeOdoo, ids: &Ids, load: Load, k: usize) -> Round {
    let mut events = Vec::new();
    match load {
        Load::Group | Load::Alone => {
            events.push((
                "receipt",
                session(
                    agent,
                    &[
                        s("TM:RECEIVE"),
                        s("TM:TO:WH/Stock"),
                        s("TM:QTY:5"),
                        lot(GAUZE, &format!("R{k}")),
                        s("TM:QTY:2"),
                        lot(SYRINGE, &format!("R{k}")),
                    ],
                ),
            ));
            if load == Load::Group {
                odoo.add_stock(ids.gauze, ids.stock, Some((&format!("T{k}"), None)), 10.0);
                odoo.add_stock(ids.syringe, ids.stock, Some((&format!("C{k}"), None)), 10.0);
                events.push((
                    "transfer",
                    session(
                        agent,
                        &[
                            s("TM:TRANSFER"),
                            format!("TM:TO:{SHELF_1}"),
                            s("TM:FROM:WH/Stock"),
                            s("TM:QTY:3"),
                            lot(GAUZE, &format!("T{k}")),
                        ],
                    ),
                ));
                events.push((
                    "consumption",
                    session(
                        agent,
                        &[
                            s("TM:CONSUME"),
                            s("TM:LOC:WH/Stock"),
                            lot(SYRINGE, &format!("C{k}")),
                        ],
                    ),
                ));
            }
        }
        Load::Scraps | Load::ScrapsAlone => {
            odoo.add_stock(ids.gauze, ids.stock, Some((&format!("G{k}"), None)), 10.0);
            odoo.add_stock(ids.syringe, ids.stock, Some((&format!("S{k}"), None)), 10.0);
            odoo.add_stock(ids.mask, ids.stock, None, 10.0);
            events.push((
                "scraps",
                session(
                    agent,
                    &[
                        s("TM:CONSUME"),
                        s("TM:LOC:WH/Stock"),
                        s("TM:QTY:2"),
                        lot(GAUZE, &format!("G{k}")),
                        lot(SYRINGE, &format!("S{k}")),
                        item(MASK),
                    ],
                ),
            ));
            if load == Load::ScrapsAlone {
                return Round { k, events };
            }
            events.push((
                "scrap",
                session(
                    agent,
                    &[
                        s("TM:CONSUME"),
                        s("TM:LOC:WH/Stock"),
                        lot(SYRINGE, &format!("S{k}")),
                    ],
                ),
            ));
        }
    }
    Round { k, events }
}

impl Round {
    fn landed(&self, stock: &Stock) -> bool {
        self.events.iter().all(|(what, e)| match *what {
            "scraps" => scrapped(stock, e, 3),
            "scrap" => scrapped(stock, e, 1),
            _ => done(stock, e),
        })
    }

    /// Each event once: its records, their quantities, the quants of its lots.
    fn check(&self, stock: &Stock, ids: &Ids) {
        let k = self.k;
        for (what, e) in &self.events {
            let q = |p: i64, loc: i64, lot: &str| stock.quantity(p, loc, Some(lot));
            match *what {
                "receipt" => {
                    let mut want = vec![(ids.gauze, 5.0), (ids.syringe, 2.0)];
                    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    assert_eq!(moves(stock, e), want, "receipt {k}");
                    for (p, n) in [(ids.gauze, 5.0), (ids.syringe, 2.0)] {
                        let name = format!("R{k}");
                        assert_eq!(q(p, ids.stock, &name), n, "receipt {k}");
                        let lots = stock
                            .lots
                            .iter()
                            .filter(|l| l.product_id == p && l.name == name);
                        assert_eq!(lots.count(), 1, "lot {name} once");
                    }
                }
                "transfer" => {
                    assert_eq!(moves(stock, e), vec![(ids.gauze, 3.0)], "transfer {k}");
                    let name = format!("T{k}");
                    assert_eq!(q(ids.gauze, ids.stock, &name), 7.0, "transfer {k}");
                    assert_eq!(q(ids.gauze, ids.shelf_1, &name), 3.0, "transfer {k}");
                }
                "consumption" => {
                    assert_eq!(moves(stock, e), vec![(ids.syringe, 1.0)], "consumption {k}");
                    let name = format!("C{k}");
                    assert_eq!(q(ids.syringe, ids.stock, &name), 9.0, "consumption {k}");
                    assert_eq!(
                        q(ids.syringe, ids.consumption, &name),
                        1.0,
                        "consumption {k}"
                    );
                }
                "scraps" | "scrap" => {
                    assert!(stock.pickings_with_origin(e).is_empty());
                }
                _ => unreachable!(),
            }
        }
        if self.events.iter().any(|(w, _)| *w == "scraps") {
            let gauze = format!("G{k}");
            let syringe = format!("S{k}");
            let scrap = self.events.iter().any(|(w, _)| *w == "scrap");
            assert_eq!(stock.quantity(ids.gauze, ids.stock, Some(&gauze)), 8.0);
            assert_eq!(
                stock.quantity(ids.syringe, ids.stock, Some(&syringe)),
                if scrap { 8.0 } else { 9.0 }
            );
        }
    }
}

/// Run rounds of `load`: the first undisturbed (it tells the steps), then one per step with
/// the agent killed while that step's call is committed and its answer held back, then
/// started again. Every round's events exactly once; nothing else in Odoo.
fn killed_at_every_step(v: Version, load: Load) {
    let odoo = FakeOdoo::start(v);
    let ids = ids(&odoo);
    let mode = match load {
        Load::Scraps | Load::ScrapsAlone => Mode::Scrap,
        Load::Group | Load::Alone => Mode::Picking,
    };
    let setup = Setup::new(&odoo, mode);
    let mut rounds: Vec<Round> = Vec::new();
    let mut step_list: Option<Vec<(String, String)>> = None;
    let mut k = 0;
    loop {
        let step = match &step_list {
            None => None,
            Some(list) => match list.get(k - 1) {
                Some(s) => Some(s.clone()),
                None => break,
            },
        };
        let grouped = matches!(load, Load::Group | Load::Scraps);
        if grouped {
            setup.hold();
        }
        let log_before = setup.log().len();
        let mut agent = setup.start();
        let round = send_round(&mut agent, &odoo, &ids, load, k);
        let from = odoo.calls().len();
        if let Some((model, method)) = &step {
            odoo.inject(Fault::on(
                model,
                method,
                FaultKind::Delay(Duration::from_secs(30)),
            ));
        }
        if grouped {
            // The sink has stopped for want of a key, so the round's events are one batch.
            setup.wait_log(log_before, "Sink stopped until");
            setup.release(&odoo);
        }
        if let Some((model, method)) = &step {
            wait_call(&odoo, &setup, from, model, method);
            agent.kill9();
            let restart = setup.log().len();
            agent = setup.start();
            // The events come again (their cursor did not move) and are found in Odoo.
            setup.wait_log(restart, "Odoo delivery done");
        }
        let stock = wait_stock(&odoo, &setup, "the round's events recorded", |st| {
            round.landed(st)
        });
        setup.stop(agent);
        if step_list.is_none() {
            let list = steps(&odoo.calls()[from..]);
            assert!(list.len() >= 4, "{list:?}");
            step_list = Some(list);
        }
        rounds.push(round);
        for r in &rounds {
            r.check(&stock, &ids);
        }
        let want: usize = rounds
            .iter()
            .flat_map(|r| &r.events)
            .map(|(what, _)| match *what {
                "scraps" => 3,
                _ => 1,
            })
            .sum();
        assert_eq!(
            stock.pickings.len() + stock.scraps.len(),
            want,
            "nothing but the rounds' records"
        );
        if mode == Mode::Picking {
            let moves: usize = rounds
                .iter()
                .flat_map(|r| &r.events)
                .map(|(what, _)| if *what == "receipt" { 2 } else { 1 })
                .sum();
            assert_eq!(stock.moves.len(), moves, "nothing but the rounds' moves");
        }
        k += 1;
    }
    assert!(
        setup.dead_letters().is_empty(),
        "{:?}",
        setup.dead_letters()
    );
    let steps = step_list.unwrap();
    eprintln!("{v}: killed at {} steps: {steps:?}", steps.len());
}

per_version!(killed_at_every_step_of_a_group);
fn killed_at_every_step_of_a_group(v: Version) {
    killed_at_every_step(v, Load::Group);
}

per_version!(killed_at_every_step_of_one_event);
fn killed_at_every_step_of_one_event(v: Version) {
    killed_at_every_step(v, Load::Alone);
}

per_version!(killed_at_every_step_of_scraps);
fn killed_at_every_step_of_scraps(v: Version) {
    killed_at_every_step(v, Load::Scraps);
}

per_version!(killed_at_every_step_of_one_event_s_scraps);
fn killed_at_every_step_of_one_event_s_scraps(v: Version) {
    killed_at_every_step(v, Load::ScrapsAlone);
}

per_version!(lost_answers_conflicts_and_proxy_errors_are_retried_without_doubles);

/// One-shot faults on every step, in the order the steps come, each failure making the sink
/// start the batch again from its first step.
fn lost_answers_conflicts_and_proxy_errors_are_retried_without_doubles(v: Version) {
    let odoo = FakeOdoo::start(v);
    let ids = ids(&odoo);
    let setup = Setup::new(&odoo, Mode::Picking);
    let on = |model: &str, method: &str, kind: FaultKind| Fault::on(model, method, kind);
    let mut faults = vec![
        on("common", "version", FaultKind::Status(503)),
        on("stock.picking", "search_read", FaultKind::Serialization),
        on("stock.picking", "search_read", FaultKind::CommitThenDrop),
        on("stock.picking", "load", FaultKind::Serialization),
        on("stock.picking", "load", FaultKind::CommitThenDrop),
        on("stock.picking", "action_confirm", FaultKind::Status(502)),
        on("stock.picking", "action_confirm", FaultKind::CommitThenDrop),
        on("stock.move", "search_read", FaultKind::CommitThenDrop),
        on("stock.move.line", "search_read", FaultKind::Lock),
        on("stock.move.line", "load", FaultKind::CommitThenDrop),
    ];
    if v != Version::V16 {
        faults.push(on("stock.move", "write", FaultKind::CommitThenDrop));
    }
    faults.extend([
        on("stock.picking", "button_validate", FaultKind::Lock),
        on("stock.picking", "read", FaultKind::CommitThenDrop),
    ]);
    let injected = faults.len();

    let mut agent = setup.start();
    let mut rounds = Vec::new();
    // Round 0 meets the faults above; round 1 loses the answer of a validation.
    for (k, faults) in [
        faults,
        vec![on(
            "stock.picking",
            "button_validate",
            FaultKind::CommitThenDrop,
        )],
    ]
    .into_iter()
    .enumerate()
    {
        let log = setup.log().len();
        setup.hold();
        let round = send_round(&mut agent, &odoo, &ids, Load::Group, k);
        setup.wait_log(log, "Sink stopped until");
        for f in faults {
            odoo.inject(f);
        }
        setup.release(&odoo);
        wait_stock(&odoo, &setup, "the round's events recorded", |st| {
            round.landed(st)
        });
        // The last fault may be met just after the last commit.
        let deadline = Instant::now() + WAIT;
        while odoo.pending_faults() > 0 {
            assert!(Instant::now() < deadline, "a fault was never met");
            std::thread::sleep(Duration::from_millis(5));
        }
        rounds.push(round);
    }
    let report = setup.wait_health("the sink green again", |r| {
        r["state"] == "green" && r["sinks"]["odoo"]["delivered"] == 6
    });
    assert!(report["sinks"]["odoo"]["retries"].as_u64().unwrap() >= injected as u64 - 1);
    setup.stop(agent);
    let stock = odoo.snapshot();
    for r in &rounds {
        r.check(&stock, &ids);
    }
    assert_eq!(stock.pickings.len(), 6);
    assert_eq!(stock.moves.len(), 8);
    assert!(setup.dead_letters().is_empty());
    let dropped = odoo
        .calls()
        .iter()
        .filter(|c| c.error.as_deref() == Some("dropped after commit"))
        .count();
    assert!(dropped >= 7, "{dropped}");
}

per_version!(a_rotated_key_stops_the_sink_until_the_new_key_is_in_the_file);

fn a_rotated_key_stops_the_sink_until_the_new_key_is_in_the_file(v: Version) {
    let odoo = FakeOdoo::start(v);
    let setup = Setup::new(&odoo, Mode::Picking);
    let mut agent = setup.start();
    let receipt = |agent: &mut Agent, lot_name: &str| {
        session(
            agent,
            &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(SYRINGE, lot_name)],
        )
    };
    let first = receipt(&mut agent, "K1");
    wait_stock(&odoo, &setup, "the first receipt", |st| done(st, &first));
    // Done in Odoo is not yet delivered for the agent (it reads the state back first): the
    // first event must be settled before the key changes, or it waits with the second.
    setup.wait_health("the first receipt delivered", |r| {
        r["sinks"]["odoo"]["delivered"] == 1 && r["sinks"]["odoo"]["backlog"] == 0
    });

    // The key is rotated in Odoo: the old one is refused from now on.
    let new_key = odoo.rotate_bot_key();
    let calls = odoo.calls().len();
    let second = receipt(&mut agent, "K2");
    let red = setup.wait_health("the sink stopped", |r| {
        r["sinks"]["odoo"]["state"] == "stopped"
    });
    assert_eq!(red["state"], "red");
    let why = red["sinks"]["odoo"]["last_error"].as_str().unwrap();
    assert!(why.contains(&setup.key.display().to_string()), "{why}");
    assert_eq!(red["sinks"]["odoo"]["backlog"], 1);
    let refused = odoo.calls()[calls..].to_vec();
    assert!(
        refused.iter().all(|c| c.error.is_some()),
        "nothing but refused calls: {refused:?}"
    );
    // Stopped means stopped: no call while the key file is unchanged.
    let third = receipt(&mut agent, "K3");
    let still = setup.wait_health("the third event waiting", |r| {
        r["sinks"]["odoo"]["backlog"] == 2
    });
    assert_eq!(still["sinks"]["odoo"]["state"], "stopped");
    assert_eq!(odoo.calls().len(), calls + refused.len());

    // The new key in the file: no restart, the events flow, health green again.
    write_key(&setup.key, &new_key);
    let stock = wait_stock(&odoo, &setup, "the waiting receipts", |st| {
        done(st, &second) && done(st, &third)
    });
    setup.wait_health("the sink green again", |r| {
        r["state"] == "green" && r["sinks"]["odoo"]["backlog"] == 0
    });
    let fourth = receipt(&mut agent, "K4");
    wait_stock(&odoo, &setup, "a receipt after the rotation", |st| {
        done(st, &fourth)
    });
    setup.stop(agent);
    assert!(
        setup.dead_letters().is_empty(),
        "a refused key dead-letters nothing"
    );
    assert_eq!(stock.pickings.len(), 3);
    let syringe = stock.product_id(SYRINGE).unwrap();
    let wh = stock.location_id(STOCK).unwrap();
    for name in ["K1", "K2", "K3"] {
        assert_eq!(stock.quantity(syringe, wh, Some(name)), 1.0);
    }
}

// ------------------------------------------------------------------------------------------
// Time and TLS

per_version!(a_slow_answer_times_out_and_the_picking_is_read_before_anything_is_repeated);

/// The validation is committed but answered after the sink's timeout: the sink gives up,
/// starts again from the first step, finds the picking done and validates nothing twice
/// (16–18 would refuse a second validation).
fn a_slow_answer_times_out_and_the_picking_is_read_before_anything_is_repeated(v: Version) {
    let odoo = FakeOdoo::start(v);
    let setup = Setup::with(&odoo, Mode::Picking, "timeout_secs = 1\n");
    odoo.inject(Fault::on(
        "stock.picking",
        "button_validate",
        FaultKind::Delay(Duration::from_secs(3)),
    ));
    let mut agent = setup.start();
    let receipt = session(
        &mut agent,
        &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(SYRINGE, "SLOW")],
    );
    setup.wait_log(0, "no answer within 1 s");
    let stock = wait_stock(&odoo, &setup, "the receipt done", |st| done(st, &receipt));
    setup.wait_health("the sink green", |r| {
        r["state"] == "green" && r["sinks"]["odoo"]["delivered"] == 1
    });
    setup.stop(agent);
    let validations = odoo
        .calls()
        .iter()
        .filter(|c| c.method == "button_validate")
        .count();
    assert_eq!(validations, 1);
    assert_eq!(stock.pickings.len(), 1);
    let syringe = stock.product_id(SYRINGE).unwrap();
    let wh = stock.location_id(STOCK).unwrap();
    assert_eq!(stock.quantity(syringe, wh, Some("SLOW")), 1.0);
    assert!(setup.dead_letters().is_empty());
}

/// Over TLS with a CA bundle: a bundle that did not sign Odoo's certificate is a retry with
/// a clear error and nothing reaches Odoo; the right bundle written over it is used without a
/// restart.
fn tls_with_the_ca_bundle(v: Version) {
    let pki = Pki::new();
    let odoo = FakeOdoo::start_tls(v, &pki);
    assert!(odoo.url().starts_with("https://"));
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ca = dir.path().join("odoo-ca.pem");
    std::fs::write(&ca, &pki.other_ca_pem).unwrap();
    let setup = Setup::with(
        &odoo,
        Mode::Picking,
        &format!("timeout_secs = 5\nca_file = \"{}\"\n", ca.display()),
    );
    let mut agent = setup.start();
    let receipt = session(
        &mut agent,
        &[s("TM:RECEIVE"), s("TM:TO:WH/Stock"), lot(SYRINGE, "TLS1")],
    );
    let yellow = setup.wait_health("the sink retrying", |r| {
        r["sinks"]["odoo"]["state"] == "retrying"
    });
    let why = yellow["sinks"]["odoo"]["last_error"].as_str().unwrap();
    assert!(why.contains("unknown issuer"), "{why}");
    assert!(why.contains(&ca.display().to_string()), "{why}");
    assert!(odoo.calls().is_empty(), "nothing reached Odoo");

    std::fs::write(&ca, &pki.ca_pem).unwrap();
    wait_stock(&odoo, &setup, "the receipt done", |st| done(st, &receipt));
    setup.wait_health("the sink green", |r| r["state"] == "green");
    setup.stop(agent);
}

#[test]
fn tls_with_the_ca_bundle_jsonrpc() {
    tls_with_the_ca_bundle(Version::V16);
}

#[test]
fn tls_with_the_ca_bundle_json2() {
    tls_with_the_ca_bundle(Version::V19);
}
