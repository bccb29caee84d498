//! Durable intake over MQTT: a publisher sends canonical events with QoS 1 and a window of 100
//! unacknowledged messages to a local mosquitto, and
//!
//! * (a) a plain subscriber (QoS 1, rumqttc, it only counts) receives them: messages/s end to
//!   end through the broker alone;
//! * (b) the real agent (release binary, mqtt source, file sink) takes them: every event is
//!   stored durably in the spool (group commit, fdatasync) before its PUBACK. The clock stops
//!   when the file sink's outbox holds every event, i.e. after the spool made it durable *and*
//!   the sink wrote and fdatasync'ed it: an honest upper bound of the intake time.
//!
//! Both runs use the same payloads and a fresh broker with the same (default) configuration;
//! the rounds alternate (a), (b) and the table shows the median of the rounds.
//!
//! ```sh
//! cargo bench -p tallyman-tests --bench mqtt_intake
//! TALLYMAN_BENCH_EVENTS=100000 TALLYMAN_BENCH_ROUNDS=5 cargo bench -p tallyman-tests --bench mqtt_intake
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use tallyman_tests::agent::Agent;
use tallyman_tests::broker::{Broker, agent_config, receipt_json, topic};

/// The publisher's window: QoS 1 publishes awaiting the broker's PUBACK.
const WINDOW: u16 = 100;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn payloads(n: u64, round: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| receipt_json(round * 10_000_000 + i, "test", "gw-test").1)
        .collect()
}

/// A client whose events are counted by its connection thread.
struct Counting {
    client: Client,
    /// Events counted so far.
    counted: Arc<AtomicU64>,
    /// When the count reached the target.
    reached: Arc<Mutex<Option<Instant>>>,
    subacks: Arc<AtomicU64>,
}

/// A client on `port` counting the events for which `count` is true, up to `target`.
fn counting_client(port: u16, id: &str, target: u64, count: fn(&Event) -> bool) -> Counting {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(WINDOW)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(o, 1000);
    let c = Counting {
        client,
        counted: Arc::default(),
        reached: Arc::default(),
        subacks: Arc::default(),
    };
    let (counted, reached, subacks) = (
        Arc::clone(&c.counted),
        Arc::clone(&c.reached),
        Arc::clone(&c.subacks),
    );
    std::thread::spawn(move || {
        for event in connection.iter() {
            let Ok(event) = event else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            if matches!(event, Event::Incoming(Packet::SubAck(_))) {
                subacks.fetch_add(1, Ordering::SeqCst);
            }
            if count(&event) && counted.fetch_add(1, Ordering::SeqCst) + 1 == target {
                *reached.lock().unwrap() = Some(Instant::now());
            }
        }
    });
    c
}

fn is_puback(e: &Event) -> bool {
    matches!(e, Event::Incoming(Packet::PubAck(_)))
}

fn is_publish(e: &Event) -> bool {
    matches!(e, Event::Incoming(Packet::Publish(_)))
}

