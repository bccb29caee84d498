//! Draining a backlog into Odoo: the real agent (release binary, stdin source, session
//! workflow, odoo sink) builds a backlog of receipts (a lot with an expiry), transfers and
//! consumption (lots on hand) while its API key file is missing (the sink stops), then the key
//! is written and the clock runs from the sink's first call to its last. Odoo is the fake
//! (`tallyman_tests::odoo`) of each version, answering every call after a fixed latency (as a
//! server across a network would), on the same machine.
//!
//! ```sh
//! cargo bench -p tallyman-tests --bench odoo_drain
//! TALLYMAN_BENCH_EVENTS=2000 TALLYMAN_BENCH_LATENCY_MS=50 TALLYMAN_BENCH_VERSIONS=16,19 \
//!     cargo bench -p tallyman-tests --bench odoo_drain
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::Agent;
use tallyman_tests::odoo::{FakeOdoo, Version};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One drained backlog.
struct Figures {
    version: Version,
    transport: &'static str,
    events: usize,
    calls: usize,
    span: Duration,
}

/// The scans of event `n`: three receipts in five, a transfer, a consumption.
fn event(n: usize) -> Vec<String> {
    let gs1 = |gtin: &str, lot: String| format!("01{gtin}17351231{}", "10".to_owned() + &lot);
    match n % 5 {
        0..=2 => vec![
            "TM:RECEIVE".into(),
            "TM:TO:WH/Stock".into(),
            "TM:QTY:5".into(),
            gs1("05901234123457", format!("R{n}")),
            "TM:DONE".into(),
        ],
        3 => vec![
            "TM:TRANSFER".into(),
            "TM:TO:WH/Stock/Shelf 1".into(),
            "TM:FROM:WH/Stock".into(),
            "TM:QTY:2".into(),
            gs1("05901234123457", format!("T{n}")),
            "TM:DONE".into(),
        ],
        _ => vec![
            "TM:CONSUME".into(),
            "TM:LOC:WH/Stock".into(),
            gs1("09506000134352", format!("C{n}")),
            "TM:DONE".into(),
        ],
    }
}

fn drain(version: Version, events: usize, batch: u64, latency: Duration) -> Figures {
    let odoo = FakeOdoo::start(version);
    let stock = odoo.snapshot();
    let gauze = stock.product_id("5901234123457").unwrap();
    let syringe = stock.product_id("09506000134352").unwrap();
    let wh = stock.location_id("WH/Stock").unwrap();
    for n in 0..events {
        match n % 5 {
            3 => odoo.add_stock(gauze, wh, Some((&format!("T{n}"), None)), 10.0),
            4 => odoo.add_stock(syringe, wh, Some((&format!("C{n}"), None)), 10.0),
            _ => {}
        }
    }

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let key = dir.path().join("odoo.key");
    let data = dir.path().join("data");
    let config = dir.path().join("tallyman.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

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
consumption_location = "Virtual Locations/Consumption"
batch_size = {batch}
retry = {{ initial_ms = 50, max_ms = 200 }}
"#,
            data = data.display(),
            endpoint = odoo.url(),
            database = odoo.database(),
            login = odoo.bot_login(),
            key = key.display(),
        ),
    )
    .unwrap();

    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let scans: Vec<String> = (0..events).flat_map(event).collect();
    for chunk in scans.chunks(1000) {
        agent.send(chunk).unwrap();
    }
    assert!(agent.wait_feedback(Duration::from_secs(600), |fb| fb.lines.len() >= scans.len()));
    let accepted = agent
        .feedback_lines()
        .iter()
        .filter(|l| l["result"] == "accepted")
        .count();
    assert_eq!(accepted, events, "every session accepted");

    odoo.set_latency(latency);
    let before = odoo.calls().len();
    std::fs::write(&key, format!("{}\n", odoo.bot_key())).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The first and last call of the drain, seen by polling the fake's call log; the end is
    // known from the agent's health report (delivered = every event).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen = before;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let n = odoo.calls().len();
        if n != seen {
            seen = n;
            last = Instant::now();
            first.get_or_insert(last);
        }
        let delivered = std::fs::read(data.join("health.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|r| r["sinks"]["odoo"]["delivered"].as_u64())
            .unwrap_or(0);
        if delivered as usize >= events {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog was not drained");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = agent.terminate(Duration::from_secs(30));

    let calls = odoo.calls();
    let drain = &calls[before..];
    let stock = odoo.snapshot();
    let done = stock.pickings.iter().filter(|p| p.state == "done").count();
    assert_eq!(stock.pickings.len(), events, "one picking per event");
    assert_eq!(done, events, "every picking done");
    assert!(
        drain.iter().all(|c| c.error.is_none()),
        "no call failed: {:?}",
        drain.iter().find(|c| c.error.is_some())
    );
    Figures {
        version,
        transport: drain.last().map_or("?", |c| c.transport),
        events,
        calls: drain.len(),
        span: last - first.unwrap_or(last),
    }
}

fn main() {
    let events = env_or("TALLYMAN_BENCH_EVENTS", 1_000) as usize;
    let batch = env_or("TALLYMAN_BENCH_BATCH", 100);
    let latency = Duration::from_millis(env_or("TALLYMAN_BENCH_LATENCY_MS", 20));
    let versions: Vec<Version> = match std::env::var("TALLYMAN_BENCH_VERSIONS") {
        Ok(list) => Version::ALL
            .into_iter()
            .filter(|v| list.split(',').any(|x| x.trim() == v.major().to_string()))
            .collect(),
        Err(_) => Version::ALL.to_vec(),
    };
    println!(
        "draining {events} events (3/5 receipts with a lot and expiry, 1/5 transfers, 1/5 \
         consumption), batch_size {batch}, every answer after {} ms",
        latency.as_millis()
    );
    println!();
    println!("| Odoo | transport | events | calls | calls/event | seconds | events/s |");
    println!("|---|---|---|---|---|---|---|");
    for v in versions {
        let f = drain(v, events, batch, latency);
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} |",
            f.version,
            f.transport,
            f.events,
            f.calls,
            f.calls as f64 / f.events as f64,
            f.span.as_secs_f64(),
            f.events as f64 / f.span.as_secs_f64(),
        );
    }
}
