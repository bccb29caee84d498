//! Health with the real binary: the retained `health` topic on a real mosquitto and
//! `DATA_DIR/health.json` carry the figures the agent really has (scans accepted, events
//! delivered, spool depth), a failing sink shows as `retrying` with its error while its backlog
//! and the age of its oldest undelivered event grow, and recovery turns the report green again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::{Agent, stdin_to_file_config};
use tallyman_tests::broker::{Broker, Device, DeviceState, topic};

fn scan(n: usize) -> String {
    format!("01095011010209171730123121H{n:06}")
}

/// The newest health report a device received.
fn latest(s: &DeviceState) -> Option<Value> {
    s.on(&topic("health")).last().map(|m| m.json())
}

/// Wait for a health report that satisfies `cond`; returns it. On timeout, fail with the last
/// report and the agent's log.
fn wait_report(it: &Device, log: &Path, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let ok = it.wait(Duration::from_secs(30), |s| {
        latest(s).is_some_and(|r| cond(&r))
    });
    let last = it.with(latest);
    assert!(
        ok,
        "no health report with {what}; the last one:\n{}\nagent log:\n{}",
        last.map(|r| serde_json::to_string_pretty(&r).unwrap())
            .unwrap_or_default(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    last.unwrap()
}

/// Wait until `health.json` in `data` satisfies `cond`; returns it.
fn wait_file(data: &Path, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let path = data.join("health.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Replaced by a rename: whenever it exists it is one whole document.
        let report = std::fs::read(&path)
            .ok()
            .map(|b| serde_json::from_slice::<Value>(&b).expect("health.json parses"));
        if let Some(r) = report.as_ref().filter(|r| cond(r)) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "health.json never showed {what}; it is:\n{report:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_is_published_retained_and_follows_a_failing_sink() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let extra = format!(
        "\n[mqtt]\nendpoint = \"mqtt://127.0.0.1:{}\"\nclient_id = \"tallyman-health\"\n\
         keep_alive_secs = 5\n\n[health]\ninterval_secs = 1\n",
        broker.port()
    );
    let config = stdin_to_file_config(dir.path(), "consume", &extra);
    // Retries at most a second apart, so that recovery shows quickly.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[sinks.retry]\nmax_ms = 1000\n");
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let outbox = data.join("outbox.jsonl");
    let log = dir.path().join("agent.log");

    let it = Device::connect(broker.port(), "it-desk");
    it.subscribe(&topic("health"));
    it.subscribe(&topic("status"));
    let mut agent = Agent::start(&config, &log);

    // `status` carries the versions.
    assert!(it.wait(Duration::from_secs(20), |s| {
        s.on(&topic("status"))
            .last()
            .is_some_and(|m| m.json()["state"] == "online")
    }));
    let status = it.with(|s| s.on(&topic("status")).last().unwrap().json());
    assert_eq!(status["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(status["config_version"].is_null(), "{status}");

    // Five scans, delivered: the report counts them.
    agent.send(&(0..5).map(scan).collect::<Vec<_>>()).unwrap();
    assert!(agent.wait_feedback(Duration::from_secs(20), |fb| fb.lines.len() >= 5));
    assert!(
        agent
            .feedback_lines()
            .iter()
            .all(|l| l["result"] == "accepted")
    );
    let report = wait_report(&it, &log, "5 delivered and a green state", |r| {
        r["sinks"]["outbox"]["delivered"] == 5 && r["state"] == "green"
    });
    assert_eq!(report["schema"], 1);
    assert_eq!(report["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(report["config_version"].is_null());
    assert_eq!(
        (report["facility"].clone(), report["gateway"].clone()),
        ("test".into(), "gw-test".into())
    );
    assert_eq!(report["interval_secs"], 1);
    assert_eq!(report["reasons"], serde_json::json!([]));
    assert_eq!(report["mqtt"]["state"], "connected");
    let stdin = &report["sources"]["stdin"];
    assert_eq!(
        (stdin["type"].clone(), stdin["state"].clone()),
        ("stdin".into(), "open".into())
    );
    assert_eq!(
        (stdin["frames"].clone(), stdin["accepted"].clone()),
        (5.into(), 5.into())
    );
    let sink = &report["sinks"]["outbox"];
    assert_eq!(sink["type"], "file");
    assert_eq!(sink["backlog"], 0);
    assert!(sink["oldest_undelivered_secs"].is_null());
    assert_eq!(
        (sink["retries"].clone(), sink["dead_lettered"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(sink["latency_ms"]["since_start"]["count"], 5);
    let p99 = sink["latency_ms"]["since_start"]["p99"].as_u64().unwrap();
    assert!(p99 < 10_000, "capture to delivered took {p99} ms");
    assert!(sink["last_delivered_at"].is_string());
    // Delivered to the only sink: nothing is left in the spool.
    assert_eq!(report["spool"]["last_seq"], 5);
    assert_eq!(report["spool"]["events_stored"], 0);
    assert!(report["spool"]["oldest_undelivered_secs"].is_null());
    assert_eq!(report["spool"]["full"], false);
    assert!(report["disk"]["free_bytes"].as_u64().unwrap() > 0);
    assert!(report["uptime_secs"].is_u64());

    // The sink cannot write while its path is a directory: three more scans stay in the spool.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::create_dir(&outbox).unwrap();
    agent.send(&(5..8).map(scan).collect::<Vec<_>>()).unwrap();
    assert!(agent.wait_feedback(Duration::from_secs(20), |fb| fb.lines.len() >= 8));
    let failing = wait_report(&it, &log, "the sink retrying with 3 events behind", |r| {
        r["sinks"]["outbox"]["state"] == "retrying" && r["sinks"]["outbox"]["backlog"] == 3
    });
    let sink = &failing["sinks"]["outbox"];
    let error = sink["last_error"].as_str().unwrap();
    assert!(error.contains("writing the file"), "{error}");
    assert!(sink["retries"].as_u64().unwrap() >= 1);
    assert!(sink["consecutive_failures"].as_u64().unwrap() >= 1);
    assert_eq!(failing["state"], "yellow");
    assert!(
        failing["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("sink `outbox` is retrying: writing the file"),
        "{}",
        failing["reasons"]
    );
    assert_eq!(failing["spool"]["events_stored"], 3);
    assert_eq!(failing["sources"]["stdin"]["accepted"], 8);
    let age = failing["spool"]["oldest_undelivered_secs"]
        .as_u64()
        .unwrap();
    assert_eq!(sink["oldest_undelivered_secs"].as_u64(), Some(age));

    // While it fails, the backlog and the age of the oldest undelivered event grow.
    agent.send(&(8..10).map(scan).collect::<Vec<_>>()).unwrap();
    let later = wait_report(&it, &log, "a bigger backlog, older", |r| {
        r["sinks"]["outbox"]["backlog"] == 5
            && r["spool"]["oldest_undelivered_secs"]
                .as_u64()
                .is_some_and(|a| a >= age + 2)
    });
    assert_eq!(later["spool"]["events_stored"], 5);
    assert_eq!(later["sinks"]["outbox"]["state"], "retrying");

    // health.json holds the same kind of document.
    let file = wait_file(&data, "the failing sink", |r| {
        r["sinks"]["outbox"]["state"] == "retrying" && r["sinks"]["outbox"]["backlog"] == 5
    });
    assert_eq!(file["facility"], "test");
    assert_eq!(file["state"], "yellow");

    // A subscriber that comes later gets the latest report at once: it is retained.
    let late = Device::connect(broker.port(), "it-late");
    late.subscribe(&topic("health"));
    assert!(late.wait(Duration::from_secs(10), |s| {
        s.on(&topic("health")).first().is_some_and(|m| m.retain)
    }));

    // The sink recovers: everything is delivered and the report is green again.
    std::fs::remove_dir(&outbox).unwrap();
    let healed = wait_report(&it, &log, "all 10 delivered and green", |r| {
        r["sinks"]["outbox"]["delivered"] == 10 && r["state"] == "green"
    });
    assert_eq!(healed["sinks"]["outbox"]["backlog"], 0);
    assert_eq!(healed["spool"]["events_stored"], 0);
    assert_eq!(healed["sinks"]["outbox"]["consecutive_failures"], 0);
    assert_eq!(
        healed["sinks"]["outbox"]["latency_ms"]["since_start"]["count"],
        10
    );

    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn health_json_is_written_without_mqtt() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "\n[health]\ninterval_secs = 1\n");
    let data = dir.path().join("data");
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    agent.send(&[scan(0), scan(1)]).unwrap();
    let report = wait_file(&data, "2 delivered", |r| {
        r["sinks"]["outbox"]["delivered"] == 2
    });
    assert!(report["mqtt"].is_null(), "no [mqtt]: {}", report["mqtt"]);
    assert_eq!(report["state"], "green", "{}", report["reasons"]);
    assert_eq!(report["sources"]["stdin"]["accepted"], 2);
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // A write in progress at the signal was finished: no temporary file is left.
    assert!(!data.join("health.json.tmp").exists());
}
