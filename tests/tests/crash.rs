//! Crash consistency with the real binary: scans fed on stdin while the agent is killed with
//! SIGKILL at random moments and restarted on the same data directory. Every event whose
//! *accepted* line was printed must reach the outbox; the same event id may appear twice
//! (at-least-once) but never with different content; the spool's self-check finds nothing
//! wrong at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use tallyman_tests::agent::{Agent, read_outbox, stdin_to_file_config};
use tallyman_tests::tallyman_bin;

const SCANS: usize = 50_000;
const KILLS: usize = 20;

/// A serialised item scan: GTIN, expiry 2030-12-31, a unique serial.
fn scan(n: usize) -> String {
    format!("01095011010209171730123121S{n:06}")
}

/// Tiny deterministic generator for chunk sizes and kill moments (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_during_intake_loses_no_accepted_event() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let log = dir.path().join("agent.log");
    let outbox = dir.path().join("data/outbox.jsonl");
    let scans: Vec<String> = (0..SCANS).map(scan).collect();
    let seed = std::env::var("TALLYMAN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut rng = Rng(seed.unwrap_or(0x5eed_2026_1124));

    // scan index -> event id, from the "accepted" lines printed before each death.
    let mut accepted: HashMap<String, String> = HashMap::new();
    let mut next = 0usize; // first scan not yet acknowledged (accepted or rejected)
    let mut kills = 0;
    while kills < KILLS {
        let mut agent = Agent::start(&config, &log);
        // Feed a few chunks, then kill at a random moment while intake is running.
        let target = next + 500 + rng.below(2500) as usize;
        let mut sent = next;
        while sent < target.min(SCANS) {
            let chunk = (50 + rng.below(400) as usize).min(SCANS - sent);
            if agent.send(&scans[sent..sent + chunk]).is_err() {
                break;
            }
            sent += chunk;
        }
        // Let it work for a random part of what was sent, then SIGKILL.
        let wait_for = (sent - next) * (1 + rng.below(90) as usize) / 100;
        agent.wait_feedback(Duration::from_secs(60), |fb| fb.lines.len() >= wait_for);
        let lines = agent.kill9();
        kills += 1;
        let before = next;
        for line in &lines {
            let scanned = line["scan"].as_str().unwrap().to_string();
            match line["result"].as_str().unwrap() {
                "accepted" => {
                    let id = line["event_id"].as_str().unwrap().to_string();
                    assert!(
                        accepted.insert(scanned, id).is_none(),
                        "a scan accepted twice"
                    );
                }
                other => panic!("unexpected feedback {other}: {line}"),
            }
            next += 1;
        }
        assert_eq!(next - before, lines.len());
    }
    assert!(
        accepted.len() > 1000,
        "the test must accept a fair share before the last restart"
    );

    // The last run: everything left, then wait until the outbox holds every accepted event.
    let mut agent = Agent::start(&config, &log);
    let base = agent.feedback_len();
    assert_eq!(base, 0);
    for chunk in scans[next..].chunks(1000) {
        agent.send(chunk).unwrap();
    }
    let remaining = SCANS - next;
    assert!(
        agent.wait_feedback(Duration::from_secs(600), |fb| fb.lines.len() >= remaining),
        "the last run did not acknowledge every scan"
    );
    for line in agent.feedback_lines() {
        assert_eq!(line["result"], "accepted", "{line}");
        let scanned = line["scan"].as_str().unwrap().to_string();
        accepted.insert(scanned, line["event_id"].as_str().unwrap().to_string());
    }
    let wanted: HashSet<String> = accepted.values().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let outbox_ids = loop {
        let ids: HashSet<String> = read_outbox(&outbox).into_keys().collect();
        if wanted.is_subset(&ids) || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing: Vec<&String> = wanted.difference(&outbox_ids).collect();
    assert!(
        missing.is_empty(),
        "{} accepted events missing from the outbox",
        missing.len()
    );
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "graceful stop exits 0"
    );

    // Every scan of the test was accepted once (re-sent scans were never acknowledged before).
    assert_eq!(accepted.len(), SCANS);
    // Events the agent made durable but could not acknowledge before a kill are in the outbox
    // too: at most one per kill per scan in flight; they are distinct events of re-sent scans.
    let extra = outbox_ids.len() - wanted.len();
    println!(
        "{SCANS} scans, {KILLS} kills: {} accepted, {} outbox events ({} durable but unacknowledged before a kill)",
        wanted.len(),
        outbox_ids.len(),
        extra
    );

    let stats = Command::new(tallyman_bin())
        .args(["spool", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("stats")
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        report["self_check"]["problems"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["self_check"]["quarantined"], 0, "{report}");
}
