use std::path::Path;
use std::time::Duration;

use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Gtin14, Header, Item, Line, Location, Quantity,
    SourceName, Timestamp, Uom,
};

use super::*;
use crate::spool::SpoolOptions;

/// A configuration: `[agent]`, optional `[mqtt]` with `endpoint`, and `body`.
fn config(data: &Path, mqtt: Option<&str>, body: &str) -> Config {
    let mqtt = mqtt.map_or(String::new(), |e| {
        format!("[mqtt]\nendpoint = \"{e}\"\nkeep_alive_secs = 5\n")
    });
    let text = format!(
        "[agent]\nfacility = \"north\"\ngateway = \"gw-1\"\ndata_dir = \"{}\"\n{mqtt}{body}",
        data.display()
    );
    tallyman_config::parse_str(&text, "test.toml").unwrap()
}

const SERIAL: &str =
    "[[sources]]\nname = \"dock\"\ntype = \"serial\"\npath = \"/nonexistent/tty\"\n";
const SERIAL_9600: &str =
    "[[sources]]\nname = \"dock\"\ntype = \"serial\"\npath = \"/nonexistent/tty\"\nbaud = 19200\n";
const MQTT_SOURCE: &str = "[[sources]]\nname = \"handhelds\"\ntype = \"mqtt\"\n";
const HUB: &str = "[[sinks]]\nname = \"hub\"\ntype = \"mqtt\"\n";
const HUB_WIDE: &str = "[[sinks]]\nname = \"hub\"\ntype = \"mqtt\"\ninflight = 500\n";

fn file_sink(name: &str, path: &str) -> String {
    format!("[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{path}\"\n")
}

fn changes(p: &Plan) -> Vec<(String, Change)> {
    let mut out: Vec<(String, Change)> = p
        .sources
        .iter()
        .map(|(n, c)| (format!("source {n}"), *c))
        .chain(p.sinks.iter().map(|(n, c)| (format!("sink {n}"), *c)))
        .collect();
    if let Some(c) = p.connection {
        out.push(("connection".into(), c));
    }
    if let Some(c) = p.health {
        out.push(("health".into(), c));
    }
    out
}

