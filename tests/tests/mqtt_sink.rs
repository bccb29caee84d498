//! The hub over MQTT, end to end with the real binary and a real mosquitto: events published
//! on `events/{kind}` with QoS 1, *delivered* only on the broker's PUBACK for that publish,
//! at least once across broker restarts, agent crashes, swallowed PUBACKs and cut
//! connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tallyman_tests::agent::Agent;
use tallyman_tests::broker::{Broker, BrokerConfig};
use tallyman_tests::proxy::Proxy;
use tallyman_tests::tallyman_bin;

const EVENTS_FILTER: &str = "tallyman/v1/test/gw-test/events/+";

/// mosquitto sends its PUBACKs without waiting (no Nagle delay behind a delayed ACK).
const NODELAY: &str = "set_tcp_nodelay true\n";

/// A configuration: stdin source (passthrough), one mqtt sink `hub` with `sink_extra`, the
/// broker (or proxy) on `port`, keep-alive 5 s.
fn config(dir: &Path, port: u16, sink_extra: &str, level: &str) -> PathBuf {
    let data = dir.join("data");
    let text = format!(
        r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

[mqtt]
endpoint = "mqtt://127.0.0.1:{port}"
client_id = "tallyman-test"
keep_alive_secs = 5

[[sources]]
name = "stdin"
type = "stdin"
workflow = "passthrough"
location = "WH/Stock"

[[sinks]]
name = "hub"
type = "mqtt"
{sink_extra}

[log]
level = "{level}"
"#,
        data = data.display()
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn scans(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("ITEM{i:07}")).collect()
}

/// Event ids of the accepted scans in feedback lines.
fn accepted(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["result"] == "accepted")
        .map(|l| l["event_id"].as_str().expect("event id").to_string())
        .collect()
}

/// What the hub's consumer has seen.
#[derive(Debug, Default)]
struct HubState {
    /// Event id → how many times it arrived.
    counts: HashMap<String, u32>,
    messages: u64,
    /// Event ids in arrival order (first arrival only).
    order: Vec<String>,
    topics: HashSet<String>,
    subacks: u32,
    bad: Vec<String>,
}

impl HubState {
    fn duplicates(&self) -> u64 {
        self.messages - self.counts.len() as u64
    }
}

/// A consumer of the hub topics: a persistent session (clean_session false) with QoS 1, as a
/// hub would hold; it reconnects on its own after a broker restart.
struct Hub {
    client: Client,
    state: Arc<(Mutex<HubState>, Condvar)>,
}

impl Hub {
    fn connect(port: u16, id: &str, postcard: bool) -> Hub {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_inflight(100)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(o, 1000);
        let state: Arc<(Mutex<HubState>, Condvar)> = Arc::default();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for event in connection.iter() {
                let (m, cv) = &*shared;
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => m.lock().unwrap().subacks += 1,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let id = if postcard {
                            tallyman_protocol::wire::decode(&p.payload)
                                .map(|e| e.id().to_string())
                                .map_err(|e| e.to_string())
                        } else {
                            serde_json::from_slice::<Value>(&p.payload)
                                .map_err(|e| e.to_string())
                                .and_then(|v| {
                                    v["id"].as_str().map(str::to_string).ok_or("no id".into())
                                })
                        };
                        let mut s = m.lock().unwrap();
                        s.messages += 1;
                        s.topics.insert(p.topic.clone());
                        match id {
                            Ok(id) => {
                                let c = s.counts.entry(id.clone()).or_default();
                                *c += 1;
                                if *c == 1 {
                                    s.order.push(id);
                                }
                            }
                            Err(e) => s.bad.push(e),
                        }
                    }
                    Ok(_) => continue,
                    Err(_) => {
                        // The broker is down: do not spin while it is.
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                cv.notify_all();
            }
        });
        let hub = Hub { client, state };
        hub.client
            .subscribe(EVENTS_FILTER, QoS::AtLeastOnce)
            .unwrap();
        assert!(
            hub.wait(Duration::from_secs(10), |s| s.subacks > 0),
            "no SUBACK"
        );
        hub
    }

    fn wait(&self, timeout: Duration, cond: impl Fn(&HubState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut s = m.lock().unwrap();
        loop {
            if cond(&s) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = cv.wait_timeout(s, deadline - now).unwrap().0;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&HubState) -> T) -> T {
        f(&self.state.0.lock().unwrap())
    }

    fn has_all(s: &HubState, ids: &[String]) -> bool {
        ids.iter().all(|id| s.counts.contains_key(id))
    }
}

