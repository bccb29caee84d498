//! Forwarding to the hub over MQTT, side by side with `mosquitto_pub` on the same mosquitto in
//! one run (PRODUCT §9):
//!
//! * (a) `mosquitto_pub -q 1 -l` publishes the 100,000 JSON payloads the agent would publish
//!   (the file sink's lines of the very events in the agent's spool: the same bytes) — in two
//!   runs of 50,000 lines, because mosquitto_pub 2.0.11 `-l` silently loses QoS 1 messages
//!   past 65,535 queued (seen here: 34,467 of 100,000 arrived) — and a subscriber counts them;
//! * (b) the agent starts with those 100,000 events in its spool and forwards them to the same
//!   broker; the same kind of subscriber counts them. Ratio = (b) / (a) (target ≥ 0.8);
//! * (c) the agent runs with the 100,000-event backlog while the broker is down; the broker
//!   is started: events/s from the broker's start until the subscriber has all of them
//!   (target ≥ 20,000/s), and from the first one;
//! * (d) latency online: scans are written to the agent's stdin at a steady rate; the time
//!   from writing a scan to the subscriber receiving its event (an upper bound of
//!   scan-to-PUBACK: it includes intake, the spool's group commit and fdatasync, the sink,
//!   the broker and the subscriber) — p50, p99, max (target p99 ≤ 25 ms).
//!
//! (b) and (c) run with the sink's defaults (`batch_size` 100, `inflight` 10) and with
//! `batch_size` 1000, `inflight` 100. Every subscriber is a rumqttc client
//! in this process (QoS 1) that counts distinct event ids. The broker (persistence on so that (c)'s
//! subscriber keeps its session across the restart; autosave only at exit) runs with
//! `set_tcp_nodelay true`, or with mosquitto's default (Nagle's algorithm on) when
//! `TALLYMAN_BENCH_NAGLE=1`: then the broker holds a PUBACK back until the agent's TCP stack
//! acknowledges the previous one, which a sink that stopped publishing at the end of each
//! batch paid for with ~40 ms (the delayed ACK) per batch.
//!
//! ```sh
//! cargo bench -p tallyman-tests --bench mqtt_forward
//! TALLYMAN_BENCH_EVENTS=100000 TALLYMAN_BENCH_ROUNDS=3 TALLYMAN_BENCH_LATENCY_SCANS=1000 \
//!   TALLYMAN_BENCH_LATENCY_RATE=100 cargo bench -p tallyman-tests --bench mqtt_forward
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use tallyman_tests::agent::Agent;
use tallyman_tests::broker::{Broker, BrokerConfig, free_port};

const EVENTS: &str = "tallyman/v1/test/gw-test/events/+";
const PUB_TOPIC: &str = "bench/pub";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The sink settings of a run.
#[derive(Debug, Clone, Copy)]
struct Sink {
    batch: u32,
    inflight: u32,
}

const DEFAULTS: Sink = Sink {
    batch: 100,
    inflight: 10,
};
/// Larger deliveries and window.
const LARGE: Sink = Sink {
    batch: 1000,
    inflight: 100,
};