fn c(list: &[(&str, Change)]) -> Vec<(String, Change)> {
    list.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

#[test]
fn start_up_starts_everything() {
    let d = Path::new("/data");
    let new = config(
        d,
        Some("mqtt://b:1883"),
        &format!("{SERIAL}{HUB}{}", file_sink("outbox", "o.jsonl")),
    );
    let p = plan(None, None, &new, None);
    use Change::*;
    assert_eq!(
        changes(&p),
        c(&[
            ("source dock", Start),
            ("sink hub", Start),
            ("sink outbox", Start),
            ("connection", Start),
            ("health", Start),
        ])
    );
    let no_mqtt = config(
        d,
        None,
        &format!("{SERIAL}{}", file_sink("outbox", "o.jsonl")),
    );
    assert_eq!(plan(None, None, &no_mqtt, None).connection, None);
}

#[test]
fn only_what_changed_restarts() {
    use Change::*;
    let d = Path::new("/data");
    let body = |source: &str, sinks: &str| format!("{source}{HUB}{sinks}");
    let old = config(
        d,
        Some("mqtt://b:1883"),
        &body(
            SERIAL,
            &format!("{}{}", file_sink("a", "a.jsonl"), file_sink("b", "b.jsonl")),
        ),
    );
    let link = link_key(&old).unwrap();
    let run = |new: &Config, version: Option<u64>| {
        changes(&plan(Some((&old, Some(3))), Some(&link), new, version))
    };

    // The same configuration, the same version: nothing moves.
    assert_eq!(
        run(&old, Some(3)),
        c(&[
            ("source dock", Keep),
            ("sink a", Keep),
            ("sink b", Keep),
            ("sink hub", Keep),
            ("connection", Keep),
            ("health", Keep),
        ])
    );
    // A new version of the same configuration: only the health report (it carries it).
    assert_eq!(
        run(&old, Some(4)).last(),
        Some(&("health".to_owned(), Restart))
    );
    assert!(
        run(&old, Some(4))
            .iter()
            .filter(|(n, _)| n != "health")
            .all(|(_, c)| *c == Keep)
    );

    // b changed, a removed, c added, the serial source changed.
    let new = config(
        d,
        Some("mqtt://b:1883"),
        &body(
            SERIAL_9600,
            &format!(
                "{}{}",
                file_sink("b", "b2.jsonl"),
                file_sink("c", "c.jsonl")
            ),
        ),
    );
    assert_eq!(
        run(&new, Some(3)),
        c(&[
            ("source dock", Restart),
            ("sink a", Stop),
            ("sink b", Restart),
            ("sink c", Start),
            ("sink hub", Keep),
            ("connection", Keep),
            ("health", Keep),
        ])
    );

    // Another broker: the connection and what rides on it; the file sinks and the serial
    // source keep running.
    let moved = config(
        d,
        Some("mqtt://elsewhere:1883"),
        &body(
            SERIAL,
            &format!("{}{}", file_sink("a", "a.jsonl"), file_sink("b", "b.jsonl")),
        ),
    );
    assert_eq!(
        run(&moved, Some(3)),
        c(&[
            ("source dock", Keep),
            ("sink a", Keep),
            ("sink b", Keep),
            ("sink hub", Restart),
            ("connection", Restart),
            ("health", Restart),
        ])
    );

    // Health settings: only the health task. Log settings: nothing.
    let mut health = old.clone();
    health.health.interval = Duration::from_secs(5);
    assert_eq!(
        run(&health, Some(3))
            .into_iter()
            .filter(|(_, c)| *c != Keep)
            .collect::<Vec<_>>(),
        c(&[("health", Restart)])
    );
    let mut log = old.clone();
    log.log.format = tallyman_config::LogFormat::Json;
    assert!(run(&log, Some(3)).iter().all(|(_, c)| *c == Keep));
}

#[test]
fn the_connection_is_rebuilt_only_when_what_it_carries_changes() {
    use Change::*;
    let d = Path::new("/data");
    let files = file_sink("a", "a.jsonl");
    let old = config(d, Some("mqtt://b:1883"), &format!("{SERIAL}{HUB}{files}"));
    let link = link_key(&old).unwrap();
    let connection = |new: &Config| {
        plan(Some((&old, None)), Some(&link), new, None)
            .connection
            .unwrap()
    };
    // An mqtt source: new subscriptions.
    let with_source = config(
        d,
        Some("mqtt://b:1883"),
        &format!("{SERIAL}{MQTT_SOURCE}{HUB}{files}"),
    );
    assert_eq!(connection(&with_source), Restart);
    // A hub sink with a larger window than the connection has.
    let wide = config(
        d,
        Some("mqtt://b:1883"),
        &format!("{SERIAL}{HUB_WIDE}{files}"),
    );
    assert_eq!(connection(&wide), Restart);
    // The hub sink removed: the window shrinks, the connection stays.
    let fewer = config(d, Some("mqtt://b:1883"), &format!("{SERIAL}{files}"));
    assert_eq!(connection(&fewer), Keep);
    // No [mqtt] any more.
    let none = config(d, None, &format!("{SERIAL}{files}"));
    assert_eq!(connection(&none), Stop);
    // The mqtt source itself changed on a kept connection: only the source.
    let old = with_source;
    let link = link_key(&old).unwrap();
    let changed_source = config(
        d,
        Some("mqtt://b:1883"),
        &format!("{SERIAL}{MQTT_SOURCE}workflow = \"passthrough\"\n{HUB}{files}"),
    );
    let p = plan(Some((&old, None)), Some(&link), &changed_source, None);
    assert_eq!(p.named(Restart), vec!["source handhelds".to_owned()]);
}

fn header(n: u64) -> Header {
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    Header {
        id: EventId::new_v7(1_795_515_303_120 + n, random),
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-1").unwrap(),
        source: SourceName::new("dock").unwrap(),
        seq: 0,
        captured_at: Timestamp::from_unix_millis(1_795_515_303_120).unwrap(),
    }
}

fn receipt(n: u64) -> Event {
    let line = Line::new(
        Item::Gtin(Gtin14::new("09506000134352").unwrap()),
        Quantity::new("5").unwrap(),
        Uom::new("Units").unwrap(),
    );
    Event::receipt(header(n), Location::new("WH/Stock").unwrap(), vec![line]).unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Wait until `cond` holds (checked every few milliseconds), at most 20 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn cursor(spool: &Spool, sink: &str) -> Option<u64> {
    spool
        .stats()
        .sinks
        .into_iter()
        .find(|s| s.name == sink && s.configured)
        .map(|s| s.cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_sink_keeps_its_task_and_cursor_while_others_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let old = config(
        data,
        None,
        &format!(
            "{SERIAL}{}{}{}",
            file_sink("keep", "keep.jsonl"),
            file_sink("change", "change.jsonl"),
            file_sink("drop", "drop.jsonl")
        ),
    );
    let sinks = old.sinks.iter().map(|s| s.name.to_string()).collect();
    let mut options = SpoolOptions::new(data.join("spool"), sinks);
    options.commit_window = Duration::from_millis(1);
    let (spool, _) = Spool::open(options).unwrap();
    let (root, agent) = crate::shutdown::channel();
    let mut sup = Supervisor::new(spool.clone(), Registry::new(), agent);
    sup.apply(&old, None).await.unwrap();
    let before = sup.parts();
    assert_eq!(before.sinks.len(), 3);

    for n in 0..10 {
        spool.append(receipt(n)).await.unwrap();
    }
    until("every sink has the first 10", || {
        ["keep", "change", "drop"]
            .iter()
            .all(|s| lines(&data.join(format!("{s}.jsonl"))) == 10)
    })
    .await;
    until("cursors at 10", || cursor(&spool, "keep") == Some(10)).await;

    let new = config(
        data,
        None,
        &format!(
            "{SERIAL_9600}{}{}{}",
            file_sink("keep", "keep.jsonl"),
            file_sink("change", "changed.jsonl"),
            file_sink("add", "add.jsonl")
        ),
    );
    let p = sup.apply(&new, Some(2)).await.unwrap();
    assert_eq!(p.sinks["keep"], Change::Keep);
    let after = sup.parts();
    // The same task, the same cursor.
    assert_eq!(after.sinks["keep"], before.sinks["keep"]);
    assert_eq!(cursor(&spool, "keep"), Some(10));
    assert_ne!(after.sinks["change"], before.sinks["change"]);
    assert_ne!(after.sources["dock"], before.sources["dock"]);
    assert!(!after.sinks.contains_key("drop"));
    assert!(after.sinks.contains_key("add"));
    assert_ne!(after.health, before.health);
    // The added sink starts at the end; the removed one still holds events back.
    assert_eq!(cursor(&spool, "add"), Some(10));
    assert_eq!(cursor(&spool, "drop"), Some(10));

    for n in 10..15 {
        spool.append(receipt(n)).await.unwrap();
    }
    until("the new events everywhere", || {
        lines(&data.join("keep.jsonl")) == 15
            && lines(&data.join("changed.jsonl")) == 5
            && lines(&data.join("add.jsonl")) == 5
    })
    .await;
    // Nothing lost or sent twice to the unchanged sink, nothing more to the removed one.
    let keep = std::fs::read_to_string(data.join("keep.jsonl")).unwrap();
    let mut ids: Vec<&str> = keep.lines().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 15);
    assert_eq!(lines(&data.join("drop.jsonl")), 10);

    // Committed: the removed sink stops holding events back.
    sup.release_removed_sinks();
    assert_eq!(cursor(&spool, "drop"), None);
    assert_eq!(sup.parts().sinks["keep"], before.sinks["keep"]);

    root.fire();
    sup.stop().await;
    spool.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_cannot_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let old = config(
        data,
        None,
        &format!("{SERIAL}{}", file_sink("a", "a.jsonl")),
    );
    let (spool, _) = Spool::open(SpoolOptions::new(data.join("spool"), vec!["a".into()])).unwrap();
    let (root, agent) = crate::shutdown::channel();
    let mut sup = Supervisor::new(spool.clone(), Registry::new(), agent);
    sup.apply(&old, None).await.unwrap();
    let before = sup.parts();
    let two = config(
        data,
        Some("mqtt://b:1883"),
        &format!(
            "{MQTT_SOURCE}[[sources]]\nname = \"more\"\ntype = \"mqtt\"\n{}",
            file_sink("b", "b.jsonl")
        ),
    );
    let e = sup.apply(&two, Some(1)).await.unwrap_err();
    assert!(e.to_string().contains("at most one mqtt source"), "{e}");
    assert_eq!(sup.parts(), before);
    assert_eq!(sup.running().map(|(_, v)| v), Some(None));
    assert_eq!(cursor(&spool, "b"), None);
    root.fire();
    sup.stop().await;
    spool.close().await.unwrap();
}