/// Event ids the agent logged as delivered to `hub` (debug log, one line per cursor move).
fn delivered_in_log(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("Delivered.") && l.contains("sink=hub"))
        .filter_map(|l| l.split("event_id=").nth(1))
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// `tallyman spool stats` of a stopped agent: the `hub` sink's cursor and backlog.
fn hub_cursor(data: &Path) -> (u64, u64) {
    let out = std::process::Command::new(tallyman_bin())
        .args(["spool", "--data-dir"])
        .arg(data)
        .arg("stats")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spool stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sink = v["stats"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hub")
        .expect("the hub sink in the stats")
        .clone();
    (
        sink["cursor"].as_u64().unwrap(),
        sink["backlog"].as_u64().unwrap(),
    )
}

fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The proxy swallows the broker's PUBACKs: the broker (and the consumer) get the events, but
/// the agent never marks one delivered — not in its log, not in its spool cursor — through a
/// watchdog rebuild and a cut connection; the window of 10 is never exceeded. Once PUBACKs
/// flow again, every event is delivered and the consumer has all of them.
#[test]
fn nothing_is_delivered_without_its_puback_and_everything_arrives_after_recovery() {
    let broker = Broker::start_with(&BrokerConfig {
        extra: NODELAY.into(),
        ..BrokerConfig::default()
    });
    let hub = Hub::connect(broker.port(), "hub-consumer", false);
    let proxy = Proxy::start(broker.port());
    proxy.swallow_pubacks(true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), proxy.port(), "inflight = 10", "debug");
    let log = dir.path().join("agent.log");

    let mut agent = Agent::start(&cfg, &log);
    agent.send(&scans(0, 50)).unwrap();
    assert!(agent.wait_feedback(Duration::from_secs(30), |f| f.lines.len() >= 50));
    let ids = accepted(&agent.feedback_lines());
    assert_eq!(ids.len(), 50, "all 50 scans accepted");
    let first_window: HashSet<&String> = ids.iter().take(10).collect();

    // The broker got the first window (the consumer has it) and PUBACKed it into the void.
    assert!(
        hub.wait(Duration::from_secs(20), |s| s.counts.len() >= 10),
        "the first 10 events reach the consumer"
    );
    wait_until("10 swallowed PUBACKs", Duration::from_secs(10), || {
        proxy.swallowed() >= 10
    });
    assert!(delivered_in_log(&log).is_empty(), "nothing delivered yet");

    // No PUBACK for two keep-alives with publishes outstanding: the watchdog rebuilds the
    // client and the sink publishes the window again (same event ids).
    wait_until("the watchdog", Duration::from_secs(40), || {
        log_text(&log).contains("rebuilding the connection")
    });
    assert!(
        hub.wait(Duration::from_secs(20), |s| s.messages >= 20),
        "the window is published again after the rebuild"
    );
    let connections = proxy.connections();
    assert!(connections >= 2, "a new connection after the rebuild");

    // A cut connection: reconnect, publish the window again.
    let before = hub.with(|s| s.messages);
    proxy.cut();
    wait_until("a reconnection", Duration::from_secs(20), || {
        proxy.connections() > connections
    });
    assert!(
        hub.wait(Duration::from_secs(20), |s| s.messages >= before + 10),
        "the window is published again after the cut"
    );
    hub.with(|s| {
        let seen: HashSet<&String> = s.counts.keys().collect();
        assert_eq!(
            seen, first_window,
            "only the first window of 10 was ever published"
        );
    });
    assert!(
        delivered_in_log(&log).is_empty(),
        "nothing delivered without a PUBACK"
    );

    // Stop gracefully: the spool's cursor for the hub has not moved.
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "graceful stop");
    assert_eq!(hub_cursor(&dir.path().join("data")), (0, 50));

    // PUBACKs flow again: everything is delivered, the consumer has every event.
    proxy.swallow_pubacks(false);
    let agent = Agent::start(&cfg, &log);
    wait_until("every event delivered", Duration::from_secs(60), || {
        let delivered: HashSet<String> = delivered_in_log(&log).into_iter().collect();
        ids.iter().all(|id| delivered.contains(id))
    });
    assert!(hub.wait(Duration::from_secs(20), |s| Hub::has_all(s, &ids)));
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()));
    assert_eq!(hub_cursor(&dir.path().join("data")), (50, 0));
    hub.with(|s| {
        assert!(s.bad.is_empty(), "{:?}", s.bad);
        assert_eq!(s.counts.len(), 50);
        // Delivered in spool order: the first arrivals follow the accepted order.
        assert_eq!(s.order, ids);
        println!(
            "messages {} for 50 events: {} duplicates (the first window, published again)",
            s.messages,
            s.duplicates()
        );
    });
    drop(proxy);
}

/// JSON on `events/{kind}` is the canonical event (the file sink's line); postcard is the
/// `protocol::wire` envelope of the same event.
#[test]
fn payloads_are_the_canonical_event_in_json_or_postcard() {
    let broker = Broker::start_with(&BrokerConfig {
        extra: NODELAY.into(),
        ..BrokerConfig::default()
    });
    for (format, postcard) in [("json", false), ("postcard", true)] {
        let hub = Hub::connect(broker.port(), &format!("hub-{format}"), postcard);
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            broker.port(),
            &format!("format = \"{format}\""),
            "info",
        );
        let mut agent = Agent::start(&cfg, &dir.path().join("agent.log"));
        // A GS1 scan and an unknown code: both become `scan` events in passthrough.
        agent
            .send(&["0109501101530003".to_string(), "ITEM1".to_string()])
            .unwrap();
        assert!(agent.wait_feedback(Duration::from_secs(30), |f| f.lines.len() >= 2));
        let ids = accepted(&agent.feedback_lines());
        assert!(hub.wait(Duration::from_secs(20), |s| Hub::has_all(s, &ids)));
        hub.with(|s| {
            assert!(s.bad.is_empty(), "{format}: {:?}", s.bad);
            assert_eq!(
                s.topics,
                HashSet::from(["tallyman/v1/test/gw-test/events/scan".to_string()])
            );
        });
        let (status, _) = agent.terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()));
        let _ = hub.client.disconnect();
    }
}