fn config(dir: &Path, port: u16, sink: Sink) -> PathBuf {
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
client_id = "tallyman-bench"
keep_alive_secs = 30

[[sources]]
name = "stdin"
type = "stdin"
workflow = "passthrough"
location = "WH/Stock"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
batch_size = 1000

[[sinks]]
name = "hub"
type = "mqtt"
batch_size = {batch}
inflight = {inflight}

[log]
level = "{level}"
"#,
        data = data.display(),
        batch = sink.batch,
        inflight = sink.inflight,
        level = std::env::var("TALLYMAN_BENCH_LOG").unwrap_or_else(|_| "info".into()),
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What a subscriber counted.
#[derive(Debug, Default)]
struct Count {
    distinct: HashSet<[u8; 36]>,
    messages: u64,
    first: Option<Instant>,
    /// When `distinct` reached the target.
    reached: Option<Instant>,
    /// For latency: scan text → arrival.
    scans: HashMap<String, Instant>,
    subacks: u32,
}

/// A QoS 1 subscriber counting distinct event ids (the `id` at its fixed place in the JSON).
struct Subscriber {
    client: Client,
    count: Arc<Mutex<Count>>,
    /// Set before disconnecting: the thread stops instead of reconnecting.
    stopped: Arc<AtomicBool>,
}

impl Subscriber {
    fn start(port: u16, id: &str, filter: &str, target: usize, clean: bool, scans: bool) -> Self {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean)
            .set_inflight(1000)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(o, 100);
        let count: Arc<Mutex<Count>> = Arc::default();
        let c = Arc::clone(&count);
        let stopped: Arc<AtomicBool> = Arc::default();
        let halt = Arc::clone(&stopped);
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let t = Instant::now();
                        let mut c = c.lock().unwrap();
                        c.messages += 1;
                        c.first.get_or_insert(t);
                        // {"v":1,"id":"<36>"...
                        if let Some(id) = p.payload.get(13..49) {
                            c.distinct.insert(id.try_into().unwrap());
                        }
                        if c.distinct.len() >= target && c.reached.is_none() {
                            c.reached = Some(t);
                        }
                        if scans {
                            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                            if let Some(raw) = v["scan"]["raw"].as_str() {
                                c.scans.entry(raw.to_string()).or_insert(t);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => c.lock().unwrap().subacks += 1,
                    Ok(_) => {}
                    Err(_) if halt.load(Ordering::SeqCst) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let s = Subscriber {
            client,
            count,
            stopped,
        };
        s.client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        wait("the SUBACK", Duration::from_secs(10), || {
            s.count.lock().unwrap().subacks > 0
        });
        s
    }

    fn reached(&self) -> Option<Instant> {
        self.count.lock().unwrap().reached
    }

    fn stop(self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.client.disconnect();
    }
}

fn wait(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Store `n` events in a spool with the hub unreachable; returns the directory holding
/// `data/` (the spool, with `n` events for the hub, and `outbox.jsonl`, their JSON).
fn fill(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cfg = config(dir.path(), free_port(), DEFAULTS);
    let mut agent = Agent::start(&cfg, &dir.path().join("fill.log"));
    let scans: Vec<String> = (0..n).map(|i| format!("ITEM{i:07}")).collect();
    for chunk in scans.chunks(5000) {
        agent.send(chunk).unwrap();
    }
    assert!(agent.wait_feedback(Duration::from_secs(600), |f| f.lines.len() >= n));
    let outbox = dir.path().join("data/outbox.jsonl");
    wait("the outbox", Duration::from_secs(120), || {
        lines(&outbox) >= n
    });
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()));
    dir
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// (a) mosquitto_pub -q 1 -l, in two runs of half the lines each.
fn mosquitto_pub(port: u16, filled: &Path, n: usize) -> f64 {
    let text = std::fs::read_to_string(filled.join("data/outbox.jsonl")).unwrap();
    let all: Vec<&str> = text.lines().collect();
    assert_eq!(all.len(), n);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let halves: Vec<PathBuf> = all
        .chunks(n.div_ceil(2))
        .enumerate()
        .map(|(i, c)| {
            let p = dir.path().join(format!("half{i}.txt"));
            std::fs::write(&p, c.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let sub = Subscriber::start(port, "bench-sub-a", PUB_TOPIC, n, true, false);
    let start = Instant::now();
    for half in &halves {
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", PUB_TOPIC])
            .args(["-q", "1", "-l"])
            .stdin(std::fs::File::open(half).unwrap())
            .stdout(Stdio::null())
            .status()
            .expect("mosquitto_pub (apt-get install mosquitto-clients)");
        assert!(status.success());
    }
    wait("(a) at the subscriber", Duration::from_secs(300), || {
        sub.reached().is_some()
    });
    let r = rate(n, sub.reached().unwrap() - start);
    sub.stop();
    r
}

/// (b) the agent forwards its spool of `n` events, broker up.
fn forward(port: u16, filled: &Path, n: usize, sink: Sink, round: u64) -> f64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    copy_dir(&filled.join("data"), dir.path());
    let cfg = config(dir.path(), port, sink);
    let sub = Subscriber::start(
        port,
        &format!("bench-sub-b{round}-{}", sink.batch),
        EVENTS,
        n,
        true,
        false,
    );
    let start = Instant::now();
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&cfg, &log);
    let deadline = Instant::now() + Duration::from_secs(600);
    while sub.reached().is_none() {
        if Instant::now() > deadline {
            let c = sub.count.lock().unwrap();
            panic!(
                "(b): the subscriber has {} of {n} ({} messages); agent log:\n{}",
                c.distinct.len(),
                c.messages,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = rate(n, sub.reached().unwrap() - start);
    let _ = agent.terminate(Duration::from_secs(30));
    sub.stop();
    r
}

/// (c) the broker is down while the agent holds the backlog; then started.
fn drain(broker: &mut Broker, filled: &Path, n: usize, sink: Sink, round: u64) -> (f64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    copy_dir(&filled.join("data"), dir.path());
    let cfg = config(dir.path(), broker.port(), sink);
    // A persistent session: the broker keeps it (and queues for it) across its restart.
    let sub = Subscriber::start(
        broker.port(),
        &format!("bench-sub-c{round}-{}", sink.inflight),
        EVENTS,
        n,
        false,
        false,
    );
    broker.stop();
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&cfg, &log);
    wait(
        "the agent's first failed attempt",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("MQTT connection failed")
        },
    );
    broker.restart();
    let up = Instant::now();
    wait("(c) at the subscriber", Duration::from_secs(600), || {
        sub.reached().is_some()
    });
    let end = sub.reached().unwrap();
    let first = sub.count.lock().unwrap().first.unwrap();
    let _ = agent.terminate(Duration::from_secs(30));
    // Leave the session: nothing queues for it later.
    let _ = sub.client.unsubscribe(EVENTS);
    std::thread::sleep(Duration::from_millis(100));
    sub.stop();
    (rate(n, end - up), rate(n, end - first))
}

/// (d) scans at `per_sec`, write → subscriber, in ms.
fn latency(port: u16, scans: usize, per_sec: u64) -> Vec<f64> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cfg = config(dir.path(), port, DEFAULTS);
    let sub = Subscriber::start(port, "bench-sub-d", EVENTS, usize::MAX, true, true);
    let mut agent = Agent::start(&cfg, &dir.path().join("agent.log"));
    // Warm up: the connection is up when a scan arrives.
    agent.send(&["WARMUP".to_string()]).unwrap();
    wait("the warm-up scan", Duration::from_secs(30), || {
        sub.count.lock().unwrap().scans.contains_key("WARMUP")
    });
    let interval = Duration::from_secs(1) / u32::try_from(per_sec.max(1)).unwrap();
    let mut sent = Vec::with_capacity(scans);
    let start = Instant::now();
    for i in 0..scans {
        let at = start + interval * u32::try_from(i).unwrap();
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let scan = format!("LAT{i:06}");
        sent.push((scan.clone(), Instant::now()));
        agent.send(&[scan]).unwrap();
    }
    wait("(d) at the subscriber", Duration::from_secs(60), || {
        sub.count.lock().unwrap().scans.len() > scans
    });
    let got = sub.count.lock().unwrap().scans.clone();
    let _ = agent.terminate(Duration::from_secs(30));
    sub.stop();
    sent.iter()
        .map(|(s, t)| (got[s] - *t).as_secs_f64() * 1000.0)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let n = env_or("TALLYMAN_BENCH_EVENTS", 100_000) as usize;
    let rounds = env_or("TALLYMAN_BENCH_ROUNDS", 1).max(1);
    let lat_scans = env_or("TALLYMAN_BENCH_LATENCY_SCANS", 1000) as usize;
    let lat_rate = env_or("TALLYMAN_BENCH_LATENCY_RATE", 100);
    let nagle = env_or("TALLYMAN_BENCH_NAGLE", 0) == 1;
    let extra = if nagle {
        "autosave_interval 3600\n".to_string()
    } else {
        "autosave_interval 3600\nset_tcp_nodelay true\n".to_string()
    };
    let mut broker = Broker::start_with(&BrokerConfig {
        persistence: true,
        extra,
        ..BrokerConfig::default()
    });
    eprintln!("storing {n} events (hub unreachable)…");
    let filled = fill(n);

    let (mut a, mut b_def, mut b_large, mut c_def, mut c_large) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut lat = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}: (a)", round + 1);
        a.push(mosquitto_pub(broker.port(), filled.path(), n));
        eprintln!("round {}: (b)", round + 1);
        b_def.push(forward(broker.port(), filled.path(), n, DEFAULTS, round));
        b_large.push(forward(broker.port(), filled.path(), n, LARGE, round));
        eprintln!("round {}: (d)", round + 1);
        lat.extend(latency(broker.port(), lat_scans, lat_rate));
        eprintln!("round {}: (c)", round + 1);
        c_def.push(drain(&mut broker, filled.path(), n, DEFAULTS, round));
        c_large.push(drain(&mut broker, filled.path(), n, LARGE, round));
    }
    let a = median(a);
    let b_def = median(b_def);
    let b_large = median(b_large);
    let c = |v: &Vec<(f64, f64)>| {
        (
            median(v.iter().map(|x| x.0).collect()),
            median(v.iter().map(|x| x.1).collect()),
        )
    };
    let (c_def_up, c_def_first) = c(&c_def);
    let (c_large_up, c_large_first) = c(&c_large);
    lat.sort_by(f64::total_cmp);

    println!();
    println!(
        "mqtt_forward: {n} events, {rounds} round(s) (medians), broker {}",
        if nagle {
            "with Nagle (mosquitto default)"
        } else {
            "set_tcp_nodelay true"
        }
    );
    println!();
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    println!(
        "| (a) `mosquitto_pub -q 1 -l` (2 × {}), counted at a subscriber | {a:.0} msg/s | |",
        n.div_ceil(2)
    );
    println!(
        "| (b) agent forwards its spool, batch 100 / inflight 10 (defaults) | {b_def:.0} events/s = {:.2} × (a) | ≥ 0.8 × (a) |",
        b_def / a
    );
    println!(
        "| (b) agent forwards its spool, batch 1000 / inflight 100 | {b_large:.0} events/s = {:.2} × (a) | ≥ 0.8 × (a) |",
        b_large / a
    );
    println!(
        "| (c) backlog drain after the broker starts, defaults | {c_def_up:.0} events/s ({c_def_first:.0}/s from the first event) | ≥ 20,000/s |"
    );
    println!(
        "| (c) backlog drain after the broker starts, batch 1000 / inflight 100 | {c_large_up:.0} events/s ({c_large_first:.0}/s from the first event) | ≥ 20,000/s |"
    );
    println!(
        "| (d) scan written to stdin → event at the subscriber, {lat_rate} scans/s, defaults | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} scans) | p99 ≤ 25 ms |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
        lat.len()
    );
}
