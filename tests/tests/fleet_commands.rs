//! Signed commands from central IT, end to end: the real binary, a real mosquitto, commands
//! signed with `tallyman cmd sign` (or, for forged ones, the library) and published as IT
//! would, results read on `cmd/{name}/result`.
//!
//! - A dead letter (the HTTPS hub refuses the event once) is listed with `dlq-list`, replayed
//!   with `dlq-replay` and then delivered; `status`, `flush` and `reconnect` (the serial
//!   scanner's port is reopened) answer.
//! - Refused, each with its reason and nothing run: unsigned, unknown key, replayed (also after
//!   a restart), unknown command, expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_protocol::event::{EventId, Timestamp};
use tallyman_protocol::signed::{self, Addressee, SigningKey};
use tallyman_protocol::topic::CommandName;
use tallyman_tests::agent::Agent;
use tallyman_tests::broker::{Broker, Device, agent_config, topic};
use tallyman_tests::hub::{Given, Hub, Pki, Scripted};
use tallyman_tests::pty::PtyPair;
use tallyman_tests::tallyman_bin;

const WAIT: Duration = Duration::from_secs(30);

/// `tallyman keygen` in `dir`: the private key file and the `[remote] trusted_keys` line.
fn keygen(dir: &Path) -> (PathBuf, String) {
    let out = Command::new(tallyman_bin())
        .args(["keygen", "--id", "central-it-2026", "--out"])
        .arg(dir.join("central"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(dir.join("central.pub")).unwrap();
    (dir.join("central.key"), public.trim().to_owned())
}

/// `tallyman cmd sign --key KEY --target test/gw-test NAME --arg …`: the document.
fn sign(key: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(tallyman_bin());
    cmd.args(["cmd", "sign", "--key"])
        .arg(key)
        .args(["--target", "test/gw-test", name]);
    for a in args {
        cmd.args(["--arg", a]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap()).unwrap()
}

/// A command signed with the library: `key`, issued `issued_ago` before now, valid for
/// `valid_for` after that.
fn sign_with(
    key: &SigningKey,
    name: &str,
    issued_ago: Duration,
    valid_for: Duration,
) -> (String, Vec<u8>) {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap();
    let issued = Timestamp::from_unix_millis(now().unix_millis() - ms(issued_ago)).unwrap();
    let expires = Timestamp::from_unix_millis(issued.unix_millis() + ms(valid_for)).unwrap();
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&now().unix_millis().to_be_bytes());
    let command = signed::Command {
        id: *EventId::new_v7(u64::try_from(issued.unix_millis()).unwrap(), random).as_uuid(),
        name: CommandName::new(name).unwrap(),
        args: Default::default(),
    };
    let target: Addressee = "test/gw-test".parse().unwrap();
    let doc = signed::sign_command(key, &command, Some(&target), issued, expires).unwrap();
    (command.id.to_string(), doc.into_bytes())
}

/// Central IT on the broker: publishes commands and reads the results.
struct It {
    device: Device,
}

impl It {
    fn connect(broker: &Broker) -> It {
        static N: AtomicU32 = AtomicU32::new(0);
        let device = Device::connect(
            broker.port(),
            &format!("central-it-{}", N.fetch_add(1, Ordering::Relaxed)),
        );
        device.subscribe(&topic("cmd/+/result"));
        device.subscribe(&topic("status"));
        It { device }
    }

    /// Wait for the agent's `online` (it subscribes before it says so), the `count`-th time.
    fn wait_online(&self, count: usize) {
        let status = topic("status");
        assert!(
            self.device.wait(WAIT, |s| {
                s.on(&status)
                    .iter()
                    .filter(|m| m.json()["state"] == "online")
                    .count()
                    >= count
            }),
            "the agent never said online"
        );
    }

    /// Publish `payload` on `cmd/{name}` (of `target`: the gateway or `all`) and wait for the
    /// next result on this gateway's `cmd/{name}/result`.
    fn send_to(&self, target: &str, name: &str, payload: Vec<u8>) -> Value {
        let results = topic(&format!("cmd/{name}/result"));
        let before = self.device.with(|s| s.on(&results).len());
        self.device
            .publish(&format!("tallyman/v1/test/{target}/cmd/{name}"), payload);
        assert!(
            self.device.wait(WAIT, |s| s.on(&results).len() > before),
            "no result for {name}"
        );
        let result = self.device.with(|s| s.on(&results).last().unwrap().json());
        assert!(
            !self.device.with(|s| s.on(&results).last().unwrap().retain),
            "results are not retained"
        );
        result
    }

    fn send(&self, name: &str, payload: Vec<u8>) -> Value {
        self.send_to("gw-test", name, payload)
    }
}

fn ok(result: &Value) -> &Value {
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["error"], Value::Null);
    &result["result"]
}

fn refused(result: &Value) -> String {
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["result"], Value::Null);
    result["error"].as_str().unwrap().to_owned()
}