/// 100,000 events through the agent to a consumer holding a persistent session, while the
/// broker (persistence on) is stopped and started 5 times and the agent is SIGKILLed twice:
/// every accepted event id arrives at least once; duplicates are counted and printed.
///
/// The broker is stopped with SIGTERM, not SIGKILL: mosquitto writes its persistence file on
/// the way out, so the messages it acknowledged (delivered, as far as the agent is concerned)
/// survive. A SIGKILLed mosquitto loses what it acknowledged since its last autosave — the
/// broker's durability, outside what a PUBACK-based sink can know. What the restart does to
/// the agent's publishes in flight (sent, not acknowledged) is exactly what is tested: they
/// are published again.
#[test]
fn every_accepted_event_arrives_across_broker_restarts_and_agent_crashes() {
    const TOTAL: usize = 100_000;
    const CHUNK: usize = 1000;
    let mut broker = Broker::start_with(&BrokerConfig {
        persistence: true,
        extra: NODELAY.into(),
        ..BrokerConfig::default()
    });
    let hub = Hub::connect(broker.port(), "hub-consumer", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        broker.port(),
        "inflight = 50\nbatch_size = 1000",
        "info",
    );
    let log = dir.path().join("agent.log");
    let started = Instant::now();

    // Faults by accepted count: broker restarts (stopped for ~3,000 scans of intake each) and
    // agent crashes (right after writing a chunk, before its feedback).
    let broker_stops = [8_000, 24_000, 41_000, 58_000, 83_000];
    let agent_kills = [33_000, 71_000];
    let mut next_stop = 0;
    let mut next_kill = 0;
    let mut broker_down_until: Option<usize> = None;

    let mut ids: Vec<String> = Vec::new();
    let mut agent = Agent::start(&cfg, &log);
    let mut written = 0usize;
    let mut seen_lines = 0usize;
    while ids.len() < TOTAL {
        let n = CHUNK.min(TOTAL - ids.len());
        agent.send(&scans(written, n)).unwrap();
        written += n;
        if next_kill < agent_kills.len() && ids.len() + n >= agent_kills[next_kill] {
            next_kill += 1;
            let lines = agent.kill9();
            ids.extend(accepted(&lines[seen_lines..]));
            println!(
                "agent SIGKILLed at {} accepted ({:?})",
                ids.len(),
                started.elapsed()
            );
            agent = Agent::start(&cfg, &log);
            seen_lines = 0;
            continue;
        }
        let want = seen_lines + n;
        assert!(
            agent.wait_feedback(Duration::from_secs(60), |f| f.lines.len() >= want),
            "feedback for the chunk"
        );
        let lines = agent.feedback_lines();
        ids.extend(accepted(&lines[seen_lines..want]));
        seen_lines = want;
        if broker_down_until.is_some_and(|until| ids.len() >= until) {
            broker.restart();
            broker_down_until = None;
            println!(
                "broker started again at {} accepted ({:?})",
                ids.len(),
                started.elapsed()
            );
        }
        if next_stop < broker_stops.len() && ids.len() >= broker_stops[next_stop] {
            next_stop += 1;
            broker.stop();
            broker_down_until = Some(ids.len() + 3_000);
            println!(
                "broker stopped at {} accepted ({:?})",
                ids.len(),
                started.elapsed()
            );
        }
    }
    if broker_down_until.is_some() {
        broker.restart();
    }
    assert_eq!(next_stop, broker_stops.len());
    assert_eq!(next_kill, agent_kills.len());
    println!("{} events accepted in {:?}", ids.len(), started.elapsed());

    let all = hub.wait(Duration::from_secs(180), |s| Hub::has_all(s, &ids));
    let (missing, messages, distinct, duplicates) = hub.with(|s| {
        let missing = ids.iter().filter(|id| !s.counts.contains_key(*id)).count();
        (missing, s.messages, s.counts.len(), s.duplicates())
    });
    println!(
        "consumer: {messages} messages, {distinct} distinct events, {duplicates} duplicates, \
         {missing} of {} accepted events missing ({:?})",
        ids.len(),
        started.elapsed()
    );
    assert!(all, "{missing} accepted events never arrived");
    assert_eq!(missing, 0);
    hub.with(|s| assert!(s.bad.is_empty(), "{:?}", s.bad));
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()));
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "event ids are unique");
}
