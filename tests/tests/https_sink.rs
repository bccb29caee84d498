//! The HTTPS hub sink end to end: the real `tallyman` binary (stdin source, http sink) against
//! the test hub (`tallyman_tests::hub`) over TLS with a test CA.
//!
//! - Through 5xx, 429 with `Retry-After`, answers dropped before and after the hub took the
//!   batch, and a 200 cut short, every event arrives; the one the hub refuses is isolated by
//!   splitting and dead-lettered with the hub's answer; no event is taken twice unless the hub
//!   dropped the answer to a batch it took; the Idempotency-Key contract holds.
//! - The token file is read again when it changes: requests after a rotation carry the new
//!   token; a 401 is retried, not dead-lettered; a world-readable token file is refused.
//! - A CA bundle that did not sign the hub's certificate: retries with a clear error, nothing
//!   reaches the hub; the right bundle written over it is picked up without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::Agent;
use tallyman_tests::hub::{Given, Hub, Pki, Scripted};
use tallyman_tests::tallyman_bin;

const WAIT: Duration = Duration::from_secs(60);

/// A serialised item scan (one consumption event each): GTIN, expiry 2030-12-31, a serial.
fn scan(serial: &str) -> String {
    format!("01095011010209171730123121{serial}")
}

/// Files and configuration of one test.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    token: PathBuf,
    ca: PathBuf,
}

