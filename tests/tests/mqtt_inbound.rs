//! MQTT inbound with the real binary and a real mosquitto: devices publish canonical events on
//! `in/events` and scans on `in/scans`; the agent stores them, PUBACKs only what is durable,
//! answers what it refuses on `in/rejected`, gives scan feedback on `feedback/{device}`, keeps
//! a retained `status` with a last will, and reconnects (and re-subscribes) by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::{Agent, read_outbox};
use tallyman_tests::broker::{Broker, Device, DeviceOptions, agent_config, receipt_json, topic};

/// Wait until the outbox satisfies `cond`, or the deadline passes (false).
fn wait_outbox(
    path: &Path,
    timeout: Duration,
    cond: impl Fn(&HashMap<String, Value>) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond(&read_outbox(path)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Complete lines in the outbox (cheap: counts newlines).
fn outbox_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Wait until the agent's log satisfies `cond`.
fn wait_log(path: &Path, timeout: Duration, cond: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond(&std::fs::read_to_string(path).unwrap_or_default()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A device subscribed to the agent's `status`, waiting for `state` (retained or live).
fn wait_status(it: &Device, state: &str, count: usize) -> Value {
    let status = topic("status");
    assert!(
        it.wait(Duration::from_secs(20), |s| {
            s.on(&status)
                .iter()
                .filter(|m| m.json()["state"] == state)
                .count()
                >= count
        }),
        "no status {state} (#{count}); seen: {:?}",
        it.with(|s| s.on(&status).iter().map(|m| m.json()).collect::<Vec<_>>())
    );
    it.with(|s| {
        s.on(&status)
            .iter()
            .rev()
            .find(|m| m.json()["state"] == state)
            .map(|m| m.json())
            .unwrap()
    })
}

/// Start the agent and wait for its retained `online` (it subscribes before it says so).
fn start_online(broker: &Broker, config: &Path, log: &Path) -> (Agent, Device) {
    static WATCHERS: AtomicU32 = AtomicU32::new(0);
    let agent = Agent::start(config, log);
    let n = WATCHERS.fetch_add(1, Ordering::Relaxed);
    let it = Device::connect(broker.port(), &format!("it-watch-{n}"));
    it.subscribe(&topic("status"));
    wait_status(&it, "online", 1);
    (agent, it)
}

const EVENTS: u64 = 10_000;
const KILLS: [usize; 3] = [2_000, 4_500, 7_000];

#[test]
fn sigkill_during_intake_stores_every_acknowledged_event_exactly_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    // Count the redeliveries the spool recognised.
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[log]\nlevel = \"info,tallyman_agent::sources::mqtt=debug\"\n";
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let (agent, _it) = start_online(&broker, &config, &log);

    let device = std::sync::Arc::new(Device::connect(broker.port(), "handheld-1"));
    // The first half while the agent runs; the second half from the first SIGKILL on, while
    // it is down (the broker queues them in its session) and after it is back.
    let publish = |from: u64, to: u64| {
        let device = std::sync::Arc::clone(&device);
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            for n in from..to {
                let (id, json) = receipt_json(n, "test", "gw-test");
                device.publish(&topic("in/events"), json);
                ids.push(id);
            }
            ids
        })
    };
    let mut publishers = vec![publish(0, EVENTS / 2)];

    let mut agent = Some(agent);
    for (i, at) in KILLS.iter().enumerate() {
        let reached = {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if outbox_lines(&outbox) >= *at {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        assert!(reached, "the outbox never reached {at} events");
        agent.take().unwrap().kill9();
        if i == 0 {
            publishers.push(publish(EVENTS / 2, EVENTS));
        }
        println!(
            "kill {}: SIGKILL with {} outbox lines, {} publishes acknowledged by the broker",
            i + 1,
            outbox_lines(&outbox),
            device.acked()
        );
        agent = Some(Agent::start(&config, &log));
    }

    let sent: HashSet<String> = publishers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    assert_eq!(sent.len(), EVENTS as usize);
    assert!(
        device.wait(Duration::from_secs(60), |s| s.acked >= EVENTS),
        "the broker acknowledged only {} of {EVENTS} publishes",
        device.acked()
    );
    // Every id the broker acknowledged reaches the outbox. `read_outbox` also fails if the same
    // id appears with different content, i.e. if an event was stored twice (another seq).
    let complete = wait_outbox(&outbox, Duration::from_secs(120), |by_id| {
        sent.iter().all(|id| by_id.contains_key(id))
    });
    let by_id = read_outbox(&outbox);
    let missing = sent.iter().filter(|id| !by_id.contains_key(*id)).count();
    assert!(
        complete,
        "{missing} acknowledged events are not in the outbox"
    );
    let extra = by_id.keys().filter(|id| !sent.contains(*id)).count();
    assert_eq!(extra, 0, "events in the outbox that no device sent");
    let mut seqs: Vec<u64> = by_id.values().map(|v| v["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        sent.len(),
        "each event has its own seq: stored once each"
    );
    let (status, _) = agent.take().unwrap().terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    let duplicates = log_text.matches("Inbound event was stored before").count();
    println!(
        "sent {} events, {} acknowledged by the broker, {} distinct ids in the outbox ({} lines, sink redeliveries included), {} redeliveries recognised as already stored, {} SIGKILLs",
        sent.len(),
        device.acked(),
        by_id.len(),
        outbox_lines(&outbox),
        duplicates,
        KILLS.len()
    );
}

#[test]
fn invalid_messages_are_answered_on_in_rejected_and_nothing_is_stuck() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let (agent, _it) = start_online(&broker, &config, &log);
    let device = Device::connect(broker.port(), "handheld-2");
    device.subscribe(&topic("in/rejected"));
    let in_events = topic("in/events");

    device.publish(&in_events, b"{\"v\":1,\"id\":".to_vec());
    let (v2_id, v1) = receipt_json(1, "test", "gw-test");
    let v2 = String::from_utf8(v1).unwrap().replace("\"v\":1", "\"v\":2");
    device.publish(&in_events, v2.into_bytes());
    let (south_id, south) = receipt_json(2, "south", "gw-test");
    device.publish(&in_events, south);
    let oversize = vec![b' '; 1024 * 1024 + 1];
    device.publish(&in_events, oversize);
    let (good_id, good) = receipt_json(3, "test", "gw-test");
    device.publish(&in_events, good);

    let rejected = topic("in/rejected");
    assert!(
        device.wait(Duration::from_secs(20), |s| s.on(&rejected).len() >= 4),
        "answers: {:?}",
        device.with(|s| s.on(&rejected).iter().map(|m| m.json()).collect::<Vec<_>>())
    );
    let answers: Vec<Value> = device.with(|s| s.on(&rejected).iter().map(|m| m.json()).collect());
    for a in &answers {
        println!("in/rejected: {a}");
    }
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "unsupported_version",
            "wrong_facility",
            "too_large"
        ]
    );
    assert!(answers[1]["reason"].as_str().unwrap().contains("version 2"));
    assert_eq!(answers[1]["event_id"], v2_id.as_str());
    assert!(answers[2]["reason"].as_str().unwrap().contains("`south`"));
    assert_eq!(answers[2]["event_id"], south_id.as_str());
    assert_eq!(answers[3]["bytes"], 1024 * 1024 + 1);
    assert_eq!(answers[0]["event_id"], Value::Null);
    for a in &answers {
        assert_eq!(a["topic"], in_events.as_str());
        assert!(a["at"].is_string());
    }
    // The valid event after them is stored: nothing is stuck.
    assert!(wait_outbox(&outbox, Duration::from_secs(20), |b| b
        .contains_key(&good_id)));
    assert_eq!(read_outbox(&outbox).len(), 1);
    // All five were acknowledged: none is redelivered.
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("Connected to the MQTT broker").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("Lost the MQTT connection"), "{text}");
    let (agent, _it2) = start_online(&broker, &config, &log);
    let (probe_id, probe) = receipt_json(4, "test", "gw-test");
    device.publish(&in_events, probe);
    assert!(wait_outbox(&outbox, Duration::from_secs(20), |b| b
        .contains_key(&probe_id)));
    assert_eq!(
        device.with(|s| s.on(&rejected).len()),
        4,
        "a refused message came back after restart"
    );
    drop(agent);
}

