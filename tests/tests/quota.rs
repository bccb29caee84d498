//! The spool quota with the real binary: with the sink unable to deliver, intake fills the
//! spool until scans are refused with a clear "full" feedback; nothing accepted is dropped;
//! once the sink delivers again, space frees and intake resumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tallyman_tests::agent::{Agent, read_outbox, stdin_to_file_config};

fn scan(n: usize) -> String {
    format!("01095011010209171730123121Q{n:07}")
}

#[test]
fn a_full_spool_refuses_intake_loses_nothing_and_resumes() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "max_size_mb = 1");
    let outbox = dir.path().join("data/outbox.jsonl");
    // The sink cannot write while its path is a directory: nothing leaves the spool.
    std::fs::create_dir_all(&outbox).unwrap();
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));

    // Fill: batches of scans until one is refused.
    let mut sent = 0;
    let full_at = loop {
        assert!(sent < 200_000, "the spool never reported full");
        let batch: Vec<String> = (sent..sent + 500).map(scan).collect();
        agent.send(&batch).unwrap();
        sent += 500;
        assert!(agent.wait_feedback(Duration::from_secs(60), |fb| fb.lines.len() >= sent));
        let lines = agent.feedback_lines();
        if let Some(i) = lines.iter().position(|l| l["result"] == "rejected") {
            break i;
        }
    };
    let lines = agent.feedback_lines();
    let refused = &lines[full_at];
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("storage is full"),
        "a clear reason: {reason}"
    );
    // Once full, everything after is refused too (no silent drop, no partial intake).
    assert!(lines[full_at..].iter().all(|l| l["result"] == "rejected"));
    let accepted: HashSet<String> = lines[..full_at]
        .iter()
        .map(|l| {
            assert_eq!(l["result"], "accepted", "{l}");
            l["event_id"].as_str().unwrap().to_string()
        })
        .collect();
    println!(
        "spool full after {} accepted events (1 MiB quota)",
        accepted.len()
    );

    // Let the sink deliver: the backlog drains, space frees, intake resumes.
    std::fs::remove_dir(&outbox).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let resumed = loop {
        assert!(
            Instant::now() < deadline,
            "intake did not resume after the backlog drained"
        );
        let probe = scan(sent);
        sent += 1;
        agent.send(&[probe]).unwrap();
        assert!(agent.wait_feedback(Duration::from_secs(30), |fb| fb.lines.len() >= sent));
        let last = agent.feedback_lines().pop().unwrap();
        if last["result"] == "accepted" {
            break last["event_id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // Nothing accepted was dropped: every accepted event reaches the outbox.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ids: HashSet<String> = read_outbox(&outbox).into_keys().collect();
        if accepted.is_subset(&ids) && ids.contains(&resumed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "accepted events missing from the outbox"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