impl Setup {
    fn new(hub: &Hub, ca_pem: &str, token: &str) -> Setup {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let data = dir.path().join("data");
        let ca = dir.path().join("hub-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let token_file = dir.path().join("hub.token");
        write_token(&token_file, token, 0o600);
        let text = format!(
            r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

[log]
level = "info,tallyman_agent::sinks::http=debug"

[[sources]]
name = "stdin"
type = "stdin"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "hub"
type = "http"
endpoint = "{endpoint}"
token_file = "{token}"
ca_file = "{ca}"
timeout_secs = 5
batch_size = 10
retry = {{ initial_ms = 20, max_ms = 200 }}
"#,
            data = data.display(),
            endpoint = hub.endpoint(),
            token = token_file.display(),
            ca = ca.display(),
        );
        let config = dir.path().join("tallyman.toml");
        std::fs::write(&config, text).unwrap();
        Setup {
            log: dir.path().join("agent.log"),
            dir,
            config,
            token: token_file,
            ca,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, timeout: Duration, cond: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(&self.log()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tallyman spool --data-dir DATA dlq list`, one JSON object per dead letter.
    fn dead_letters(&self) -> Vec<Value> {
        let out = Command::new(tallyman_bin())
            .args(["spool", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["dlq", "list"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dlq list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn write_token(path: &Path, token: &str, mode: u32) {
    // Written in place (same inode), as an operator's editor or `echo >` would.
    std::fs::write(path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Send scans and wait until each was accepted; their event ids, in order.
fn feed(agent: &mut Agent, scans: &[String]) -> Vec<String> {
    let before = agent.feedback_len();
    agent.send(scans).unwrap();
    assert!(
        agent.wait_feedback(WAIT, |fb| fb.lines.len() >= before + scans.len()),
        "not every scan got feedback"
    );
    agent.feedback_lines()[before..]
        .iter()
        .zip(scans)
        .map(|(line, scan)| {
            assert_eq!(line["result"], "accepted", "{line}");
            assert_eq!(line["scan"].as_str(), Some(scan.as_str()));
            line["event_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn all_accepted(hub: &Hub, ids: &[String]) -> bool {
    hub.wait(WAIT, |s| ids.iter().all(|id| s.accepted.contains_key(id)))
}

#[test]
fn every_event_arrives_through_faults_and_the_refused_one_is_dead_lettered() {
    let pki = Pki::new();
    let hub = Hub::start(&pki);
    hub.set_token(Some("tok-1"));
    hub.script([
        Scripted::Status(500),
        Scripted::RetryAfter {
            status: 429,
            value: "1".into(),
        },
        Scripted::DropAfterTaking,
        Scripted::DropBeforeTaking,
        Scripted::TruncatedOk,
        Scripted::Normal,
        Scripted::Status(503),
        Scripted::Normal,
        Scripted::DropAfterTaking,
    ]);
    let setup = Setup::new(&hub, &pki.ca_pem, "tok-1");
    let mut agent = Agent::start(&setup.config, &setup.log);

    let scans: Vec<String> = (0..150)
        .map(|n| {
            if n == 77 {
                scan("POISON77")
            } else {
                scan(&format!("S{n:05}"))
            }
        })
        .collect();
    let ids = feed(&mut agent, &scans);
    let poison = ids[77].clone();
    let good: Vec<String> = ids.iter().filter(|id| **id != poison).cloned().collect();
    assert!(
        all_accepted(&hub, &good),
        "not every event reached the hub; log:\n{}",
        setup.log()
    );
    assert!(
        setup.wait_log(WAIT, |log| log
            .lines()
            .any(|l| l.contains("kept as a dead letter") && l.contains(&poison))),
        "the poison event was not dead-lettered; log:\n{}",
        setup.log()
    );
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    // The refused event: isolated (a request with it alone), never taken, dead-lettered with
    // the hub's own words.
    let dead = setup.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["event_id"].as_str(), Some(poison.as_str()));
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the hub refused it: HTTP 400 Bad Request: {"),
        "{reason}"
    );
    assert!(reason.contains("\"error\":\"unknown product\""), "{reason}");
    assert!(reason.contains("\"serial\":\"POISON77\""), "{reason}");
    assert!(reason.contains(&poison), "{reason}");

    hub.with(|s| {
        assert!(s.key_violations.is_empty(), "{:?}", s.key_violations);
        assert!(!s.accepted.contains_key(&poison));
        assert!(
            s.requests
                .iter()
                .any(|r| r.ids == [poison.clone()] && r.given == Given::Poison),
            "the poison event was never sent alone"
        );
        let malformed: Vec<&Given> = s
            .requests
            .iter()
            .map(|r| &r.given)
            .filter(|g| matches!(g, Given::Malformed(_)))
            .collect();
        assert!(malformed.is_empty(), "{malformed:?}");
        assert!(
            s.requests
                .iter()
                .all(|r| r.token.as_deref() == Some("tok-1"))
        );
        // At-least-once, and only as much as lost answers explain.
        assert_eq!(s.unexplained_duplicates(), vec![]);
        assert_eq!(s.accepted.len(), good.len());
        let lost: u32 = s.lost.values().sum();
        assert!(
            lost > 0,
            "the script made the hub drop answers to taken batches"
        );
        // A 200 cut short is a 200: its events were not sent again.
        let t = s
            .requests
            .iter()
            .position(|r| r.given == Given::TruncatedOk)
            .unwrap();
        let truncated: HashSet<&String> = s.requests[t].ids.iter().collect();
        assert!(!truncated.is_empty());
        for later in &s.requests[t + 1..] {
            assert!(
                later.ids.iter().all(|id| !truncated.contains(id)),
                "sent again after a 200 cut short"
            );
        }
        // Retry-After: 1 was honoured (the sink's own backoff starts at 20 ms).
        let i = s
            .requests
            .iter()
            .position(|r| r.given == Given::Status(429))
            .unwrap();
        let gap = s.requests[i + 1].at - s.requests[i].at;
        assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
        // The events arrived as they were captured.
        let serials: HashSet<String> = s
            .events
            .values()
            .map(|e| e["lines"][0]["serial"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(serials.len(), 149);
        assert!(serials.contains("S00149"));
        for (n, id) in ids.iter().enumerate().filter(|(n, _)| *n != 77) {
            assert_eq!(s.events[id]["lines"][0]["serial"], format!("S{n:05}"));
            assert_eq!(s.events[id]["kind"], "consumption");
        }
    });
    // Event ids are in the log at debug, batch by batch.
    let log = setup.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Posting a batch to the hub.") && l.contains(&poison)),
        "{log}"
    );
    assert!(log.contains("the hub failed (HTTP 500 Internal Server Error"));
}

#[test]
fn a_rotated_token_is_used_from_the_next_request_on() {
    let pki = Pki::new();
    let hub = Hub::start(&pki);
    hub.set_token(Some("token-A"));
    let setup = Setup::new(&hub, &pki.ca_pem, "token-A");
    let mut agent = Agent::start(&setup.config, &setup.log);

    let first = feed(
        &mut agent,
        &(0..20).map(|n| scan(&format!("A{n}"))).collect::<Vec<_>>(),
    );
    assert!(all_accepted(&hub, &first));

    // Rotation while idle: the file changes (same length, in place), then the hub switches.
    // Every request from now on must carry the new token: none may be refused.
    let rotated_at = hub.with(|s| s.requests.len());
    write_token(&setup.token, "token-B", 0o600);
    hub.set_token(Some("token-B"));
    let second = feed(
        &mut agent,
        &(0..20).map(|n| scan(&format!("B{n}"))).collect::<Vec<_>>(),
    );
    assert!(all_accepted(&hub, &second), "log:\n{}", setup.log());
    hub.with(|s| {
        let after = &s.requests[rotated_at..];
        assert!(!after.is_empty());
        for r in after {
            assert_eq!(r.token.as_deref(), Some("token-B"));
            assert_eq!(r.given, Given::Ok);
        }
    });

    // The hub rotates first: 401s are retried (nothing dead-lettered) until the file follows.
    hub.set_token(Some("token-C"));
    let third = feed(
        &mut agent,
        &(0..10).map(|n| scan(&format!("C{n}"))).collect::<Vec<_>>(),
    );
    assert!(
        hub.wait(WAIT, |s| s.count(&Given::Unauthorized) >= 3),
        "the sink did not retry after 401"
    );
    assert!(setup.wait_log(WAIT, |l| {
        l.contains("the hub refused the gateway's credentials (HTTP 401 Unauthorized")
    }));
    let file_changed_at = hub.with(|s| s.requests.len());
    write_token(&setup.token, "token-C", 0o600);
    assert!(all_accepted(&hub, &third), "log:\n{}", setup.log());
    hub.with(|s| {
        // At most the request in flight when the file changed still had the old token.
        let old = s.requests[file_changed_at..]
            .iter()
            .filter(|r| r.token.as_deref() != Some("token-C"))
            .count();
        assert!(
            old <= 1,
            "{old} requests with the old token after the change"
        );
    });

    // A token file every user can read is not used.
    write_token(&setup.token, "token-C", 0o644);
    let before = hub.with(|s| s.requests.len());
    let fourth = feed(&mut agent, &[scan("D0")]);
    assert!(setup.wait_log(WAIT, |l| l.contains("may be read or written by every user")));
    assert_eq!(
        hub.with(|s| s.requests.len()),
        before,
        "a request went out with a world-readable token"
    );
    std::fs::set_permissions(&setup.token, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(all_accepted(&hub, &fourth));

    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(setup.dead_letters().is_empty());
    hub.with(|s| assert_eq!(s.unexplained_duplicates(), vec![]));
}

#[test]
fn a_wrong_ca_bundle_is_retried_with_a_clear_error_until_it_is_replaced() {
    let pki = Pki::new();
    let hub = Hub::start(&pki);
    let setup = Setup::new(&hub, &pki.other_ca_pem, "t");
    let mut agent = Agent::start(&setup.config, &setup.log);
    let ids = feed(&mut agent, &[scan("X1"), scan("X2")]);
    let expected = format!(
        "the hub's certificate is not trusted: it is not signed by a CA in {} (unknown issuer)",
        setup.ca.display()
    );
    assert!(
        setup.wait_log(WAIT, |log| log.matches(&expected).count() >= 3),
        "no clear, repeated TLS error; log:\n{}",
        setup.log()
    );
    assert_eq!(hub.with(|s| s.requests.len()), 0, "no request got through");

    // The right bundle, written over the wrong one, is used without a restart.
    std::fs::write(&setup.ca, &pki.ca_pem).unwrap();
    assert!(all_accepted(&hub, &ids), "log:\n{}", setup.log());
    assert!(setup.log().contains("The hub's CA bundle changed"));
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let counts: HashMap<String, u32> = hub.with(|s| s.accepted.clone());
    assert!(ids.iter().all(|id| counts[id] == 1));
}