#[test]
fn status_is_online_then_the_last_will_then_offline_on_a_graceful_stop() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let log = dir.path().join("agent.log");
    let (agent, it) = start_online(&broker, &config, &log);
    let online = wait_status(&it, "online", 1);
    assert_eq!(online["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(online["config_version"], Value::Null);
    assert_eq!(online["reason"], Value::Null);
    assert!(online["at"].is_string());

    // SIGKILL: the broker publishes the last will.
    agent.kill9();
    let will = wait_status(&it, "offline", 1);
    assert_eq!(will["reason"], "connection_lost");

    let agent = Agent::start(&config, &log);
    wait_status(&it, "online", 2);
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let stopped = wait_status(&it, "offline", 2);
    assert_eq!(stopped["reason"], "stopped");

    // Retained: whoever subscribes later learns the agent is offline.
    let late = Device::connect(broker.port(), "it-late");
    late.subscribe(&topic("status"));
    assert!(late.wait(Duration::from_secs(10), |s| {
        s.on(&topic("status"))
            .iter()
            .any(|m| m.retain && m.json()["reason"] == "stopped")
    }));
    // A clean disconnect: the last will was not published again.
    assert_eq!(
        it.with(|s| s
            .on(&topic("status"))
            .iter()
            .filter(|m| m.json()["reason"] == "connection_lost")
            .count()),
        1
    );
}

#[test]
fn the_agent_reconnects_and_subscribes_again_after_a_broker_restart() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let (agent, it) = start_online(&broker, &config, &log);
    drop(it);

    // Without persistence the restarted broker knows no session and no subscription.
    broker.kill();
    assert!(wait_log(&log, Duration::from_secs(20), |l| l
        .contains("Lost the MQTT connection; reconnecting")));
    broker.restart();
    let it = Device::connect(broker.port(), "it-after");
    it.subscribe(&topic("status"));
    wait_status(&it, "online", 1);
    assert!(wait_log(&log, Duration::from_secs(1), |l| l
        .contains("Reconnected to the MQTT broker")));

    let device = Device::connect(broker.port(), "handheld-3");
    let (id, json) = receipt_json(10, "test", "gw-test");
    device.publish(&topic("in/events"), json);
    assert!(
        wait_outbox(&outbox, Duration::from_secs(20), |b| b.contains_key(&id)),
        "the event published after the broker restart was not stored"
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn scans_become_events_with_feedback_and_an_id_books_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let (agent, _it) = start_online(&broker, &config, &log);
    let device = Device::connect_with(broker.port(), &DeviceOptions::new("hh-7"));
    let feedback = topic("feedback/hh-7");
    device.subscribe(&feedback);
    device.subscribe(&topic("in/rejected"));
    let in_scans = topic("in/scans");
    let scan = |scan: &str, id: Option<&str>| {
        let mut m = serde_json::json!({"source": "hh-7", "scan": scan});
        if let Some(id) = id {
            m["id"] = id.into();
        }
        serde_json::to_vec(&m).unwrap()
    };

    // A GS1 DataMatrix UDI with GS between lot and serial.
    device.publish(
        &in_scans,
        scan("]d201095011010209171728063010A1B2\u{1d}21SER-1", None),
    );
    assert!(device.wait(Duration::from_secs(20), |s| !s.on(&feedback).is_empty()));
    let first = device.with(|s| s.on(&feedback)[0].json());
    println!("feedback: {first}");
    assert_eq!(first["result"], "accepted", "{first}");
    assert_eq!(first["kind"], "consumption");
    assert_eq!(first["source"], "hh-7");
    let first_id = first["event_id"].as_str().unwrap().to_string();
    assert!(wait_outbox(&outbox, Duration::from_secs(20), |b| b
        .contains_key(&first_id)));
    let event = read_outbox(&outbox)[&first_id].clone();
    assert_eq!(event["kind"], "consumption");
    assert_eq!(event["source"], "hh-7");
    assert_eq!(event["from"], "WH/Stock");
    assert_eq!(event["lines"][0]["serial"], "SER-1");

    // The same scan message twice, with its id: one event.
    let id = "019ab9b4-1d2e-7c3f-8a4b-5c6d7e8f9a0b";
    let twice = scan("]d201095011010209171728063010A1B2\u{1d}21SER-2", Some(id));
    device.publish(&in_scans, twice.clone());
    device.publish(&in_scans, twice);
    assert!(device.wait(Duration::from_secs(20), |s| s.on(&feedback).len() >= 3));
    let answers: Vec<Value> = device.with(|s| s.on(&feedback).iter().map(|m| m.json()).collect());
    for a in &answers[1..3] {
        assert_eq!(a["result"], "accepted", "{a}");
        assert_eq!(a["event_id"], id);
    }
    // An undecodable scan is answered by its feedback; a message that is no scan message on
    // in/rejected.
    device.publish(&in_scans, scan("0109501101020918", None));
    device.publish(&in_scans, br#"{"source":"hh-7"}"#.to_vec());
    assert!(
        device.wait(Duration::from_secs(20), |s| s.on(&feedback).len() >= 4
            && !s.on(&topic("in/rejected")).is_empty())
    );
    let bad = device.with(|s| s.on(&feedback)[3].json());
    assert_eq!(bad["result"], "rejected", "{bad}");
    assert!(
        bad["reason"].as_str().unwrap().contains("check digit"),
        "{bad}"
    );
    let refused = device.with(|s| s.on(&topic("in/rejected"))[0].json());
    assert_eq!(refused["code"], "invalid_scan", "{refused}");

    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let text = std::fs::read_to_string(&outbox).unwrap();
    assert_eq!(
        text.matches(id).count(),
        1,
        "the scan with an id was stored twice"
    );
    assert_eq!(read_outbox(&outbox).len(), 2);
}

#[test]
fn a_full_spool_keeps_inbound_events_unacknowledged_until_they_fit() {
    const BATCH: u64 = 1_000;
    const MAX_SENT: u64 = 100_000;
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[spool]\n", "[spool]\nmax_size_mb = 1\n");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    // The sink cannot write while its path is a directory: nothing leaves the spool.
    std::fs::create_dir_all(&outbox).unwrap();
    let (agent, _it) = start_online(&broker, &config, &log);
    let device = Device::connect(broker.port(), "handheld-4");
    device.subscribe(&topic("in/rejected"));
    // Publish in batches until the spool is full, and one more batch after that.
    let mut sent = HashSet::new();
    let mut full = false;
    let mut n = 0;
    while !full {
        assert!(n < MAX_SENT, "the spool never filled");
        full = wait_log(&log, Duration::ZERO, |l| l.contains("Spool full"));
        for _ in 0..BATCH {
            let (id, json) = receipt_json(n, "test", "gw-test");
            device.publish(&topic("in/events"), json);
            sent.insert(id);
            n += 1;
        }
        // The broker took them all; the agent stores or holds them.
        assert!(device.wait(Duration::from_secs(60), |s| s.acked >= n));
        if !full {
            wait_log(&log, Duration::from_millis(500), |l| {
                l.contains("Spool full")
            });
        }
    }
    println!("{n} events published; the spool filled on the way");

    // Let the sink deliver: space frees and the waiting events are stored, none dropped.
    std::fs::remove_dir(&outbox).unwrap();
    let complete = wait_outbox(&outbox, Duration::from_secs(120), |b| {
        sent.iter().all(|id| b.contains_key(id))
    });
    let stored = read_outbox(&outbox);
    assert!(
        complete,
        "{} events missing from the outbox",
        sent.iter().filter(|id| !stored.contains_key(*id)).count()
    );
    assert_eq!(stored.len(), sent.len());
    assert!(
        device.with(|s| s.on(&topic("in/rejected")).is_empty()),
        "nothing is refused for lack of room"
    );
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    println!(
        "{}",
        text.lines()
            .find(|l| l.contains("Spool full"))
            .unwrap_or_default()
    );
}