fn wait(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Publish every payload on in/events from a thread; returns when publishing started and the
/// publisher, counting the broker's PUBACKs.
fn publish(port: u16, payloads: Vec<Vec<u8>>) -> (Instant, Counting) {
    let n = payloads.len() as u64;
    let publisher = counting_client(port, "bench-publisher", n, is_puback);
    let start = Instant::now();
    let c = publisher.client.clone();
    std::thread::spawn(move || {
        for p in payloads {
            c.publish(topic("in/events"), QoS::AtLeastOnce, false, p)
                .unwrap();
        }
    });
    (start, publisher)
}

struct Run {
    /// All received (a) or all in the outbox (b).
    end_to_end: f64,
    /// All PUBACKed by the broker to the publisher.
    publisher: f64,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// (a) The broker and a subscriber that only counts.
fn broker_alone(n: u64, round: u64) -> Run {
    let broker = Broker::start();
    let sub = counting_client(broker.port(), "bench-subscriber", n, is_publish);
    sub.client
        .subscribe(topic("in/events"), QoS::AtLeastOnce)
        .unwrap();
    wait("the SUBACK", Duration::from_secs(10), || {
        sub.subacks.load(Ordering::SeqCst) > 0
    });
    let payloads = payloads(n, round);
    let (start, publisher) = publish(broker.port(), payloads);
    wait("the subscriber", Duration::from_secs(600), || {
        sub.counted.load(Ordering::SeqCst) >= n && publisher.counted.load(Ordering::SeqCst) >= n
    });
    let end = sub.reached.lock().unwrap().unwrap();
    let acked_at = publisher.reached.lock().unwrap().unwrap();
    Run {
        end_to_end: rate(n, end - start),
        publisher: rate(n, acked_at - start),
    }
}

/// Complete lines in a file, counted from `offset` on (incrementally).
fn count_lines(path: &Path, offset: &mut u64, lines: &mut u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return;
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return;
    }
    *offset += buf.len() as u64;
    *lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
}

/// (b) The agent as the subscriber, storing durably.
fn agent_intake(n: u64, round: u64) -> Run {
    let broker = Broker::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = agent_config(dir.path(), broker.port(), "");
    let text = std::fs::read_to_string(&config).unwrap() + "\n[log]\nlevel = \"warn\"\n";
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let agent = Agent::start(&config, &log);
    // Wait for the retained online status: the agent has subscribed.
    let watch = counting_client(broker.port(), "bench-watch", 1, is_publish);
    watch
        .client
        .subscribe(topic("status"), QoS::AtLeastOnce)
        .unwrap();
    wait("the agent's status", Duration::from_secs(30), || {
        watch.counted.load(Ordering::SeqCst) > 0
    });
    let payloads = payloads(n, round);
    let (start, publisher) = publish(broker.port(), payloads);
    let (mut offset, mut lines) = (0, 0);
    let deadline = start + Duration::from_secs(600);
    while lines < n {
        assert!(
            Instant::now() < deadline,
            "the outbox holds only {lines} of {n}"
        );
        count_lines(&outbox, &mut offset, &mut lines);
        if lines < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let end = Instant::now();
    wait("the publisher's PUBACKs", Duration::from_secs(60), || {
        publisher.counted.load(Ordering::SeqCst) >= n
    });
    let acked_at = publisher.reached.lock().unwrap().unwrap();
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert_eq!(lines, n, "the outbox holds more lines than events sent");
    Run {
        end_to_end: rate(n, end - start),
        publisher: rate(n, acked_at - start),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // Build the release binary before anything is timed.
    let _ = tallyman_tests::tallyman_bin();
    let n = env_or("TALLYMAN_BENCH_EVENTS", 50_000);
    let rounds = env_or("TALLYMAN_BENCH_ROUNDS", 3).max(1);
    println!(
        "MQTT intake: {n} canonical events (~{} bytes each), QoS 1, publisher window {WINDOW}, {rounds} rounds, mosquitto defaults (max_inflight_messages 20 towards subscribers)",
        receipt_json(0, "test", "gw-test").1.len()
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let ra = broker_alone(n, round * 2);
        println!(
            "round {}: (a) broker alone {:>9.0} msg/s (publisher acked {:>9.0}/s)",
            round + 1,
            ra.end_to_end,
            ra.publisher
        );
        let rb = agent_intake(n, round * 2 + 1);
        println!(
            "round {}: (b) agent        {:>9.0} msg/s (publisher acked {:>9.0}/s)",
            round + 1,
            rb.end_to_end,
            rb.publisher
        );
        a.push(ra);
        b.push(rb);
    }
    let (a_e2e, a_pub) = (
        median(a.iter().map(|r| r.end_to_end).collect()),
        median(a.iter().map(|r| r.publisher).collect()),
    );
    let (b_e2e, b_pub) = (
        median(b.iter().map(|r| r.end_to_end).collect()),
        median(b.iter().map(|r| r.publisher).collect()),
    );
    println!();
    println!("| subscriber | messages/s end to end | publisher PUBACKs/s |");
    println!("|---|---|---|");
    println!("| (a) rumqttc subscriber, QoS 1, counting only | {a_e2e:.0} | {a_pub:.0} |");
    println!(
        "| (b) tallyman agent, durable in the spool (until the file sink has all) | {b_e2e:.0} | {b_pub:.0} |"
    );
    println!("| ratio (b)/(a) | {:.2} | |", b_e2e / a_e2e);
}
