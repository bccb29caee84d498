//! Remote configuration with the real binary and a real mosquitto: central IT publishes signed
//! configurations (retained) on `config/set`, the agent applies them by difference and reports
//! on the retained `config/state`.
//!
//! Every agent here reads `in/events` (an mqtt source) and writes a file sink `outbox`; pushed
//! configurations keep those and add a file sink `audit`. Facility `test`, gateway `gw-test`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tallyman_protocol::event::Timestamp;
use tallyman_protocol::signed::{SigningKey, sign_config, sign_payload};
use tallyman_tests::agent::Agent;
use tallyman_tests::broker::{Broker, BrokerConfig, Device, free_port, receipt_json, topic};

const AUDIT: &str = "\n[[sinks]]\nname = \"audit\"\ntype = \"file\"\npath = \"audit.jsonl\"\n";

fn key() -> SigningKey {
    SigningKey::from_seed("central-it-2026", [42; 32]).unwrap()
}

fn now() -> Timestamp {
    tallyman_agent::clock::now()
}

/// One agent, its broker, and central IT's client.
struct Site {
    broker: Broker,
    dir: tempfile::TempDir,
    config: PathBuf,
    it: Device,
    next_event: u64,
}

impl Site {
    fn new(persistence: bool) -> Site {
        let broker = Broker::start_with(&BrokerConfig {
            persistence,
            ..BrokerConfig::default()
        });
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let text = format!(
            r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

{mqtt}
[[sources]]
name = "devices"
type = "mqtt"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"

[remote]
trusted_keys = ["{anchor}"]
rollback_after_secs = 10
"#,
            data = dir.path().join("data").display(),
            mqtt = mqtt_section(broker.port()),
            anchor = key().public_line(),
        );
        let config = dir.path().join("tallyman.toml");
        std::fs::write(&config, text).unwrap();
        let it = Device::connect(broker.port(), "central-it");
        it.subscribe(&topic("config/state"));
        it.subscribe(&topic("status"));
        Site {
            broker,
            dir,
            config,
            it,
            next_event: 0,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn start(&self) -> Agent {
        Agent::start(&self.config, &self.log())
    }

    /// A pushed configuration: the local file's sources, sinks and `[mqtt]` (on `port`), and
    /// `extra`.
    fn pushed(&self, extra: &str) -> String {
        pushed_toml(&mqtt_section(self.broker.port()), extra)
    }

    /// Sign `toml` as `version` and publish it retained on this gateway's `config/set`.
    fn push(&self, version: u64, toml: &str) {
        let doc = sign_config(&key(), version, None, None, toml, now()).unwrap();
        self.push_raw(doc.into_bytes());
    }

    fn push_raw(&self, document: Vec<u8>) {
        self.it.publish_retained(&topic("config/set"), document);
    }

    /// Wait for a `config/state` with this version and status; returns it.
    fn wait_state(&self, version: Option<u64>, status: &str) -> Value {
        let found = self.it.wait(Duration::from_secs(40), |s| {
            s.on(&topic("config/state")).iter().any(|m| {
                let j = m.json();
                j["version"] == json_opt(version) && j["status"] == status
            })
        });
        assert!(
            found,
            "no config/state {status} for version {version:?}; states:\n{}\nagent log:\n{}",
            self.states()
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        self.it.with(|s| {
            s.on(&topic("config/state"))
                .iter()
                .map(|m| m.json())
                .rfind(|j| j["version"] == json_opt(version) && j["status"] == status)
                .unwrap()
        })
    }

    fn states(&self) -> Vec<Value> {
        self.it.with(|s| {
            s.on(&topic("config/state"))
                .iter()
                .map(|m| m.json())
                .collect()
        })
    }

    /// Wait until the agent's retained `status` is `online` with this configuration version.
    fn wait_online(&self, config_version: Option<u64>) {
        let ok = self.it.wait(Duration::from_secs(30), |s| {
            s.on(&topic("status")).last().is_some_and(|m| {
                let j = m.json();
                j["state"] == "online" && j["config_version"] == json_opt(config_version)
            })
        });
        assert!(
            ok,
            "the agent is not online with config version {config_version:?}; agent log:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// Publish `n` new receipts on `in/events` as a handheld; returns their ids.
    fn send_events(&mut self, n: u64) -> Vec<String> {
        let device = Device::connect(self.broker.port(), &format!("handheld-{}", self.next_event));
        let mut ids = Vec::new();
        for _ in 0..n {
            let (id, json) = receipt_json(self.next_event, "test", "gw-test");
            self.next_event += 1;
            device.publish(&topic("in/events"), json);
            ids.push(id);
        }
        assert!(
            device.wait(Duration::from_secs(20), |s| s.acked >= n),
            "the agent did not take the events"
        );
        ids
    }

    fn file(&self, name: &str) -> PathBuf {
        self.data().join(name)
    }

    /// Wait until the JSON-lines file holds `n` lines; returns the event ids in it.
    fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ids = event_ids(&self.file(name));
            if ids.len() >= n {
                assert_eq!(ids.len(), n, "{name} has more lines than expected");
                return ids;
            }
            assert!(
                Instant::now() < deadline,
                "{name} has {} lines, not {n}; agent log:\n{}",
                ids.len(),
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many log lines contain all of `parts`.
    fn log_count(&self, parts: &[&str]) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

fn json_opt(v: Option<u64>) -> Value {
    v.map_or(Value::Null, Value::from)
}

fn mqtt_section(port: u16) -> String {
    format!(
        "[mqtt]\nendpoint = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"tallyman-test\"\nkeep_alive_secs = 5\n"
    )
}

fn pushed_toml(mqtt: &str, extra: &str) -> String {
    format!(
        r#"{mqtt}
[[sources]]
name = "devices"
type = "mqtt"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
{extra}"#
    )
}

fn event_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

#[test]
fn a_pushed_sink_is_added_without_touching_the_spool_or_the_other_sinks() {
    let mut site = Site::new(false);
    let agent = site.start();
    site.wait_online(None);
    let first = site.send_events(20);
    assert_eq!(set(&site.wait_lines("outbox.jsonl", 20)), set(&first));

    site.push(1, &site.pushed(AUDIT));
    let applied = site.wait_state(Some(1), "applied");
    assert_eq!(applied["running_version"], 1);
    assert!(applied["reason"].is_null());
    assert!(applied["at"].is_string());
    let pending = site.wait_state(Some(1), "pending");
    assert!(pending["running_version"].is_null(), "{pending}");
    site.wait_online(Some(1));
    // The last-known-good document is the one pushed, verbatim.
    assert!(site.data().join("fleet/current.json").exists());
    assert!(!site.data().join("fleet/pending.json").exists());

    // New events reach both sinks; the unchanged sink got nothing twice and lost nothing; the
    // new sink starts with the events stored from now on.
    let second = site.send_events(10);
    let outbox = site.wait_lines("outbox.jsonl", 30);
    assert_eq!(set(&outbox).len(), 30);
    assert_eq!(set(&outbox), set(&[first, second.clone()].concat()));
    assert_eq!(set(&site.wait_lines("audit.jsonl", 10)), set(&second));
    // The unchanged sink and the mqtt source were never restarted.
    assert_eq!(site.log_count(&["Sink started.", "sink=outbox"]), 1);
    assert_eq!(
        site.log_count(&["Reading events and scans from MQTT", "source=devices"]),
        1
    );
    assert_eq!(site.log_count(&["Sink started.", "sink=audit"]), 1);
    drop(agent);
}

#[test]
fn refused_documents_say_why_and_change_nothing() {
    let mut site = Site::new(false);
    let agent = site.start();
    site.wait_online(None);
    site.push(2, &site.pushed(""));
    site.wait_state(Some(2), "applied");
    site.wait_online(Some(2));
    let ok = site.pushed(AUDIT);

    // Each refused with its reason, in a state of its own; version 2 keeps running.
    let seen = std::cell::Cell::new(site.states().len());
    let check = |version: Option<u64>, reason: &str| {
        let ok = site.it.wait(Duration::from_secs(30), |s| {
            s.on(&topic("config/state")).len() > seen.get()
        });
        let states = site.states();
        assert!(ok, "no new state for {reason}: {states:?}");
        let s = &states[seen.get()];
        seen.set(seen.get() + 1);
        assert_eq!(s["status"], "rejected", "{s}");
        assert_eq!(s["version"], json_opt(version), "{s}");
        assert!(
            s["reason"].as_str().unwrap().contains(reason),
            "{s} does not say {reason}"
        );
        assert_eq!(s["running_version"], 2, "{s}");
    };
    let stranger = SigningKey::from_seed("stranger", [1; 32]).unwrap();
    site.push_raw(
        sign_config(&stranger, 3, None, None, &ok, now())
            .unwrap()
            .into_bytes(),
    );
    check(None, "unknown key id `stranger`");

    let doc = sign_config(&key(), 3, None, None, &ok, now()).unwrap();
    let mut tampered: Value = serde_json::from_str(&doc).unwrap();
    let mut bytes = BASE64
        .decode(tampered["payload"].as_str().unwrap())
        .unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    tampered["payload"] = Value::from(BASE64.encode(&bytes));
    site.push_raw(tampered.to_string().into_bytes());
    check(None, "bad signature");

    site.push(1, &ok);
    check(Some(1), "version 1 is not newer than the running version 2");
    site.push(2, &ok);
    check(Some(2), "version 2 is not newer than the running version 2");

    site.push(
        3,
        &format!("{ok}\n[health]\ninterval_secs = 0\nsurprise = 1\n"),
    );
    check(Some(3), "health.surprise");
    let s = site.wait_state(Some(3), "rejected");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid configuration: config:"),
        "{s}"
    );

    let expired = sign_config(
        &key(),
        4,
        Timestamp::from_unix_millis(now().unix_millis() - 1000),
        None,
        &ok,
        Timestamp::from_unix_millis(now().unix_millis() - 60_000).unwrap(),
    )
    .unwrap();
    site.push_raw(expired.into_bytes());
    check(Some(4), "expired at");

    site.push(
        5,
        &format!(
            "{ok}\n[remote]\ntrusted_keys = [\"{}\"]\n",
            stranger.public_line()
        ),
    );
    check(Some(5), "a pushed configuration may not contain [remote]");

    // Unsigned: a plain document.
    site.push_raw(
        sign_payload(&stranger, b"{}")
            .replace("signature", "sig")
            .into_bytes(),
    );
    check(None, "not signed");

    // Nothing changed: version 2 runs, no sink was started again, events flow to `outbox`
    // only.
    assert_eq!(site.log_count(&["Sink started."]), 1);
    assert_eq!(site.log_count(&["Applying a pushed configuration."]), 1);
    let ids = site.send_events(3);
    assert_eq!(set(&site.wait_lines("outbox.jsonl", 3)), set(&ids));
    assert!(!site.file("audit.jsonl").exists());
    let last = site
        .it
        .with(|s| s.on(&topic("status")).last().unwrap().json());
    assert_eq!(last["config_version"], 2);
    drop(agent);
}

#[test]
fn a_configuration_pointing_at_an_unreachable_broker_is_rolled_back() {
    let mut site = Site::new(false);
    let agent = site.start();
    site.wait_online(None);
    let nowhere = free_port();
    let toml = pushed_toml(
        &format!(
            "[mqtt]\nendpoint = \"mqtt://127.0.0.1:{nowhere}\"\nclient_id = \"tallyman-test\"\nkeep_alive_secs = 5\n"
        ),
        AUDIT,
    );
    let pushed_at = Instant::now();
    site.push(1, &toml);
    site.wait_state(Some(1), "pending");
    let rolled = site.wait_state(Some(1), "rolled_back");
    assert!(pushed_at.elapsed() >= Duration::from_secs(10));
    assert!(rolled["running_version"].is_null(), "{rolled}");
    let why = rolled["reason"].as_str().unwrap();
    assert!(
        why.starts_with("the central broker was not reachable within 10 s")
            && why.contains(&format!("127.0.0.1:{nowhere}")),
        "{why}"
    );
    // Reachable again, on the local file's configuration, whole.
    site.wait_online(None);
    let ids = site.send_events(5);
    assert_eq!(set(&site.wait_lines("outbox.jsonl", 5)), set(&ids));
    assert!(event_ids(&site.file("audit.jsonl")).is_empty());
    assert!(!site.data().join("fleet/pending.json").exists());
    assert!(!site.data().join("fleet/current.json").exists());
    // The retained document came again with the new subscription: nothing was published
    // (the events above were taken after it).
    assert_eq!(
        site.states().last().unwrap()["status"],
        "rolled_back",
        "{:?}",
        site.states()
    );
    drop(agent);
}

#[test]
fn killed_during_an_apply_the_agent_runs_the_old_or_the_new_configuration_whole() {
    let mut site = Site::new(false);
    let agent = site.start();
    site.wait_online(None);
    // Pending for 10 s: its broker never answers.
    let nowhere = free_port();
    let toml = pushed_toml(
        &format!(
            "[mqtt]\nendpoint = \"mqtt://127.0.0.1:{nowhere}\"\nclient_id = \"tallyman-test\"\nkeep_alive_secs = 5\n"
        ),
        AUDIT,
    );
    site.push(1, &toml);
    site.wait_state(Some(1), "pending");
    assert!(site.data().join("fleet/pending.json").exists());
    agent.kill9();

    // The old one: the local file, and it says why.
    let agent = site.start();
    let s = site.wait_state(Some(1), "rolled_back");
    assert_eq!(
        s["reason"],
        "the agent restarted while version 1 was being applied; running the local file"
    );
    assert!(s["running_version"].is_null());
    site.wait_online(None);
    let ids = site.send_events(4);
    assert_eq!(set(&site.wait_lines("outbox.jsonl", 4)), set(&ids));
    assert!(!site.file("audit.jsonl").exists());
    assert!(!site.data().join("fleet/pending.json").exists());

    // The new one: version 2 committed, then killed; after the restart version 2 runs whole.
    site.push(2, &site.pushed(AUDIT));
    site.wait_state(Some(2), "applied");
    agent.kill9();
    let states_before = site.states().len();
    let agent = site.start();
    site.wait_online(Some(2));
    let ids = site.send_events(3);
    site.wait_lines("outbox.jsonl", 7);
    assert_eq!(set(&site.wait_lines("audit.jsonl", 3)), set(&ids));
    // Nothing new to report: the retained state still says version 2 was applied.
    assert_eq!(site.states().len(), states_before);
    assert_eq!(site.states().last().unwrap()["status"], "applied");
    drop(agent);
}

#[test]
fn the_retained_configuration_received_at_every_reconnect_changes_nothing() {
    let mut site = Site::new(true);
    let agent = site.start();
    site.wait_online(None);
    site.push(1, &site.pushed(AUDIT));
    site.wait_state(Some(1), "applied");
    let ids = site.send_events(5);
    site.wait_lines("outbox.jsonl", 5);
    assert_eq!(set(&site.wait_lines("audit.jsonl", 5)), set(&ids));
    let started = site.log_count(&["Sink started."]);
    assert_eq!(started, 2);

    for round in 0..3 {
        let connected = site.log_count(&["Connected to the MQTT broker"])
            + site.log_count(&["Reconnected to the MQTT broker"]);
        site.broker.stop();
        site.broker.restart();
        // The agent reconnects (and subscribes again: the broker hands it the retained
        // configuration).
        let deadline = Instant::now() + Duration::from_secs(30);
        while site.log_count(&["Reconnected to the MQTT broker"])
            + site.log_count(&["Connected to the MQTT broker"])
            <= connected
        {
            assert!(Instant::now() < deadline, "no reconnect in round {round}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A client id of its own: the previous device, reconnecting after the broker's
        // restart until it is dropped, must not take the new one's session over.
        site.it = Device::connect(site.broker.port(), &format!("central-it-{round}"));
        site.it.subscribe(&topic("config/state"));
        site.it.subscribe(&topic("status"));
        // Events sent after the reconnect are taken after the retained document.
        let more = site.send_events(1);
        let n = 6 + round;
        let outbox = site.wait_lines("outbox.jsonl", n);
        assert_eq!(set(&outbox).len(), n, "an event was sent twice");
        assert!(site.wait_lines("audit.jsonl", n).contains(&more[0]));
        // The retained state is still the one of the apply.
        let states = site.states();
        assert_eq!(states.len(), 1, "{states:?}");
        assert_eq!(states[0]["status"], "applied");
        assert_eq!(states[0]["version"], 1);
    }
    // No source or sink was restarted, nothing was applied again.
    assert_eq!(site.log_count(&["Sink started."]), started);
    assert_eq!(site.log_count(&["Reading events and scans from MQTT"]), 1);
    assert_eq!(site.log_count(&["Applying a pushed configuration."]), 1);

    // Clearing the retained document on the broker (an empty retained message) is no
    // refusal either: the next state is that of the next document.
    site.push_raw(Vec::new());
    site.push(2, &site.pushed(AUDIT));
    site.wait_state(Some(2), "applied");
    let states: Vec<(Value, Value)> = site
        .states()
        .iter()
        .map(|s| (s["version"].clone(), s["status"].clone()))
        .collect();
    assert_eq!(
        states,
        [(1, "applied"), (2, "pending"), (2, "applied")].map(|(v, s)| (json!(v), json!(s))),
    );
    assert_eq!(
        site.log_count(&["The retained configuration was cleared on the broker"]),
        1
    );
    drop(agent);
}