/// Ask `dlq-list` until `cond` holds over its result.
fn wait_dlq(it: &It, key: &Path, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let result = it.send("dlq-list", sign(key, "dlq-list", &["sink=hub"]));
        let list = ok(&result).clone();
        if cond(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "dead letters never as expected: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dead_letter_is_listed_and_replayed_by_signed_commands_and_then_delivered() {
    let broker = Broker::start();
    let pki = Pki::new();
    let hub = Hub::start(&pki);
    // The first delivery is refused: a dead letter.
    hub.script([Scripted::Status(400)]);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (key, trusted) = keygen(dir.path());
    let ca = dir.path().join("hub-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let pty = PtyPair::start(dir.path());
    let config = dir.path().join("tallyman.toml");
    std::fs::write(
        &config,
        format!(
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

[remote]
trusted_keys = ["{trusted}"]

[[sources]]
name = "dock-1"
type = "serial"
path = "{device}"
terminator = "\r"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "hub"
type = "http"
endpoint = "{endpoint}"
ca_file = "{ca}"
timeout_secs = 5
batch_size = 1
retry = {{ initial_ms = 20, max_ms = 200 }}
"#,
            data = dir.path().join("data").display(),
            port = broker.port(),
            device = pty.device().display(),
            endpoint = hub.endpoint(),
            ca = ca.display(),
        ),
    )
    .unwrap();
    let it = It::connect(&broker);
    let _agent = Agent::start(&config, &dir.path().join("agent.log"));
    it.wait_online(1);

    let status = it.send("status", sign(&key, "status", &[]));
    let report = ok(&status);
    assert_eq!(report["gateway"], "gw-test");
    assert!(report["agent_version"].is_string());
    assert!(report["uptime_secs"].is_u64());
    assert!(report["sinks"]["hub"].is_object(), "{report}");
    assert!(report["sources"]["dock-1"].is_object(), "{report}");
    assert_eq!(status["command"], "status");
    assert!(status["id"].is_string());

    // A scan; the hub refuses its event.
    let mut scanner = pty.scanner();
    scanner.send(b"01095011010209171730123121SER-1\r");
    assert!(hub.wait(WAIT, |s| s.count(&Given::Status(400)) == 1));
    let event_id = hub.with(|s| s.requests[0].ids[0].clone());
    let list = wait_dlq(&it, &key, |l| l["total"] == 1);
    let dead = &list["dead_letters"][0];
    assert_eq!(dead["event_id"], event_id.as_str());
    assert_eq!(dead["sink"], "hub");
    assert_eq!(list["truncated"], false);

    // Replayed by a signed command: the hub takes it this time.
    let replay = it.send(
        "dlq-replay",
        sign(&key, "dlq-replay", &[&format!("ids={event_id}")]),
    );
    assert_eq!(ok(&replay)["replayed"], 1);
    assert!(hub.wait(WAIT, |s| s.accepted.contains_key(&event_id)));
    wait_dlq(&it, &key, |l| l["total"] == 0);

    let flush = it.send("flush", sign(&key, "flush", &[]));
    let sinks = ok(&flush)["sinks"].as_array().unwrap().clone();
    assert_eq!(sinks.len(), 1);
    assert_eq!(sinks[0]["name"], "hub");
    assert_eq!(sinks[0]["backlog"], 0);

    // The scanner's port is closed and opened again.
    let reconnect = it.send("reconnect", sign(&key, "reconnect", &["source=dock-1"]));
    assert_eq!(ok(&reconnect)["restarting"], true);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = it.send("status", sign(&key, "status", &[]));
        let dock = ok(&status)["sources"]["dock-1"].clone();
        if dock["reopens"] == 1 && dock["state"] == "open" {
            break;
        }
        assert!(Instant::now() < deadline, "dock-1 was not reopened: {dock}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let unknown = it.send("reconnect", sign(&key, "reconnect", &["source=dock-9"]));
    assert_eq!(refused(&unknown), "unknown source `dock-9`");
}

#[test]
fn forged_replayed_unknown_and_expired_commands_are_refused_with_their_reason() {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (key_file, trusted) = keygen(dir.path());
    let key = SigningKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[remote]\ntrusted_keys = [\"{trusted}\"]\n"));
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("agent.log");
    let it = It::connect(&broker);
    let agent = Agent::start(&config, &log);
    it.wait_online(1);

    let unsigned = it.send("status", br#"{"command":"status"}"#.to_vec());
    assert!(
        refused(&unsigned).starts_with("the document is not signed"),
        "{unsigned}"
    );
    assert_eq!(unsigned["id"], Value::Null);

    let rogue = SigningKey::from_seed("rogue", [42; 32]).unwrap();
    let (_, forged) = sign_with(&rogue, "status", Duration::ZERO, Duration::from_secs(600));
    assert_eq!(
        refused(&it.send("status", forged)),
        "unknown key id `rogue`"
    );

    let (_, unknown) = sign_with(
        &key,
        "self-destruct",
        Duration::ZERO,
        Duration::from_secs(600),
    );
    assert_eq!(
        refused(&it.send("self-destruct", unknown)),
        "unknown command `self-destruct`"
    );

    let (id, expired) = sign_with(
        &key,
        "status",
        Duration::from_secs(1200),
        Duration::from_secs(600),
    );
    let result = it.send("status", expired);
    assert!(refused(&result).starts_with("expired at "), "{result}");
    assert_eq!(result["id"], id.as_str());

    // Accepted once, on the facility-wide topic too; refused when it comes again.
    let (id, status) = sign_with(&key, "status", Duration::ZERO, Duration::from_secs(600));
    let first = it.send_to("all", "status", status.clone());
    assert_eq!(ok(&first)["gateway"], "gw-test");
    let again = it.send("status", status.clone());
    assert_eq!(
        refused(&again),
        format!("command id {id} was already received (a replay)")
    );

    // The agent remembers across a restart.
    let (exit, _) = agent.terminate(WAIT);
    assert!(exit.unwrap().success());
    let _agent = Agent::start(&config, &log);
    it.wait_online(2);
    let after_restart = it.send("status", status);
    assert_eq!(
        refused(&after_restart),
        format!("command id {id} was already received (a replay)")
    );
    assert!(ok(&it.send("status", sign(&key_file, "status", &[])))["uptime_secs"].is_u64());
}
